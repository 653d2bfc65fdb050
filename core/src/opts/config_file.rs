//! CRIU's configuration files (`/etc/criu/default.conf`, `--config`).

/// Turns a CRIU configuration file into command-line words: each line is
/// an option name (without `--`) followed by its arguments, `#` starts a
/// comment, and double quotes group words (`\"` is a literal quote).
///
/// ```text
/// # /etc/criu/default.conf
/// tcp-established
/// log-file "my log.txt"
/// ```
pub fn parse_config(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    for line in text.lines() {
        let mut words = Vec::new();
        let mut chars = line.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let Some(&c) = chars.peek() else { break };
            if c == '#' {
                break;
            }
            let mut word = String::new();
            if c == '"' {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' if chars.peek() == Some(&'"') => {
                            word.push(chars.next().unwrap_or('"'))
                        }
                        '"' => break,
                        c => word.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    word.push(c);
                }
            }
            words.push(word);
        }
        if let Some((first, rest)) = words.split_first() {
            args.push(format!("--{first}"));
            args.extend(rest.iter().cloned());
        }
    }
    args
}
