//! Every syscall number in `criu_arch::nr` must equal linux-raw-sys's
//! `__NR_*` (generated from the kernel's uapi headers) for the arch under test.

#[cfg_attr(target_arch = "x86_64", path = "nr_tables/x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "nr_tables/aarch64.rs")]
#[cfg_attr(target_arch = "powerpc64", path = "nr_tables/powerpc64.rs")]
#[cfg_attr(target_arch = "s390x", path = "nr_tables/s390x.rs")]
mod table;

#[cfg(target_arch = "x86_64")]
const SRC: &str = include_str!("../src/x86_64/nr.rs");
#[cfg(target_arch = "aarch64")]
const SRC: &str = include_str!("../src/aarch64/nr.rs");
#[cfg(target_arch = "powerpc64")]
const SRC: &str = include_str!("../src/powerpc64/nr.rs");
#[cfg(target_arch = "s390x")]
const SRC: &str = include_str!("../src/s390x/nr.rs");

#[test]
fn numbers_match_kernel_headers() {
    let mut bad = Vec::new();
    for (name, ours, theirs) in table::TABLE {
        if *ours != *theirs as usize {
            bad.push(format!("{name}: ours {ours}, kernel {theirs}"));
        }
    }
    assert!(
        bad.is_empty(),
        "mismatching syscall numbers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn table_covers_every_constant() {
    // Every `pub const X: usize` in the arch's nr.rs must be in the table.
    let names: Vec<&str> = table::TABLE.iter().map(|e| e.0).collect();
    let mut missing = Vec::new();
    for line in SRC.lines() {
        if let Some(rest) = line.trim().strip_prefix("pub const ") {
            let name = rest.split(':').next().unwrap();
            if !names.contains(&name) {
                missing.push(name.to_string());
            }
        }
    }
    assert!(missing.is_empty(), "not cross-checked: {missing:?}");
    assert!(
        names.len() > 150,
        "suspiciously few syscalls: {}",
        names.len()
    );
}
