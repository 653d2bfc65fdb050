//! Drives `criu_core::netlock` from its own process, for `tests/netlock.rs`
//! (run with a `PATH` that has no iptables or nft: the nftables lock needs
//! no command).
//!
//! ```text
//! netlock_ctl take METHOD ID keep|release|hold [SRC DST]...
//! netlock_ctl release METHOD ID [SRC DST]...
//! netlock_ctl tables
//! netlock_ctl probe
//! ```
//!
//! `hold` prints `locked` and waits for a line (or end of input) on stdin
//! before dropping the lock. Errors go to stderr with exit code 1.

use std::io::BufRead;
use std::net::SocketAddr;

use criu_core::netlock::{self, Conn, Lock, Method};

fn conns(args: &[String]) -> Vec<Conn> {
    args.chunks(2)
        .map(|p| {
            let a: SocketAddr = p[0].parse().expect("SRC");
            let b: SocketAddr = p.get(1).expect("DST").parse().expect("DST");
            Conn::new(a, b)
        })
        .collect()
}

fn run(args: &[String]) -> Result<(), netlock::NetLockError> {
    match args.first().map(String::as_str) {
        Some("take") => {
            let method: Method = args[1].parse().expect("METHOD");
            let lock = Lock::take(method, &args[2], &conns(&args[4..]))?;
            match args[3].as_str() {
                "keep" => lock.keep(),
                "release" => lock.release()?,
                "hold" => {
                    println!("locked {}", lock.table().unwrap_or("-"));
                    let mut line = String::new();
                    let _ = std::io::stdin().lock().read_line(&mut line);
                    drop(lock);
                }
                other => panic!("unknown end {other}"),
            }
            Ok(())
        }
        Some("release") => {
            let method: Method = args[1].parse().expect("METHOD");
            netlock::release_named(method, &args[2], &conns(&args[3..]))
        }
        Some("tables") => {
            for (family, name) in netlock::tables()? {
                println!("{family} {name}");
            }
            Ok(())
        }
        Some("probe") => netlock::probe_nftables(),
        _ => panic!("usage: netlock_ctl take|release|tables|probe ..."),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
