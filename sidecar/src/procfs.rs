//! What /proc says about a process. The parsers are pure functions over the
//! file's text (tested on captured files); the readers are thin.

use std::fs;
use std::path::PathBuf;

use serde::Serialize;

/// The fields of /proc/<pid>/status the supervisor uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    /// The thread group (process) of the task.
    pub tgid: i32,
    pub ppid: i32,
    /// real, effective, saved, filesystem
    pub uid: [u32; 4],
    pub gid: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Effective capabilities (bit n: capability n).
    pub cap_eff: u64,
    pub threads: u32,
    pub umask: u32,
}

/// Parses the text of /proc/<pid>/status.
pub fn parse_status(text: &str) -> Option<Status> {
    let mut s = Status {
        umask: 0o022,
        ..Status::default()
    };
    let ids = |v: &str| -> Option<[u32; 4]> {
        let mut it = v.split_whitespace().map(|x| x.parse::<u32>().ok());
        Some([it.next()??, it.next()??, it.next()??, it.next()??])
    };
    let mut seen_uid = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Name" => s.name = value.to_string(),
            "Tgid" => s.tgid = value.parse().ok()?,
            "PPid" => s.ppid = value.parse().ok()?,
            "Uid" => {
                s.uid = ids(value)?;
                seen_uid = true;
            }
            "Gid" => s.gid = ids(value)?,
            "Groups" => {
                s.groups = value
                    .split_whitespace()
                    .map(|g| g.parse().ok())
                    .collect::<Option<_>>()?
            }
            "CapEff" => s.cap_eff = u64::from_str_radix(value, 16).ok()?,
            "Threads" => s.threads = value.parse().ok()?,
            "Umask" => s.umask = u32::from_str_radix(value, 8).ok()?,
            _ => {}
        }
    }
    seen_uid.then_some(s)
}

/// Parses /proc/<pid>/stat: (ppid, start time in clock ticks since boot).
/// The command name may contain spaces and parentheses, so fields are counted
/// from the last ')'.
pub fn parse_stat(text: &str) -> Option<(i32, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state(3) ppid(4) ... starttime(22) => indexes 0, 1, 19.
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// The process group in /proc/<pid>/stat (field 5, counted from the last ')').
pub fn parse_pgrp(text: &str) -> Option<i32> {
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// The process group of `pid`.
pub fn read_pgrp(pid: i32) -> Option<i32> {
    parse_pgrp(&read_small(&format!("/proc/{pid}/stat"))?)
}

/// The mapping of a /proc/<pid>/maps text that holds `addr`: its
/// permissions (`r-xp`) and what it maps (a path, or empty).
pub fn maps_entry(maps: &str, addr: u64) -> Option<(&str, &str)> {
    maps.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (lo, hi) = f.next()?.split_once('-')?;
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).ok()?,
            u64::from_str_radix(hi, 16).ok()?,
        );
        let perms = f.next()?;
        let path = f.nth(3).unwrap_or("");
        (lo <= addr && addr < hi).then_some((perms, path))
    })
}

/// Is `addr` in memory the kernel can read for the task although another
/// process cannot: an execute-only page, or a memfd_secret one?
pub fn maps_unreadable_to_others(maps: &str, addr: u64) -> bool {
    maps_entry(maps, addr).is_some_and(|(perms, path)| {
        perms.starts_with('r') || perms.contains('x') || path.starts_with("/secretmem")
    })
}

/// Splits /proc/<pid>/cmdline into arguments.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Reads a small /proc file with one read(2): open, read, close (the supervisor
/// does this on its hot path; `read_to_string` costs two more syscalls).
pub fn read_small(path: &str) -> Option<String> {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    let n = fs::File::open(path).ok()?.read(&mut buf).ok()?;
    if n == buf.len() {
        // Longer than expected: fall back to reading it whole.
        return fs::read_to_string(path).ok();
    }
    String::from_utf8(buf[..n].to_vec()).ok()
}

pub fn read_status(pid: i32) -> Option<Status> {
    parse_status(&read_small(&format!("/proc/{pid}/status"))?)
}

pub fn read_stat(pid: i32) -> Option<(i32, u64)> {
    parse_stat(&read_small(&format!("/proc/{pid}/stat"))?)
}

pub fn read_cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| parse_cmdline(&b))
        .unwrap_or_default()
}

/// readlink of /proc/<pid>/<what> (`exe`, `cwd`, `fd/3`), as text.
pub fn read_link(pid: i32, what: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/{what}"))
        .ok()
        .map(|p: PathBuf| p.to_string_lossy().into_owned())
}

