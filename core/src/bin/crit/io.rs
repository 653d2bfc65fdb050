//! Input, output and errors of the crit commands.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};

use criu_core::images::ImageError;

/// Inputs larger than this are refused instead of exhausting memory.
const MAX_INPUT: u64 = 4 << 30;

/// Why a command failed. A closed stdout (`crit show x | head`) is not an
/// error worth a message.
pub enum Failure {
    Msg(String),
    BrokenPipe,
}

impl Failure {
    pub fn msg(m: impl Into<String>) -> Self {
        Failure::Msg(m.into())
    }
}

impl From<ImageError> for Failure {
    fn from(e: ImageError) -> Self {
        Failure::Msg(e.to_string())
    }
}

/// The whole input (a file, or stdin when `path` is `None`) and its name.
pub fn read_input(path: Option<&str>) -> Result<(Vec<u8>, String), Failure> {
    let (mut reader, name): (Box<dyn Read>, String) = match path {
        Some(p) => (
            Box::new(File::open(p).map_err(|e| Failure::msg(format!("{p}: {e}")))?),
            p.to_string(),
        ),
        None => {
            if io::stdin().is_terminal() {
                eprintln!("crit: reading from the terminal (use -i FILE to name the input)");
            }
            (Box::new(io::stdin()), "<stdin>".to_string())
        }
    };
    let mut data = Vec::new();
    reader
        .by_ref()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut data)
        .map_err(|e| Failure::msg(format!("{name}: {e}")))?;
    if data.len() as u64 > MAX_INPUT {
        return Err(Failure::msg(format!(
            "{name}: larger than {MAX_INPUT} bytes, refused"
        )));
    }
    Ok((data, name))
}

/// Writes `data` to a file (created or truncated) or to stdout.
pub fn write_output(path: Option<&str>, data: &[u8]) -> Result<(), Failure> {
    let result = match path {
        Some(p) => File::create(p).and_then(|mut f| f.write_all(data)),
        None => {
            let mut out = io::stdout().lock();
            out.write_all(data).and_then(|()| out.flush())
        }
    };
    result.map_err(|e| match e.kind() {
        io::ErrorKind::BrokenPipe if path.is_none() => Failure::BrokenPipe,
        _ => Failure::msg(format!("{}: {e}", path.unwrap_or("<stdout>"))),
    })
}
