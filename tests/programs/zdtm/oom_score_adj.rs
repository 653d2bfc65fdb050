//! `/proc/self/oom_score_adj` raised to 345 (raising needs no privilege);
//! after restore it must read 345 again, not the restoring tool's value.
#[path = "lib.rs"]
mod zdtm;

const PATH: &str = "/proc/self/oom_score_adj";
const VALUE: i32 = 345;

fn read() -> Result<i32, String> {
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
        format!("oom_score_adj {v} after restore, want {VALUE}")
    })
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