/// The executable of `pid`, or `?` when it cannot be read (exited, no rights).
pub fn exe_of(pid: i32) -> String {
    read_link(pid, "exe").unwrap_or_else(|| "?".to_string())
}

/// One ancestor in an event's process tree.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Ancestor {
    pub pid: i32,
    pub exe: String,
    pub argv: Vec<String>,
}

/// The chain of parents of `pid` (nearest first), at most `max` long, stopping
/// after `stop` (the keeper: what is above it is not the workload's), at pid 1,
/// or where /proc can no longer be read.
pub fn ancestors(pid: i32, stop: i32, max: usize) -> Vec<Ancestor> {
    let mut out = Vec::new();
    let mut cur = pid;
    while out.len() < max {
        let Some((ppid, _)) = read_stat(cur) else {
            break;
        };
        if ppid <= 0 {
            break;
        }
        out.push(Ancestor {
            pid: ppid,
            exe: exe_of(ppid),
            argv: read_cmdline(ppid),
        });
        if ppid == 1 || ppid == stop {
            break;
        }
        cur = ppid;
    }
    out
}

/// Numeric entries of /proc: every process visible in our PID namespace.
pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tosmo-hlr\nUmask:\t0027\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\nPPid:\t4200\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1001\nGid:\t100\t100\t100\t100\nFDSize:\t64\nGroups:\t100 \nThreads:\t3\nCapEff:\t00000000000000c0\n";

    #[test]
    fn status_fields_come_from_a_captured_file() {
        let s = parse_status(STATUS).unwrap();
        assert_eq!(s.name, "osmo-hlr");
        assert_eq!(s.ppid, 4200);
        assert_eq!(s.tgid, 4242);
        assert_eq!(s.uid, [1000, 1000, 1000, 1001]);
        assert_eq!(s.gid[3], 100);
        assert_eq!(s.groups, vec![100]);
        assert_eq!(s.cap_eff, 0xc0, "CAP_SETGID and CAP_SETUID");
        assert_eq!(s.threads, 3);
        assert_eq!(s.umask, 0o027);
        assert!(
            parse_status("Name:\tx\n").is_none(),
            "no Uid line: not a status file"
        );
    }

    #[test]
    fn pidfd_info_gives_the_same_filesystem_ids_as_status_per_thread() {
        // The supervisor reads a thread's fsuid/fsgid with PIDFD_GET_INFO
        // (linux 6.13) and falls back to /proc/<tid>/status: both must agree,
        // for a thread whose ids differ from its process's (setfsuid is per thread).
        let root = nix::unistd::geteuid().is_root();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            if root {
                crate::sys::set_thread_fs_ids(1234, 4321);
            }
            tx.send(nix::unistd::gettid().as_raw()).unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let st = read_status(tid).unwrap();
        let want = if root {
            (1234, 4321)
        } else {
            (st.uid[3], st.gid[3])
        };
        assert_eq!((st.uid[3], st.gid[3]), want);
        use std::os::fd::AsFd;
        let pidfd = crate::sys::pidfd_open_thread(tid).unwrap();
        assert_eq!(crate::sys::pidfd_fs_ids(pidfd.as_fd()).unwrap(), want);
        done_tx.send(()).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn stat_survives_a_command_name_with_parentheses_and_spaces() {
        let text = "77 (a) b (c) S 12 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        assert_eq!(parse_stat(text), Some((12, 987654)));
        assert_eq!(parse_pgrp(text), Some(77));
        let maps = "5555a000-5555b000 --xp 00000000 fe:01 12 /usr/bin/x\n7f00-7f10 ---p 0 0 0\n8000-9000 rw-s 00000000 00:01 3 /secretmem (deleted)\n";
        assert_eq!(maps_entry(maps, 0x5555a800), Some(("--xp", "/usr/bin/x")));
        assert!(maps_entry(maps, 0x5555b000).is_none(), "the end is outside");
        assert!(maps_unreadable_to_others(maps, 0x5555a800), "execute-only");
        assert!(
            !maps_unreadable_to_others(maps, 0x7f00),
            "PROT_NONE: the kernel faults too"
        );
        assert!(maps_unreadable_to_others(maps, 0x8000), "memfd_secret");
        assert!(maps_entry("garbage", 1).is_none());
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn cmdline_splits_on_nul_and_keeps_empty_arguments() {
        assert_eq!(parse_cmdline(b"ps\0-ef\0"), vec!["ps", "-ef"]);
        assert_eq!(parse_cmdline(b"sh\0\0x\0"), vec!["sh", "", "x"]);
        assert!(parse_cmdline(b"").is_empty());
    }
}
