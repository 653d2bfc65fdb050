//! The working directory and the umask: the program moves into a nested
//! directory whose name has spaces and non-ASCII characters and sets an
//! unusual umask. After restore both must be back: getcwd, a relative open
//! in the directory, and the mode a new file gets.
#[path = "lib.rs"]
mod zdtm;

use std::os::unix::fs::PermissionsExt;
use zdtm::ensure;

const UMASK: u32 = 0o0351;

fn main() {
    zdtm::run(
        |args| {
            let cwd = args.dir.join("sub dir").join("ñested");
            std::fs::create_dir_all(&cwd).map_err(|e| e.to_string())?;
            std::fs::write(cwd.join("marker"), "here").map_err(|e| e.to_string())?;
            std::env::set_current_dir(&cwd).map_err(|e| format!("chdir: {e}"))?;
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(UMASK));
            Ok(cwd)
        },
        |_| {},
        |cwd| {
            let now = std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?;
            ensure(now == cwd, || format!("cwd {now:?}, was {cwd:?}"))?;
            let marker = std::fs::read_to_string("marker").map_err(|e| format!("marker: {e}"))?;
            ensure(marker == "here", || format!("marker holds {marker:?}"))?;
            let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(UMASK));
            ensure(old.bits() == UMASK, || {
                format!("umask {:o}, was {UMASK:o}", old.bits())
            })?;
            std::fs::write("new", "").map_err(|e| e.to_string())?;
            let mode = std::fs::metadata("new")
                .map_err(|e| e.to_string())?
                .permissions()
                .mode();
            // Rust creates files with 0666; the umask takes 0351 away.
            ensure(mode & 0o777 == 0o426, || {
                format!("new file has mode {:o}", mode & 0o777)
            })?;
            let root = std::fs::read_link("/proc/self/root").map_err(|e| e.to_string())?;
            ensure(root == std::path::Path::new("/"), || {
                format!("root is {root:?}")
            })
        },
    );
}
