//! `crit`: CRIU's image tool. Same commands, options and output as CRIU's
//! Python crit: `decode`, `encode`, `show`, `info`, `x DIR ps|fds|mems|rss`.

mod explore;
mod io;

use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};
use criu_core::images::json::{self, DecodeOptions, pyjson};

use crate::io::{Failure, read_input, write_output};

fn cli() -> Command {
    let input = |help: &'static str| Arg::new("in").short('i').long("in").help(help);
    let output = |help: &'static str| Arg::new("out").short('o').long("out").help(help);
    let tls = || {
        Arg::new("tls-key")
            .long("tls-key")
            .help("private key for encrypted images (not supported: such images are refused)")
    };
    Command::new("crit")
        .about("CRiu Image Tool")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            Command::new("decode")
                .about("convert criu image from binary type to json")
                .arg(
                    Arg::new("pretty")
                        .long("pretty")
                        .action(ArgAction::SetTrue)
                        .help("Multiline with indents and some numerical fields in field-specific format"),
                )
                .arg(input("criu image in binary format to be decoded (stdin by default)"))
                .arg(output("where to put criu image in json format (stdout by default)"))
                .arg(tls()),
        )
        .subcommand(
            Command::new("encode")
                .about("convert criu image from json type to binary")
                .arg(input("criu image in json format to be encoded (stdin by default)"))
                .arg(output("where to put criu image in binary format (stdout by default)")),
        )
        .subcommand(
            Command::new("info")
                .about("show info about image")
                .arg(Arg::new("in").required(true)),
        )
        .subcommand(
            Command::new("x")
                .about("explore image dir")
                .arg(Arg::new("dir").required(true))
                .arg(
                    Arg::new("what")
                        .required(true)
                        .value_parser(["ps", "fds", "mems", "rss"]),
                )
                .arg(tls()),
        )
        .subcommand(
            Command::new("show")
                .about("convert criu image from binary to human-readable json")
                .arg(Arg::new("in").required(true))
                .arg(
                    Arg::new("nopl")
                        .long("nopl")
                        .action(ArgAction::SetTrue)
                        .help("do not show entry payload (if exists)"),
                )
                .arg(tls()),
        )
}

fn main() -> ExitCode {
    let matches = cli().get_matches();
    let result = match matches.subcommand() {
        Some(("decode", m)) => decode(m, m.get_flag("pretty"), false, m.get_one::<String>("out")),
        Some(("show", m)) => decode(m, true, m.get_flag("nopl"), None),
        Some(("encode", m)) => encode(m),
        Some(("info", m)) => info(m),
        Some(("x", m)) => explore::run(
            m.get_one::<String>("dir")
                .map(String::as_str)
                .unwrap_or("."),
            m.get_one::<String>("what")
                .map(String::as_str)
                .unwrap_or("ps"),
        ),
        _ => Err(Failure::msg("no command given")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Msg(m)) => {
            eprintln!("crit: {m}");
            ExitCode::FAILURE
        }
    }
}

fn decode(m: &ArgMatches, pretty: bool, nopl: bool, out: Option<&String>) -> Result<(), Failure> {
    let input = m.get_one::<String>("in");
    let (data, name) = read_input(input.map(String::as_str))?;
    let decoded = json::decode_image(&data, &name, DecodeOptions { pretty, nopl })?;
    for w in &decoded.warnings {
        eprintln!("crit: warning: {w}");
    }
    let mut text = pyjson::to_string(&decoded.json, pretty);
    if out.is_none() {
        // crit ends the JSON with a newline only on stdout.
        text.push('\n');
    }
    write_output(out.map(String::as_str), text.as_bytes())
}

fn encode(m: &ArgMatches) -> Result<(), Failure> {
    let (data, name) = read_input(m.get_one::<String>("in").map(String::as_str))?;
    let value: serde_json::Value = serde_json::from_slice(&data).map_err(|e| {
        Failure::msg(format!(
            "{name}: cannot read JSON ({e}); encode expects the JSON that decode prints"
        ))
    })?;
    let bytes = json::encode_image(&value, &name)?;
    write_output(m.get_one::<String>("out").map(String::as_str), &bytes)
}

fn info(m: &ArgMatches) -> Result<(), Failure> {
    let (data, name) = read_input(m.get_one::<String>("in").map(String::as_str))?;
    let decoded = json::decode_image(&data, &name, DecodeOptions::default())?;
    let magic = decoded.json["magic"].clone();
    let mut count = decoded.json["entries"].as_array().map_or(0, Vec::len);
    if magic == "PAGEMAP" {
        // The pagemap head is not counted, as in crit.
        count = count.saturating_sub(1);
    }
    let text = pyjson::to_string(&serde_json::json!({"magic": magic, "count": count}), true);
    write_output(None, format!("{text}\n").as_bytes())
}
