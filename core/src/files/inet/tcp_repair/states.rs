//! Which FINs a TCP state has sent and received, as soccr counts them:
//! each FIN holds a sequence number but no data, so the dumped sequence
//! numbers are adjusted by them, and a restore sends them again.

use crate::sys::kconst::{
    TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2,
    TCP_LAST_ACK,
};

pub(super) fn bit(state: u8) -> u32 {
    1u32 << state
}

/// States whose FIN of ours is in the send queue (soccr's
/// `SNDQ_FIRST_FIN | SNDQ_SECOND_FIN`), and those where the peer acked it.
pub(super) fn our_fin(state: u8) -> bool {
    bit(state)
        & (bit(TCP_FIN_WAIT1)
            | bit(TCP_FIN_WAIT2)
            | bit(TCP_CLOSING)
            | bit(TCP_LAST_ACK)
            | bit(TCP_CLOSE))
        != 0
}
pub(super) fn our_fin_first(state: u8) -> bool {
    bit(state) & (bit(TCP_FIN_WAIT1) | bit(TCP_FIN_WAIT2) | bit(TCP_CLOSING)) != 0
}
pub(super) fn our_fin_acked(state: u8) -> bool {
    bit(state) & (bit(TCP_FIN_WAIT2) | bit(TCP_CLOSE)) != 0
}
/// States where the peer's FIN was received (soccr's `RCVQ_*_FIN`).
pub(super) fn peer_fin(state: u8) -> bool {
    bit(state) & (bit(TCP_CLOSE_WAIT) | bit(TCP_LAST_ACK) | bit(TCP_CLOSE) | bit(TCP_CLOSING)) != 0
}

/// Is `state` one this module dumps and restores?
pub fn repairable(state: u8) -> bool {
    matches!(
        state,
        TCP_ESTABLISHED
            | TCP_FIN_WAIT1
            | TCP_FIN_WAIT2
            | TCP_CLOSE_WAIT
            | TCP_LAST_ACK
            | TCP_CLOSING
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fin_states_follow_soccr() {
        // Established: no FIN either way.
        assert!(!our_fin(TCP_ESTABLISHED) && !peer_fin(TCP_ESTABLISHED));
        // shutdown(SHUT_WR) acked by the peer: FIN_WAIT2 on our side,
        // CLOSE_WAIT on the peer's.
        assert!(our_fin(TCP_FIN_WAIT2) && our_fin_first(TCP_FIN_WAIT2));
        assert!(our_fin_acked(TCP_FIN_WAIT2) && !peer_fin(TCP_FIN_WAIT2));
        assert!(peer_fin(TCP_CLOSE_WAIT) && !our_fin(TCP_CLOSE_WAIT));
        // LAST_ACK: the peer's FIN first, then ours (not acked).
        assert!(peer_fin(TCP_LAST_ACK) && our_fin(TCP_LAST_ACK));
        assert!(!our_fin_first(TCP_LAST_ACK) && !our_fin_acked(TCP_LAST_ACK));
        assert!(our_fin_first(TCP_CLOSING) && peer_fin(TCP_CLOSING));
        assert!(!repairable(TCP_CLOSE) && !repairable(crate::sys::kconst::TCP_SYN_SENT));
    }
}
