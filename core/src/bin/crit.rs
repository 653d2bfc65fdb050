fn main() {
    eprintln!("crit: not implemented yet");
    std::process::exit(1);
}
