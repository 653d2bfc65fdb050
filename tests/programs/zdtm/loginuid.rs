//! `/proc/self/loginuid` set to 4321 (as the audit subsystem's login
//! would; setting it needs CAP_AUDIT_CONTROL); after restore it must read
//! 4321 again, not the restoring tool's (usually unset) value.
#[path = "lib.rs"]
mod zdtm;

const PATH: &str = "/proc/self/loginuid";
const VALUE: u32 = 4321;

fn read() -> Result<u32, String> {
    let text = std::fs::read_to_string(PATH).map_err(|e| format!("read {PATH}: {e}"))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{PATH}: {text:?}: {e}"))
}

fn setup(_: &zdtm::Args) -> Result<(), String> {
    std::fs::write(PATH, VALUE.to_string()).map_err(|e| format!("write {PATH}: {e}"))?;
    let v = read()?;
    zdtm::ensure(v == VALUE, || format!("setup: {v}, want {VALUE}"))
}

fn check(_: ()) -> Result<(), String> {
    let v = read()?;
    zdtm::ensure(v == VALUE, || {
        format!("loginuid {v} after restore, want {VALUE}")
    })
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
