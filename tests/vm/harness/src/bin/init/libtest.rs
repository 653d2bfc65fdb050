//! Reading the output of a Rust test binary (libtest's console format, run
//! with `--nocapture` so that the tests' own skip messages show).

/// What a test binary's output says about its tests.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    /// Tests that passed (those that skipped themselves included).
    pub passed: u32,
    pub ignored: u32,
    /// Names of the tests that failed.
    pub failed_names: Vec<String>,
    /// "name: why" of each test that skipped itself, once per test.
    pub skipped: Vec<String>,
}

/// Adds up the `test result:` lines and collects failures and skips. A
/// test skips itself by printing `SKIPPED name: why` (tests/common) or
/// `skipped: why`; with `--nocapture` that may follow `test name ... ` on
/// the same line.
pub fn summarize(log: &str) -> Summary {
    let mut summary = Summary::default();
    for line in log.lines() {
        if let Some(result) = line.strip_prefix("test result: ") {
            summary.passed += count_before(result, " passed");
            summary.ignored += count_before(result, " ignored");
        } else if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.strip_suffix(" ... FAILED"))
        {
            summary.failed_names.push(name.to_string());
        }
        let skip = match (line.find("SKIPPED "), line.find("skipped: ")) {
            (Some(at), _) => Some(&line[at + "SKIPPED ".len()..]),
            (None, Some(at)) => Some(&line[at..]),
            (None, None) => None,
        };
        if let Some(skip) = skip {
            let key = skip.split(':').next().unwrap_or_default();
            if !summary
                .skipped
                .iter()
                .any(|s| s.split(':').next() == Some(key))
            {
                summary.skipped.push(skip.trim_end().to_string());
            }
        }
    }
    summary
}

/// The number just before `what` in `"ok. 3 passed; 0 failed; ..."`.
fn count_before(text: &str, what: &str) -> u32 {
    text.split(';')
        .find_map(|part| part.trim().strip_suffix(what.trim_start()))
        .and_then(|n| n.trim().rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The lines of a failed program's log worth showing: each panic with its
/// message, else the end of the log; at most `max` lines. A long message
/// (a test quoting a whole criu log) keeps its first lines and its end,
/// where the log says how the run ended.
pub fn excerpt(log: &str, max: usize) -> Vec<String> {
    const HEAD: usize = 4;
    const TAIL: usize = 24;
    let lines: Vec<&str> = log.lines().collect();
    let mut picked: Vec<String> = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        if !line.contains("panicked at") {
            continue;
        }
        picked.push(line.to_string());
        let message: Vec<&str> = lines[at + 1..]
            .iter()
            .take_while(|next| {
                !next.contains("panicked at")
                    && !next.starts_with("note: ")
                    && !next.starts_with("stack backtrace:")
                    && !next.starts_with("test ")
            })
            .copied()
            .collect();
        if message.len() > HEAD + TAIL + 1 {
            picked.extend(message[..HEAD].iter().map(|l| l.to_string()));
            picked.push(format!("[... {} lines ...]", message.len() - HEAD - TAIL));
            picked.extend(
                message[message.len() - TAIL..]
                    .iter()
                    .map(|l| l.to_string()),
            );
        } else {
            picked.extend(message.iter().map(|l| l.to_string()));
        }
    }
    if picked.is_empty() {
        let from = lines.len().saturating_sub(max);
        picked = lines[from..].iter().map(|l| l.to_string()).collect();
    }
    picked.truncate(max);
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failures_and_skips() {
        let log = "\
running 3 tests
test a ... SKIPPED a: needs ptrace
ok
test b ... FAILED
test c ... ok
skipped: no fixtures at /x
thread 'b' panicked at tests/b.rs:3:5:
boom
note: run with `RUST_BACKTRACE=1`
failures:
test result: FAILED. 2 passed; 1 failed; 4 ignored; 0 measured; 0 filtered out
test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out
";
        let s = summarize(log);
        assert_eq!(s.passed, 3);
        assert_eq!(s.ignored, 4);
        assert_eq!(s.failed_names, ["b"]);
        assert_eq!(s.skipped, ["a: needs ptrace", "skipped: no fixtures at /x"]);
        assert_eq!(
            excerpt(log, 9),
            ["thread 'b' panicked at tests/b.rs:3:5:", "boom"]
        );
        assert_eq!(excerpt("a\nb\nc", 2), ["b", "c"]);
        let long: String = std::iter::once("thread 't' panicked at x.rs:1:1:".to_string())
            .chain((1..=100).map(|i| format!("log line {i}")))
            .chain(std::iter::once("note: run with".to_string()))
            .collect::<Vec<_>>()
            .join("\n");
        let e = excerpt(&long, 40);
        assert_eq!(e.len(), 1 + 4 + 1 + 24);
        assert_eq!(e[4], "log line 4");
        assert_eq!(e[5], "[... 72 lines ...]");
        assert_eq!(e[6], "log line 77");
        assert_eq!(e.last().unwrap(), "log line 100");
    }
}
