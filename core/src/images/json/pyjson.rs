//! JSON text exactly as Python's `json.dump` writes it (what crit prints):
//! `", "` and `": "` separators, or 4-space indentation with `--pretty`,
//! and every non-ASCII character escaped (`ensure_ascii`).

use std::fmt::Write;

use serde_json::Value;

/// `json.dumps(v)` (`indent=None`) or `json.dumps(v, indent=4)`.
pub fn to_string(v: &Value, pretty: bool) -> String {
    let mut out = String::new();
    write_value(&mut out, v, pretty.then_some(0));
    out
}

fn newline(out: &mut String, level: usize) {
    out.push('\n');
    for _ in 0..level {
        out.push_str("    ");
    }
}

fn write_value(out: &mut String, v: &Value, indent: Option<usize>) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separator(out, i, indent);
                write_value(out, item, indent.map(|l| l + 1));
            }
            if let Some(l) = indent {
                newline(out, l);
            }
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                separator(out, i, indent);
                write_str(out, k);
                out.push_str(": ");
                write_value(out, item, indent.map(|l| l + 1));
            }
            if let Some(l) = indent {
                newline(out, l);
            }
            out.push('}');
        }
    }
}

fn separator(out: &mut String, i: usize, indent: Option<usize>) {
    match indent {
        Some(l) => {
            if i > 0 {
                out.push(',');
            }
            newline(out, l + 1);
        }
        None if i > 0 => out.push_str(", "),
        None => {}
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn like_python() {
        let v = json!({"a": [1, {"b": "x\u{e9}\u{1F600}\u{7f}"}], "c": {}, "d": [], "e": 18446744073709551615u64});
        assert_eq!(
            to_string(&v, false),
            r#"{"a": [1, {"b": "x\u00e9\ud83d\ude00\u007f"}], "c": {}, "d": [], "e": 18446744073709551615}"#
        );
        assert_eq!(
            to_string(&json!({"a": [1, 2], "b": {}}), true),
            "{\n    \"a\": [\n        1,\n        2\n    ],\n    \"b\": {}\n}"
        );
    }
}
