//! The usage and help texts, laid out like CRIU's so that people who know
//! `criu --help` find things where they expect them.

/// Short usage, printed after a usage error and at the top of `--help`.
pub const USAGE: &str = "
Usage:
  criu dump|pre-dump -t PID [<options>]
  criu restore [<options>]
  criu check [--feature FEAT]
  criu page-server
  criu service [<options>]
  criu dedup
  criu lazy-pages -D DIR [<options>]
  criu coredump -D DIR [--out DIR]

Commands:
  dump           save a process tree to image files
  pre-dump       save memory ahead of a dump, shortening its frozen time
  restore        recreate a process tree from image files
  check          test whether this kernel has what dump and restore need
  page-server    receive dumped pages over the network
  service        serve RPC requests on a unix socket
  dedup          remove pages duplicated across parent images
  cpuinfo dump   save this CPU's capabilities to an image
  cpuinfo check  test whether this CPU matches the saved capabilities
  coredump       write an ELF core file core.PID per task of the images, for
                 gdb (CRIU's criu-coredump tool); --out DIR says where
                 (default: the current directory)
";

/// Printed after a usage error.
pub const TRY_HELP: &str = "\nTry -h|--help for more info\n";

/// The rest of `--help`; `{features}` is replaced by the feature list.
const HELP_BODY: &str = "
Switches without an argument can be turned off again with a --no- prefix
(--shell-job / --no-shell-job); the last one given wins.

Dump/Restore options:

* Generic:
  -t|--tree PID         dump the process tree rooted at PID
  -d|--restore-detached do not wait for the restored tree, exit after restore
  -S|--restore-sibling  restore the root task as our sibling, not our child
  -s|--leave-stopped    after dumping, leave the tasks stopped
  -R|--leave-running    after dumping, let the tasks run on
  -D|--images-dir DIR   where the image files are (default: current directory)
     --pidfile FILE     write the pid of the restored root task, the service
                        or the page server to FILE
  -W|--work-dir DIR     where logs, pidfiles and stats go (default: the
                        images directory)
     --cpu-cap [CAP]    CPU capabilities to record or verify: a comma
                        separated list of cpu, fpu, ins, all, none; ^CAP
                        removes one; no argument means all
     --exec-cmd         after a successful restore, exec the command given
                        after '--', which becomes the restored tree's parent
  --freeze-cgroup       freeze the tree through this cgroup freezer
  --weak-sysctls        skip sysctls this kernel does not have on restore
  --lazy-pages          fetch memory pages on demand after restore (needs a
                        'criu lazy-pages -D DIR' next to it and userfaultfd)
  --stream              move images through criu-image-streamer
  --mntns-compat-mode   use the older mount restore engine instead of the
                        one based on MOVE_MOUNT_SET_GROUP
  --network-lock METHOD how to cut the network during dump and restore:
                        nftables (default), iptables or skip
  --unprivileged        run without root, with CAP_CHECKPOINT_RESTORE, and
                        accept what that cannot do

* External resources:
  --external RES        treat RES as external to the dumped tree.
                        On dump RES is one of:
                            tty[rdev:dev]
                            file[mnt_id:inode]
                            dev[major/minor]:NAME
                            unix[ino]
                            mnt[MOUNTPOINT]:COOKIE
                            mnt[]{:AUTO_OPTIONS}
                        On restore RES is one of:
                            dev[NAME]:DEVPATH
                            veth[IFNAME]:OUTNAME{@BRIDGE}
                            macvlan[IFNAME]:OUTNAME
                            mnt[COOKIE]:ROOT
                            netdev[IFNAME]:ORIGNAME

* Special resources:
     --tcp-established  dump and restore established TCP connections
     --skip-in-flight   ignore TCP connections not yet accepted
     --tcp-close        restore connected TCP sockets closed
  -r|--root PATH        root directory of the restored tree (in a mount
                        namespace)
  --evasive-devices     open a device through any path if the original one
                        is gone
  --link-remap          keep unlinked but open files by linking them back
  --ghost-limit SIZE    largest deleted file whose contents go into the
                        images (K, M, G suffixes; default 1M)
  --ghost-fiemap        save deleted files sparsely (fiemap)
  --action-script FILE  run FILE at each stage of dump and restore
  -j|--shell-job        the tree is a shell job (shares our terminal/session)
  -l|--file-locks       dump and restore file locks (only safe for a
                        container with all the lock holders inside)
  -L|--libdir DIR       directory with plugins
  --force-irmap         always resolve inotify/fanotify watch paths
  --irmap-scan-path FILE
                        add a place to look for watched files
  --manage-cgroups [m]  dump and restore cgroups: none, props, soft
                        (default), full, strict or ignore
  --cgroup-root [controller:]/newroot
                        on dump, the root of what is dumped for the
                        controller (default: where the tasks are); on
                        restore, where the controller's cgroups are made
                        (no controller: all not named otherwise)
  --cgroup-props STRING cgroup controllers and properties to dump, in the
                        simplified YAML of CRIU's cgroup properties
  --cgroup-props-file FILE
                        the same, read from FILE
  --cgroup-dump-controller NAME
                        dump only this cgroup controller (repeatable)
  --cgroup-yard PATH    use the cgroup mounts already prepared at PATH
  --lsm-profile TYPE:NAME
                        LSM profile for the restored tasks (apparmor or
                        selinux)
  --lsm-mount-context CTX
                        SELinux context for the restored mounts
  --skip-mnt PATH       leave this mount out of the mount namespace dump
  --enable-fs FSNAMES   dump and restore mounts of these file systems (comma
                        separated, or all) even if not known to work
  --inherit-fd fd[NUM]:RES
                        on restore, use our fd NUM for resource RES:
                            tty[rdev:dev]
                            pipe:[inode]
                            socket:[inode]
                            file[mnt_id:inode]
                            /memfd:name
                            path/to/file
  --empty-ns net        create the namespace but leave its contents to the
                        action scripts
  -J|--join-ns NS:{PID|NS_FILE}[,OPTIONS]
                        restore into an existing namespace, named by a pid
                        or a file; for user namespaces OPTIONS is
                        user:PID,UID,GID
  --file-validation METHOD
                        how to verify files on restore: buildid (default)
                        or filesize
  --skip-file-rwx-check do not compare file permissions on restore

Check options:
  Without options, \"criu check\" tests what dump and restore cannot work
  without, and stops at the first problem.
  --extra               also test features only some trees need
  --experimental        also test experimental features
  --all                 --extra and --experimental
  --feature FEAT        test only this feature (\"list\" prints them), one of:{features}

* Logging:
  -o|--log-file FILE    log to FILE in the work directory (- for stdout;
                        default: stderr)
     --log-pid          one log file per process: FILE.PID
  -v[v...]|--verbosity  one more level per v
  -vNUM|--verbosity=NUM set the level:
                          -v1 - errors and messages only
                          -v2 - and warnings (default)
                          -v3 - and information, with timestamps
                          -v4 - and debugging
  --display-stats       print dump/restore statistics

* Memory dumping options:
  --track-mem           track memory changes (soft-dirty) for the next dump
  --prev-images-dir DIR images of the previous dump, relative to -D
  --page-server         send the pages to a page server (see below)
  --auto-dedup          on dump, drop the pages of the parent images that
                        this dump replaces; on restore, drop each page from
                        the images once it is restored
  --pre-dump-mode MODE  splice (default: through the parasite) or read
                        (process_vm_readv)

Page/Service server options:
  --address ADDR        address of the page server or service
  --port PORT           port of the page server
  --ps-socket FD        use the connected socket FD for the page server
  -d|--daemon           go to the background once the socket is ready
  --status-fd FD        write one zero byte to FD, then close it, once
                        ready to serve
  --tls-cacert FILE     accept only certificates signed by this CA
  --tls-cacrl FILE      certificate revocation list of the CA
  --tls-cert FILE       our certificate
  --tls-key FILE        our private key
  --tls                 encrypt the page server connection with TLS
  --tls-no-cn-verify    do not check the common name of the server

Configuration files:
  --config FILE         read options from FILE (instead of the defaults
                        /etc/criu/default.conf and ~/.criu/default.conf)
  --no-default-config   do not read the default configuration files

Other options:
  -h|--help             show this text
  -V|--version          show the version
";

/// Lays `names` out like CRIU's feature list in `--help`: comma separated,
/// wrapped at 80 columns, continuation lines indented.
pub fn feature_list(names: &[&str]) -> String {
    const INDENT: &str = "                            ";
    const WIDTH: usize = 80;
    let mut out = String::new();
    let mut pos = WIDTH + 1;
    for (i, name) in names.iter().enumerate() {
        if pos + name.len() + 2 > WIDTH {
            out.truncate(out.trim_end().len());
            out.push('\n');
            out.push_str(INDENT);
            pos = INDENT.len();
        }
        out.push_str(name);
        pos += name.len();
        if i + 1 < names.len() {
            out.push_str(", ");
            pos += 2;
        }
    }
    out
}

/// The full `--help` text.
pub fn help(features: &[&str]) -> String {
    format!(
        "{USAGE}{}",
        HELP_BODY.replace("{features}", &feature_list(features))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_list_wraps() {
        let names = ["mnt_id"; 20];
        let text = feature_list(&names);
        assert!(text.lines().all(|l| l.len() <= 80 && !l.ends_with(' ')));
        assert!(text.starts_with('\n'));
        assert!(!text.trim_end().ends_with(','));
    }
}
