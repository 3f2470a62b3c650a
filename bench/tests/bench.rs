//! The bench's parts on real processes: the load binary's output, the
//! reference supervisor answering real notifications, the big model.
//! No timing is asserted anywhere: speed is reported by the benchmark only.

use std::ffi::CString;
use std::net::TcpListener;
use std::process::Command;

use nfguard_bench::{refsup, stats, sys, wire};

const LOAD: &str = env!("CARGO_BIN_EXE_nfguard-bench-load");
const NOP: &str = env!("CARGO_BIN_EXE_nfguard-bench-nop");
const OPS: &[&str] = &[
    "clock",
    "getppid",
    "open-ro",
    "openat-write",
    "connect",
    "execve",
    "fork",
    "thread",
];

fn sink() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
    port
}

fn load_args(dir: &std::path::Path, port: u16, ops: &str) -> Vec<String> {
    vec![
        "--dir".into(),
        dir.display().to_string(),
        "--port".into(),
        port.to_string(),
        "--nop".into(),
        NOP.into(),
        "--ops".into(),
        ops.into(),
    ]
}

#[test]
fn load_binary_prints_every_sample_of_every_op_and_the_parser_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let port = sink();
    let ops =
        "clock:200,getppid:200,open-ro:100,openat-write:50,connect:20,execve:3,fork:20,thread:20";
    let out = Command::new(LOAD)
        .args(load_args(dir.path(), port, ops))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = wire::parse_expecting(&String::from_utf8(out.stdout).unwrap(), OPS).unwrap();
    for (op, n) in [
        ("clock", 200),
        ("getppid", 200),
        ("open-ro", 100),
        ("openat-write", 50),
        ("connect", 20),
        ("execve", 3),
        ("fork", 20),
        ("thread", 20),
    ] {
        assert_eq!(m[op].len(), n, "{op}");
        let s = stats::summarize(&m[op]);
        assert!(s.median_ns > 0.0 && s.p99_ns >= s.median_ns, "{op}: {s:?}");
    }
    // The write op really created its file.
    assert!(dir.path().join("w").is_file());
}

#[test]
fn load_binary_refuses_an_unknown_op() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(LOAD)
        .args(load_args(dir.path(), 1, "frobnicate:1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown op"));
}

#[test]
fn reference_supervisor_answers_real_notifications_and_the_workload_succeeds() {
    for answer in [refsup::Answer::Continue, refsup::Answer::Emulate] {
        let dir = tempfile::tempdir().unwrap();
        let port = sink();
        let mut argv = vec![CString::new(LOAD).unwrap()];
        for a in load_args(
            dir.path(),
            port,
            "openat-write:20,connect:5,execve:2,getppid:50",
        ) {
            argv.push(CString::new(a).unwrap());
        }
        let (r, w) = sys::pipe().unwrap();
        let reader =
            std::thread::spawn(move || std::io::read_to_string(std::fs::File::from(r)).unwrap());
        let outcome = refsup::run(&argv, Some(w), answer).unwrap();
        let text = reader.join().unwrap();
        assert_eq!(outcome.exit_code(), 0, "{answer:?}");
        let m = wire::parse_expecting(&text, &["openat-write", "connect", "execve", "getppid"])
            .unwrap();
        assert_eq!(m["openat-write"].len(), 20);
        // Notified: the exec of the load binary, 22 write opens (2 warm-up), 6
        // sockets and 6 connects, 3 execs of the nop program. getppid is never notified.
        assert!(
            outcome.notifications >= 1 + 22 + 12 + 3,
            "{answer:?}: {} notifications",
            outcome.notifications
        );
        // Emulating, the 22 opens and 6 connects were made by the supervisor
        // (and worked: the load stops at the first failure).
        let want = if answer == refsup::Answer::Emulate {
            22 + 6
        } else {
            0
        };
        assert!(
            outcome.emulated >= want && (want > 0 || outcome.emulated == 0),
            "{answer:?}: {} emulated",
            outcome.emulated
        );
    }
}

#[test]
fn reference_supervisor_passes_the_exit_status_through() {
    let sh = CString::new("/bin/sh").unwrap();
    let argv = [
        sh,
        CString::new("-c").unwrap(),
        CString::new("exit 7").unwrap(),
    ];
    let outcome = refsup::run(&argv, None, refsup::Answer::Continue).unwrap();
    assert_eq!(outcome.exit_code(), 7);
    assert!(
        outcome.notifications >= 1,
        "the exec of /bin/sh is notified"
    );
}

#[test]
fn the_big_model_loads_in_nfguard_with_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    nfguard_bench::bigmodel::write(&path, 10_000).unwrap();
    let m = nfguard_sidecar::model::Model::load(&path).unwrap().unwrap();
    assert_eq!(m.len(), 10_000);
}

#[test]
fn paired_filter_cost_prints_one_ratio_per_pair() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(LOAD)
        .args(load_args(dir.path(), 1, "ab-getppid:3,ab-open-ro:2"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = wire::parse_expecting(
        &String::from_utf8(out.stdout).unwrap(),
        &["ab-getppid", "ab-open-ro"],
    )
    .unwrap();
    assert_eq!(m["ab-getppid"].len(), 3);
    assert_eq!(m["ab-open-ro"].len(), 2);
    // Ratios in parts per million: a filtered block is never free, nor 100x slower.
    assert!(
        m["ab-getppid"]
            .iter()
            .all(|r| (100_000..100_000_000).contains(r)),
        "{:?}",
        m["ab-getppid"]
    );
}
