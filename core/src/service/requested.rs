//! Which fields of a request's `criu_opts` ask for something, as the
//! support table ([`crate::opts::support::RPC`]) names them.
//!
//! A field asks for something when it is set to a value other than the one
//! meaning "nothing": a switch set to true, a non-empty string or list, a
//! number (`images_dir_fd` other than -1, `empty_ns` other than 0). Clients
//! such as runc set many switches to false on every request; those ask for
//! nothing and are not refused.

use crate::images::pb::rpc::{CriuCgMode, CriuOpts, CriuPreDumpMode};

/// Every field of `o` that asks for something, as `(field, value)`; the
/// value is the enum name for `manage_cgroups_mode` and `pre_dump_mode`,
/// empty otherwise.
pub fn requested(o: &CriuOpts) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut add = |name: &'static str, on: bool| {
        if on {
            out.push((name, String::new()));
        }
    };
    macro_rules! switches {
        ($($f:ident),* $(,)?) => { $( add(stringify!($f), o.$f == Some(true)); )* };
    }
    macro_rules! strings {
        ($($f:ident),* $(,)?) => {
            $( add(stringify!($f), o.$f.as_deref().is_some_and(|s| !s.is_empty())); )*
        };
    }
    macro_rules! numbers {
        ($($f:ident),* $(,)?) => { $( add(stringify!($f), o.$f.is_some()); )* };
    }
    macro_rules! lists {
        ($($f:ident),* $(,)?) => { $( add(stringify!($f), !o.$f.is_empty()); )* };
    }
    add("images_dir_fd", o.images_dir_fd != -1);
    add("empty_ns", o.empty_ns.is_some_and(|n| n != 0));
    add("ps", o.ps.is_some());
    // A configuration file that does not exist asks for nothing: CRIU
    // skips it, and runc names `/etc/criu/runc.conf` on every request
    // whether or not it exists.
    add(
        "config_file",
        o.config_file
            .as_deref()
            .is_some_and(|f| !f.is_empty() && std::path::Path::new(f).exists()),
    );
    switches!(
        leave_running,
        ext_unix_sk,
        tcp_established,
        evasive_devices,
        shell_job,
        file_locks,
        notify_scripts,
        track_mem,
        auto_dedup,
        link_remap,
        force_irmap,
        manage_cgroups,
        rst_sibling,
        auto_ext_mnt,
        ext_sharing,
        ext_masters,
        tcp_skip_in_flight,
        weak_sysctls,
        lazy_pages,
        orphan_pts_master,
        tcp_close,
        tls,
        tls_no_cn_verify,
        mntns_compat_mode,
        skip_file_rwx_check,
        unprivileged,
        leave_stopped,
        display_stats,
        log_to_stderr,
        allow_uprobes,
    );
    strings!(
        images_dir,
        log_file,
        root,
        parent_img,
        cgroup_props,
        cgroup_props_file,
        freeze_cgroup,
        lsm_profile,
        tls_cacert,
        tls_cacrl,
        tls_cert,
        tls_key,
        cgroup_yard,
        lsm_mount_context,
    );
    numbers!(
        pid,
        log_level,
        work_dir_fd,
        cpu_cap,
        ghost_limit,
        timeout,
        status_fd,
        pidfd_store_sk,
        network_lock,
    );
    lists!(
        veths,
        exec_cmd,
        ext_mnt,
        cg_root,
        inherit_fd,
        skip_mnt,
        enable_fs,
        unix_sk_ino,
        irmap_scan_paths,
        join_ns,
        cgroup_dump_controller,
    );
    // Each `external` by its value (`net[INODE]:KEY` works, others not yet).
    for e in &o.external {
        out.push(("external", e.clone()));
    }
    if let Some(mode) = o.manage_cgroups_mode {
        let name = CriuCgMode::try_from(mode).map_or_else(
            |_| mode.to_string(),
            |m| m.as_str_name().trim_start_matches("CG_").to_owned(),
        );
        out.push(("manage_cgroups_mode", name));
    }
    if let Some(mode) = o.pre_dump_mode {
        let name = CriuPreDumpMode::try_from(mode)
            .map_or_else(|_| mode.to_string(), |m| m.as_str_name().to_owned());
        out.push(("pre_dump_mode", name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// `(name, number, type)` of every field of `criu_opts` in our copy of
    /// CRIU's `rpc.proto`.
    fn proto_fields() -> Vec<(String, u32, String)> {
        let text = include_str!("../../proto/rpc.proto");
        let body = text
            .split("message criu_opts {")
            .nth(1)
            .and_then(|b| b.split("\n}").next())
            .expect("criu_opts in rpc.proto");
        body.lines()
            .map(|l| l.split("//").next().unwrap_or("").trim())
            .filter(|l| {
                l.starts_with("optional") || l.starts_with("required") || l.starts_with("repeated")
            })
            .map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let number = l.split('=').nth(1).unwrap().trim();
                let number: u32 = number
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                (words[2].to_owned(), number, words[1].to_owned())
            })
            .collect()
    }

    /// A `criu_opts` with only field `number` set to a value that asks for
    /// something, built on the wire as a client would send it.
    fn with_field(number: u32, ty: &str) -> CriuOpts {
        let mut bytes = Vec::new();
        let scalar = matches!(
            ty,
            "bool"
                | "int32"
                | "uint32"
                | "criu_cg_mode"
                | "criu_pre_dump_mode"
                | "criu_network_lock_method"
        );
        let wire_type = if scalar { 0 } else { 2 };
        prost::encoding::encode_varint(u64::from(number << 3 | wire_type), &mut bytes);
        match ty {
            _ if scalar => bytes.push(3),
            // A configuration file asks for something only if it exists.
            "string" if number == 51 => bytes.extend_from_slice(&[1, b'/']),
            "string" => bytes.extend_from_slice(&[1, b'x']),
            // An empty sub-message is still one element.
            _ => bytes.push(0),
        }
        CriuOpts::decode(&bytes[..]).expect("decode")
    }

    /// Every field of `rpc.proto` is seen when set, and has a line in the
    /// support table; every line of the table is a field. A field added
    /// to the proto without either fails here.
    #[test]
    fn every_field_is_seen_and_in_the_table() {
        let fields = proto_fields();
        assert!(fields.len() > 60, "{fields:?}");
        for (name, number, ty) in &fields {
            let o = with_field(*number, ty);
            let got = requested(&o);
            assert!(
                got.iter().any(|(n, _)| n == name),
                "field {name} ({ty} = {number}) set but not seen: {got:?}"
            );
            assert!(
                crate::opts::support::RPC.iter().any(|e| e.name() == name),
                "field {name} has no line in opts::support::RPC: say whether it works or is refused"
            );
        }
        for e in crate::opts::support::RPC {
            assert!(
                fields.iter().any(|(n, _, _)| n == e.name()),
                "{} is in opts::support::RPC but not a field of criu_opts",
                e.key
            );
        }
    }

    #[test]
    fn false_and_empty_ask_for_nothing() {
        let o = CriuOpts {
            images_dir_fd: -1,
            tcp_established: Some(false),
            root: Some(String::new()),
            empty_ns: Some(0),
            ..Default::default()
        };
        assert!(requested(&o).is_empty());
        let o = CriuOpts {
            images_dir_fd: 3,
            tcp_established: Some(true),
            manage_cgroups_mode: Some(CriuCgMode::Ignore as i32),
            ..Default::default()
        };
        assert_eq!(
            requested(&o),
            [
                ("images_dir_fd", String::new()),
                ("tcp_established", String::new()),
                ("manage_cgroups_mode", "IGNORE".to_owned())
            ]
        );
    }
}
