//! Exec verified on what the kernel loaded, at the tracer's exec stop.
//!
//! `execve` cannot be emulated: when the supervisor lets one continue, the
//! kernel reads the path again from the caller's memory and resolves it
//! again in the caller's cwd and root. Anything that can write that memory or
//! change that cwd between our check and the kernel's read (another thread, a
//! process sharing a `MAP_SHARED` page or the whole address space, a
//! `CLONE_FS` sibling calling chdir) can make the kernel run another
//! program. So the check is made twice:
//!
//! 1. at the seccomp notification, on the path as resolved by the supervisor
//!    (`supervisor.rs`), which, when it lets the call through, records a
//!    [`Ticket`] for the calling thread: who asked (the model's parent), the
//!    program's real path, and its identity (device and inode of the file the
//!    supervisor resolved), with, for a `#!` script, the identity of the
//!    interpreter the kernel will load in its place (`exec.rs`);
//! 2. at `PTRACE_EVENT_EXEC` (the keeper, tracing the workload, stops the task
//!    after the new program is mapped and before its first instruction, and
//!    asks, `keeper_link.rs`): [`ExecTickets::verify`] compares the file the
//!    kernel actually loaded (`fstat` of `/proc/<pid>/exe`) with the ticket.
//!    Any difference, or no ticket at all, and the task is killed where it
//!    stands in enforce mode; in alert mode it runs, with an event naming
//!    what the kernel loaded (the seccomp stage saw another program).
//!
//! Identity, not path: a path can name another file a moment later, a device
//! and inode pair held by the task's `exe` link cannot. For a script, the
//! kernel's `exe` is the interpreter; the script's own file is checked through
//! the path the kernel put in the new argv (the new memory is the task's
//! alone: the other threads died in the exec and a shared address space does
//! not survive it). The script's *content* is read later by the interpreter,
//! with an open nfguard does not see: docs/security.md says what that leaves.
//!
//! Tickets can outlive a supervisor (it may die between letting an exec
//! through and answering its stop; the keeper asks the next one): with
//! [`ExecTickets::persist`] they are also kept in a file beside the socket,
//! one JSON line per change, and read back at start.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nfguard_common::Mode;
use serde::{Deserialize, Serialize};

use super::ledger::InsideExecs;
use crate::event::Kind;
use crate::keeper_link::ExecStop;
use crate::model::{Model, Observation};
use crate::resolve::{self, Resolved, Root};

/// What makes a file the same file: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ident {
    pub dev: u64,
    pub ino: u64,
}

impl Ident {
    /// The identity of the file `fd` refers to.
    pub fn of(fd: &OwnedFd) -> io::Result<Ident> {
        let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
        Ok(Ident {
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }

    /// The identity of the program task `pid` runs now.
    pub fn of_exe(pid: i32) -> io::Result<Ident> {
        Ident::of(&resolve::open_path(&format!("/proc/{pid}/exe"), 0)?)
    }
}

/// A `#!` script: what the kernel loads for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// The program the kernel ends up loading (after nested `#!` lines);
    /// None when it cannot be found (the kernel will fail the exec, and an
    /// exec that succeeds anyway is refused).
    pub interpreter: Option<Ident>,
    /// The index in the new argv of the script's own path (the kernel puts
    /// each interpreter and its optional argument before it).
    pub path_index: usize,
    /// The new argv before that index, as the kernel writes it: each `#!`
    /// line's interpreter and optional argument, the innermost first. A
    /// task that execs the interpreter itself chooses its argv: with this
    /// prefix and the script's path at `path_index`, the interpreter can
    /// only run the script as the kernel would have (an empty prefix, from
    /// an older ticket, is never matched).
    #[serde(default)]
    pub prefix: Vec<String>,
}

/// What the supervisor checked when it let an exec through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The model's parent: the caller's program, or `(launcher)`.
    pub parent: String,
    /// The real path of the program the supervisor resolved.
    pub program: String,
    /// Its identity.
    pub ident: Ident,
    /// For a script, the interpreter.
    pub script: Option<Script>,
}

/// How many nested `#!` lines the kernel follows (fs/exec.c, exec_binprm).
const MAX_INTERPRETERS: usize = 5;
/// How much of a file the kernel reads to recognise it (BINPRM_BUF_SIZE).
const BINPRM_BUF: usize = 256;

impl Ticket {
    /// The ticket for `program` (real path `real`, held by `file`), run by
    /// a task whose root is `root` and cwd (for a relative interpreter)
    /// `cwd()`. Reading a `#!` line opens the file, which the exec-session
    /// watcher sees (inotify `IN_OPEN`): each read is noted in `reads` first,
    /// as an open of nfguard's own for an inside exec.
    pub fn new(
        parent: String,
        real: String,
        file: &OwnedFd,
        root: Option<&Root>,
        cwd: impl Fn() -> Option<String>,
        reads: &InsideExecs,
    ) -> io::Result<Ticket> {
        let ident = Ident::of(file)?;
        let mut script = None;
        if let Some((first, arg)) = shebang(file, &real, reads) {
            let mut prefix: Vec<String> = std::iter::once(first.clone()).chain(arg).collect();
            let mut next = Some(first);
            let mut interpreter = None;
            for _ in 0..MAX_INTERPRETERS {
                let Some(interp) = next.take() else { break };
                let Some((r, fd)) =
                    root.and_then(|r| resolve_in(r, &interp, &cwd).map(|fd| (r, fd)))
                else {
                    break;
                };
                let name = r.real_path(&fd).unwrap_or_default();
                match shebang(&fd, &name, reads) {
                    Some((further, arg)) => {
                        // The kernel puts the next interpreter (and its
                        // argument) before what it had.
                        let outer: Vec<String> =
                            std::iter::once(further.clone()).chain(arg).collect();
                        prefix.splice(0..0, outer);
                        next = Some(further);
                    }
                    None => interpreter = Some(Ident::of(&fd)?),
                }
            }
            script = Some(Script {
                interpreter,
                path_index: prefix.len(),
                prefix,
            });
        }
        Ok(Ticket {
            parent,
            program: real,
            ident,
            script,
        })
    }
}

/// Resolves `path` (absolute, or relative to the task's cwd) in `root`, following links.
fn resolve_in(root: &Root, path: &str, cwd: &impl Fn() -> Option<String>) -> Option<OwnedFd> {
    let abs = if path.starts_with('/') {
        path.to_string()
    } else {
        resolve::absolutize(&cwd()?, path)
    };
    match resolve::resolve(root, &abs, true).ok()? {
        Resolved::Existing { fd, .. } => Some(fd),
        Resolved::Missing { .. } => None,
    }
}

/// The interpreter a `#!` file names, and whether the line has an argument;
/// None for anything else (or a file we cannot read). `name` is the file's
/// real path, noted in `reads` before the open (retracted if it fails).
fn shebang(file: &OwnedFd, name: &str, reads: &InsideExecs) -> Option<(String, Option<String>)> {
    reads.note(name);
    let f = match resolve::reopen(file, libc::O_RDONLY) {
        Ok(f) => f,
        Err(_) => {
            reads.take(name, std::time::Instant::now());
            return None;
        }
    };
    let mut buf = [0u8; BINPRM_BUF];
    let mut n = 0;
    let mut f = File::from(f);
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    parse_shebang(&buf[..n])
}

/// The kernel's reading of a `#!` line (fs/binfmt_script.c): the interpreter
/// runs up to a space, tab or NUL; whatever follows on the line, trimmed, is
/// one optional argument. A line with no newline in the first 256 bytes
/// counts only if the interpreter's name ends within them.
pub fn parse_shebang(buf: &[u8]) -> Option<(String, Option<String>)> {
    let buf = &buf[..buf.len().min(BINPRM_BUF)];
    let rest = buf.strip_prefix(b"#!")?;
    let spacetab = |c: &u8| *c == b' ' || *c == b'\t';
    let terminator = |c: &u8| *c == b' ' || *c == b'\t' || *c == 0;
    let line = match rest.iter().position(|c| *c == b'\n') {
        Some(end) => &rest[..end],
        None => {
            // The kernel looks at the buffer less its last byte.
            let within = &rest[..rest.len().saturating_sub(1)];
            let start = within.iter().position(|c| !spacetab(c))?;
            within[start..].iter().position(terminator)?;
            within
        }
    };
    let end = line.len() - line.iter().rev().take_while(|c| spacetab(c)).count();
    let line = &line[..end];
    let start = line.iter().position(|c| !spacetab(c))?;
    let name_and_rest = &line[start..];
    let name_len = name_and_rest
        .iter()
        .position(terminator)
        .unwrap_or(name_and_rest.len());
    let name = &name_and_rest[..name_len];
    let after = &name_and_rest[name_len..];
    let arg = match after.first() {
        Some(0) | None => None,
        Some(_) => {
            let from = after.iter().position(|c| !spacetab(c));
            from.map(|f| String::from_utf8_lossy(&after[f..]).into_owned())
        }
    };
    Some((String::from_utf8_lossy(name).into_owned(), arg))
}

/// Why an exec stop is refused (enforce) or flagged (alert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: Kind,
    pub reason: String,
    /// What the kernel loaded, as the event names it: the program's path
    /// (for a script, the script's).
    pub loaded: String,
}

/// The answer to an exec stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the new program run.
    Resume,
    /// Let it run, with an event (alert mode).
    Flag(Refusal),
    /// Kill the task before its first instruction (enforce mode).
    Kill(Refusal),
}

/// What the kernel loaded is not what was checked: the event's reason starts so.
pub const NOT_CHECKED: &str = "the program the kernel loaded is not the one nfguard checked";

/// Tickets by thread id, in memory and (after `persist`) in a file.
#[derive(Default)]
pub struct ExecTickets {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<i32, Ticket>,
    file: Option<TicketFile>,
}

/// The append-only file behind the tickets.
struct TicketFile {
    path: PathBuf,
    out: File,
    /// Lines written since the file was last rewritten.
    lines: usize,
}

/// One line of the tickets file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Approve { tid: i32, ticket: Ticket },
    Take { tid: i32 },
}

/// Tickets kept before the oldest are dropped: an approved exec that then
/// fails in the kernel leaves its ticket behind until the thread execs again.
const MAX_TICKETS: usize = 16_384;

impl ExecTickets {
    /// Keeps the tickets in `path` too, reading what a previous supervisor
    /// left there (tickets of threads that no longer exist are dropped).
    pub fn persist(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Only a file of ours is read: a planted ticket file is not trusted.
        if let Ok(Some(f)) = crate::private_file::open_existing(path) {
            for line in io::BufReader::new(f).lines() {
                // A line cut short by a crash is the last one: skip it.
                match serde_json::from_str::<Line>(&line?) {
                    Ok(Line::Approve { tid, ticket }) => {
                        inner.map.insert(tid, ticket);
                    }
                    Ok(Line::Take { tid }) => {
                        inner.map.remove(&tid);
                    }
                    Err(_) => {}
                }
            }
        }
        inner
            .map
            .retain(|tid, _| Path::new(&format!("/proc/{tid}")).exists());
        inner.file = Some(TicketFile::rewrite(path, &inner.map)?);
        Ok(())
    }

    /// Records what was checked for thread `tid`'s exec, before it is let through.
    pub fn approve(&self, tid: i32, ticket: Ticket) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.map.len() >= MAX_TICKETS {
            inner
                .map
                .retain(|tid, _| Path::new(&format!("/proc/{tid}")).exists());
        }
        inner.log(&Line::Approve {
            tid,
            ticket: ticket.clone(),
        });
        inner.map.insert(tid, ticket);
    }

    /// Removes and returns thread `tid`'s ticket.
    pub fn take(&self, tid: i32) -> Option<Ticket> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let t = inner.map.remove(&tid);
        if t.is_some() {
            inner.log(&Line::Take { tid });
        }
        t
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Judges an exec stop. The loaded program must be the one the ticket of
    /// the thread that called execve names: in enforce mode the task is
    /// killed otherwise, and the model must still allow the program; in
    /// alert mode it runs, flagged (the seccomp stage judged another program,
    /// or none). The ticket is used up either way.
    pub fn verify(&self, stop: &ExecStop, model: &Model, mode: Mode) -> Verdict {
        let ticket = self.take(stop.tid);
        let enforce = match mode {
            Mode::Learn => return Verdict::Resume,
            Mode::Alert => false,
            Mode::Enforce => true,
        };
        match check(stop, ticket.as_ref(), model, enforce) {
            Ok(()) => Verdict::Resume,
            Err(r) if enforce => Verdict::Kill(r),
            Err(r) => Verdict::Flag(r),
        }
    }
}

/// What task `pid` runs, as an event names it: the script's path for a
/// script ticket (absolute, from the new argv), else its executable's.
fn loaded_name(pid: i32, ticket: Option<&Ticket>) -> String {
    if let Some(s) = ticket.and_then(|t| t.script.as_ref()) {
        if let Some(p) = crate::procfs::read_cmdline(pid).get(s.path_index) {
            if p.starts_with('/') {
                return p.clone();
            }
            if let Some(cwd) = crate::procfs::read_link(pid, "cwd") {
                return resolve::absolutize(&cwd, p);
            }
        }
    }
    let exe = crate::procfs::exe_of(pid);
    match crate::procfs::read_link(pid, "root") {
        Some(prefix) => resolve::strip_root(&prefix, &exe),
        None => exe,
    }
}

fn check(
    stop: &ExecStop,
    ticket: Option<&Ticket>,
    model: &Model,
    enforce: bool,
) -> Result<(), Refusal> {
    let pid = stop.pid;
    let refuse = |kind: Kind, reason: String| Refusal {
        kind,
        reason,
        loaded: loaded_name(pid, ticket),
    };
    let Some(t) = ticket else {
        return Err(refuse(
            Kind::Unverifiable,
            format!(
                "{NOT_CHECKED} (no exec of thread {} was let through)",
                stop.tid
            ),
        ));
    };
    let allowed = |exe: &str| {
        model.allows(&Observation::Exec {
            parent: t.parent.clone(),
            exe: exe.to_string(),
        })
    };
    // In alert mode the seccomp stage made its event already.
    if enforce && !allowed(&t.program) {
        return Err(refuse(
            Kind::OutsideModel,
            format!(
                "{} is not a program this workload runs (started by {})",
                t.program, t.parent
            ),
        ));
    }
    let loaded = Ident::of_exe(pid).map_err(|e| {
        refuse(
            Kind::Unverifiable,
            format!("{NOT_CHECKED} (cannot read what pid {pid} runs: {e})"),
        )
    })?;
    match &t.script {
        None => {
            if loaded != t.ident {
                let exe = loaded_name(pid, None);
                return Err(refuse(
                    Kind::Unverifiable,
                    format!("{NOT_CHECKED} ({exe} instead of {})", t.program),
                ));
            }
            // The same file under another name (a hard link): that name must
            // be allowed too, as if it had been asked for.
            let exe = loaded_name(pid, None);
            if exe != t.program && !allowed(&exe) {
                return Err(refuse(
                    Kind::OutsideModel,
                    format!(
                        "{exe} is not a program this workload runs (started by {})",
                        t.parent
                    ),
                ));
            }
        }
        Some(s) => {
            if s.interpreter != Some(loaded) {
                return Err(refuse(
                    Kind::Unverifiable,
                    format!(
                        "{NOT_CHECKED} ({} instead of the interpreter of {})",
                        loaded_name(pid, None),
                        t.program
                    ),
                ));
            }
            let argv = crate::procfs::read_cmdline(pid);
            if s.prefix.is_empty() || argv.get(..s.path_index) != Some(&s.prefix[..]) {
                // The task ran the interpreter itself, with arguments of its
                // own before the script's path (`sh -s script` reads stdin).
                return Err(refuse(
                    Kind::Unverifiable,
                    format!(
                        "{NOT_CHECKED} ({} run with arguments of its own, not as the kernel runs {})",
                        loaded_name(pid, None),
                        t.program
                    ),
                ));
            }
            if argv.get(s.path_index).is_some_and(|a| a.starts_with('-')) {
                // execve("-c", ...) of a link to the script: the kernel
                // writes `/bin/sh -c ARGS`, and the interpreter takes the
                // script's name for an option and runs the task's text.
                return Err(refuse(
                    Kind::Unverifiable,
                    format!(
                        "{NOT_CHECKED} ({} run under a name that begins with '-', which the interpreter takes for an option)",
                        t.program
                    ),
                ));
            }
            match script_in_argv(pid, &argv, s.path_index) {
                Ok(i) if i == t.ident => {}
                Ok(_) => {
                    return Err(refuse(
                        Kind::Unverifiable,
                        format!("{NOT_CHECKED} (another script than {})", t.program),
                    ))
                }
                Err(e) => {
                    return Err(refuse(
                        Kind::Unverifiable,
                        format!("{NOT_CHECKED} (cannot find the script it runs: {e})"),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// The identity of the script the kernel handed to the interpreter: the path
/// at `index` of task `pid`'s new `argv` (read once by the caller), as the
/// kernel wrote it (`/dev/fd/N[/path]` for execveat on a directory fd).
fn script_in_argv(pid: i32, argv: &[String], index: usize) -> io::Result<Ident> {
    let notfound = || io::Error::from_raw_os_error(libc::ENOENT);
    let path = argv.get(index).ok_or_else(notfound)?;
    if let Some(rest) = path.strip_prefix("/dev/fd/") {
        let (fd, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let fd: u32 = fd.parse().map_err(|_| notfound())?;
        let base = resolve::open_path(&format!("/proc/{pid}/fd/{fd}"), 0)?;
        if tail.is_empty() {
            return Ident::of(&base);
        }
        let at = resolve::open_path(&format!("/proc/self/fd/{}/{tail}", base.as_raw_fd()), 0)?;
        return Ident::of(&at);
    }
    let root = Root::of(pid)?;
    let cwd = || crate::procfs::read_link(pid, "cwd");
    resolve_in(&root, path, &cwd)
        .ok_or_else(notfound)
        .and_then(|fd| Ident::of(&fd))
}

impl Inner {
    fn log(&mut self, line: &Line) {
        let Some(f) = &mut self.file else { return };
        let mut text = match serde_json::to_string(line) {
            Ok(t) => t,
            Err(_) => return,
        };
        text.push('\n');
        // One write of an O_APPEND file: a crash leaves whole lines, or a
        // cut last one that the next reader skips.
        if let Err(e) = f.out.write_all(text.as_bytes()) {
            eprintln!(
                "nfguard: cannot record an exec ticket in {}: {e}",
                f.path.display()
            );
        }
        f.lines += 1;
        if f.lines > 4 * self.map.len().max(1024) {
            match TicketFile::rewrite(&f.path.clone(), &self.map) {
                Ok(new) => self.file = Some(new),
                Err(e) => eprintln!(
                    "nfguard: cannot compact the exec tickets in {}: {e}",
                    f.path.display()
                ),
            }
        }
    }
}

impl TicketFile {
    /// Writes `map` to a fresh file that replaces `path`, and appends from there.
    fn rewrite(path: &Path, map: &HashMap<i32, Ticket>) -> io::Result<TicketFile> {
        let (tmp, f) = crate::private_file::fresh_beside(path)?;
        {
            let mut f = io::BufWriter::new(f);
            for (tid, ticket) in map {
                let line = Line::Approve {
                    tid: *tid,
                    ticket: ticket.clone(),
                };
                serde_json::to_writer(&mut f, &line)?;
                f.write_all(b"\n")?;
            }
            f.flush()?;
        }
        std::fs::rename(&tmp, path)?;
        let out = crate::private_file::open(path, true)?;
        Ok(TicketFile {
            path: path.to_path_buf(),
            out,
            lines: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LAUNCHER_PARENT;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Child, Command};

    #[test]
    fn shebang_lines_are_read_as_the_kernel_reads_them() {
        let p = |s: &[u8]| parse_shebang(s);
        let arg = |s: &str| Some(s.to_string());
        assert_eq!(p(b"#!/bin/sh\necho"), Some(("/bin/sh".into(), None)));
        assert_eq!(p(b"#! /bin/sh  \n"), Some(("/bin/sh".into(), None)));
        assert_eq!(
            p(b"#!/usr/bin/env python3 -u\n"),
            Some(("/usr/bin/env".into(), arg("python3 -u")))
        );
        assert_eq!(
            p(b"#!\t/bin/sh\t-e\t\n"),
            Some(("/bin/sh".into(), arg("-e")))
        );
        assert_eq!(p(b"#!/bin/sh\0junk\n"), Some(("/bin/sh".into(), None)));
        assert_eq!(
            p(b"#!relative/interp\n"),
            Some(("relative/interp".into(), None))
        );
        for not in [&b"\x7fELF"[..], b"#/bin/sh\n", b"#!\n", b"#!   \n", b""] {
            assert_eq!(p(not), None, "{:?}", String::from_utf8_lossy(not));
        }
        // No newline in 256 bytes: only if the name ends within them.
        let mut long = b"#!/bin/sh ".to_vec();
        long.resize(300, b'x');
        // The line is the buffer less its last byte: 253 bytes after "#!".
        assert_eq!(p(&long), Some(("/bin/sh".into(), arg(&"x".repeat(245)))));
        let mut cut = b"#!/".to_vec();
        cut.resize(300, b'x');
        assert_eq!(p(&cut), None);
    }

    /// A process that runs `program` (sleeping), killed when dropped.
    struct Running(Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Starts `program` (with at least one argument, or a script) and waits
    /// until the task runs `exe` (its exec is done).
    fn start(program: &Path, args: &[&str], exe: &str) -> Running {
        let c = Command::new(program).args(args).spawn().unwrap();
        let pid = c.id() as i32;
        let r = Running(c);
        let want = Ident::of(&resolve::open_path(exe, 0).unwrap()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // The exe link changes before the new argv is in place: wait for both
        // (at a real exec stop the exec is complete).
        while Ident::of_exe(pid).ok() != Some(want) || crate::procfs::read_cmdline(pid).len() < 2 {
            assert!(std::time::Instant::now() < deadline, "exec not done");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        r
    }

    /// `cmd` started, once its new argv (of `args` entries at least) is in place.
    fn spawned(cmd: &mut Command, args: usize) -> Running {
        let r = Running(cmd.spawn().unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while crate::procfs::read_cmdline(r.0.id() as i32).len() < args {
            assert!(std::time::Instant::now() < deadline, "exec not done");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        r
    }

    fn ticket_for(path: &Path) -> Ticket {
        let fd = resolve::open_path(path.to_str().unwrap(), 0).unwrap();
        let root = Root::of(std::process::id() as i32).unwrap();
        Ticket::new(
            LAUNCHER_PARENT.into(),
            path.to_string_lossy().into_owned(),
            &fd,
            Some(&root),
            || Some("/".into()),
            &InsideExecs::default(),
        )
        .unwrap()
    }

    fn model_with(program: &Path) -> Model {
        let mut m = Model::default();
        m.learn(&Observation::Exec {
            parent: LAUNCHER_PARENT.into(),
            exe: program.to_string_lossy().into_owned(),
        });
        m
    }

    fn stop(pid: u32) -> ExecStop {
        ExecStop {
            pid: pid as i32,
            tid: pid as i32,
            seq: 1,
        }
    }

    #[test]
    fn the_loaded_program_must_be_the_checked_file_not_just_a_file_of_that_name() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::copy("/usr/bin/sleep", &a).unwrap();
        std::fs::copy("/usr/bin/sleep", &b).unwrap();
        let run = start(&a, &["30"], a.to_str().unwrap());
        let pid = run.0.id();
        let tickets = ExecTickets::default();
        let model = model_with(&a);
        // The ticket names the file that runs: resume.
        tickets.approve(pid as i32, ticket_for(&a));
        assert_eq!(
            tickets.verify(&stop(pid), &model, Mode::Enforce),
            Verdict::Resume
        );
        assert!(tickets.is_empty(), "a ticket is used once");
        // No ticket: killed.
        assert!(matches!(
            tickets.verify(&stop(pid), &model, Mode::Enforce),
            Verdict::Kill(Refusal {
                kind: Kind::Unverifiable,
                ..
            })
        ));
        // A ticket for another file with the same content, under the name the
        // model allows: the identity differs, killed.
        let mut swapped = ticket_for(&b);
        swapped.program = a.to_string_lossy().into_owned();
        tickets.approve(pid as i32, swapped);
        match tickets.verify(&stop(pid), &model, Mode::Enforce) {
            Verdict::Kill(r) => {
                assert_eq!(r.kind, Kind::Unverifiable);
                assert!(r.reason.starts_with(NOT_CHECKED), "{}", r.reason);
            }
            v => panic!("{v:?}"),
        }
        // Outside enforce mode nothing is killed, and the ticket is used up:
        // learn mode asks nothing, alert mode flags what the kernel loaded.
        tickets.approve(pid as i32, ticket_for(&b));
        assert_eq!(
            tickets.verify(&stop(pid), &model, Mode::Learn),
            Verdict::Resume
        );
        tickets.approve(pid as i32, ticket_for(&b));
        match tickets.verify(&stop(pid), &model, Mode::Alert) {
            Verdict::Flag(r) => assert_eq!(r.loaded, a.to_string_lossy()),
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            tickets.verify(&stop(pid), &model, Mode::Alert),
            Verdict::Flag(Refusal {
                kind: Kind::Unverifiable,
                ..
            })
        ));
        tickets.approve(pid as i32, ticket_for(&a));
        assert_eq!(
            tickets.verify(&stop(pid), &Model::default(), Mode::Alert),
            Verdict::Resume,
            "alert mode leaves the model to the seccomp stage"
        );
        assert!(tickets.is_empty());
        // The model no longer allows it (learned in alert, enforced since).
        tickets.approve(pid as i32, ticket_for(&a));
        assert!(matches!(
            tickets.verify(&stop(pid), &Model::default(), Mode::Enforce),
            Verdict::Kill(Refusal {
                kind: Kind::OutsideModel,
                ..
            })
        ));
    }

    #[test]
    fn the_same_file_under_another_name_must_be_allowed_under_that_name() {
        // A racing thread can point the path at a hard link of an allowed
        // program: the identity matches, the name the kernel ran it by must
        // be allowed too (a multi-call binary picks its applet by it).
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::copy("/usr/bin/sleep", &a).unwrap();
        std::fs::hard_link(&a, &b).unwrap();
        let run = start(&b, &["30"], b.to_str().unwrap());
        let pid = run.0.id();
        let tickets = ExecTickets::default();
        tickets.approve(pid as i32, ticket_for(&a));
        match tickets.verify(&stop(pid), &model_with(&a), Mode::Enforce) {
            Verdict::Kill(r) => {
                assert_eq!(r.kind, Kind::OutsideModel);
                assert!(r.reason.contains("/b is not a program"), "{}", r.reason);
            }
            v => panic!("{v:?}"),
        }
        let mut both = model_with(&a);
        both.learn(&Observation::Exec {
            parent: LAUNCHER_PARENT.into(),
            exe: b.to_string_lossy().into_owned(),
        });
        tickets.approve(pid as i32, ticket_for(&a));
        assert_eq!(
            tickets.verify(&stop(pid), &both, Mode::Enforce),
            Verdict::Resume
        );
    }

    #[test]
    fn a_script_is_checked_through_its_interpreter_and_its_path_in_argv() {
        let dir = tempfile::tempdir().unwrap();
        let (s, other) = (dir.path().join("s"), dir.path().join("other"));
        for p in [&s, &other] {
            std::fs::write(p, "#!/bin/sh\nsleep 30\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let t = ticket_for(&s);
        let sh = Ident::of(&resolve::open_path("/bin/sh", 0).unwrap()).unwrap();
        assert_eq!(
            t.script,
            Some(Script {
                interpreter: Some(sh),
                path_index: 1,
                prefix: vec!["/bin/sh".into()],
            })
        );
        let run = start(&s, &[], "/bin/sh");
        let pid = run.0.id();
        let tickets = ExecTickets::default();
        let model = model_with(&s);
        tickets.approve(pid as i32, t.clone());
        assert_eq!(
            tickets.verify(&stop(pid), &model, Mode::Enforce),
            Verdict::Resume
        );
        // Same interpreter, another script: the path the kernel used names
        // another file than the one checked.
        let mut wrong = ticket_for(&other);
        wrong.program = t.program.clone();
        tickets.approve(pid as i32, wrong);
        match tickets.verify(&stop(pid), &model, Mode::Enforce) {
            Verdict::Kill(r) => assert!(r.reason.contains("another script"), "{}", r.reason),
            v => panic!("{v:?}"),
        }
        // The interpreter run by the task itself, the script's path where
        // the kernel would put it but argv[0] of its own: killed. With
        // `#!/bin/sh -e`, `sh -s SCRIPT` would read commands from stdin.
        let mut direct = Command::new("/bin/sh");
        std::os::unix::process::CommandExt::arg0(&mut direct, "sh");
        let direct = spawned(direct.arg(&s), 2);
        tickets.approve(direct.0.id() as i32, t.clone());
        match tickets.verify(&stop(direct.0.id()), &model, Mode::Enforce) {
            Verdict::Kill(r) => assert!(r.reason.contains("arguments of its own"), "{}", r.reason),
            v => panic!("{v:?}"),
        }
        // The script run under the name `-c` (a link in the cwd): the kernel
        // writes `/bin/sh -c ARGS`, the shell runs ARGS. Killed.
        let dash_c = spawned(Command::new("/bin/sh").args(["-c", "sleep 30"]), 3);
        tickets.approve(dash_c.0.id() as i32, t.clone());
        match tickets.verify(&stop(dash_c.0.id()), &model, Mode::Enforce) {
            Verdict::Kill(r) => assert!(r.reason.contains("begins with '-'"), "{}", r.reason),
            v => panic!("{v:?}"),
        }
        // A script ticket for a task that runs a plain program: killed.
        let run2 = start(Path::new("/usr/bin/sleep"), &["30"], "/usr/bin/sleep");
        tickets.approve(run2.0.id() as i32, t);
        assert!(matches!(
            tickets.verify(&stop(run2.0.id()), &model, Mode::Enforce),
            Verdict::Kill(_)
        ));
    }

    #[test]
    fn nested_interpreters_give_the_argv_the_kernel_writes() {
        // s runs through mid (`#!MID -x`), which runs through /bin/sh (`#!/bin/sh -e`):
        // the kernel's argv is /bin/sh -e MID -x s ...
        let dir = tempfile::tempdir().unwrap();
        let (s, mid) = (dir.path().join("s"), dir.path().join("mid"));
        std::fs::write(&mid, "#!/bin/sh -e\n").unwrap();
        std::fs::write(&s, format!("#!{} -x\n", mid.display())).unwrap();
        let script = ticket_for(&s).script.unwrap();
        let want: Vec<String> = vec![
            "/bin/sh".into(),
            "-e".into(),
            mid.to_string_lossy().into_owned(),
            "-x".into(),
        ];
        assert_eq!((script.path_index, script.prefix), (4, want));
    }

    #[test]
    fn tickets_survive_a_supervisor_restart_through_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".exec-tickets");
        let me = std::process::id() as i32;
        let t = ticket_for(Path::new("/usr/bin/sleep"));
        {
            let a = ExecTickets::default();
            a.persist(&path).unwrap();
            a.approve(me, t.clone());
            a.approve(1_999_999_999, t.clone()); // a thread that does not exist
            a.approve(1, t.clone());
            assert!(a.take(1).is_some());
            // The supervisor dies here.
        }
        // A torn last line, as a crash mid-write may leave.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"approve\":{\"tid\":5,").unwrap();
        let b = ExecTickets::default();
        b.persist(&path).unwrap();
        assert_eq!(b.len(), 1, "only the live thread's ticket is left");
        assert_eq!(b.take(me), Some(t));
        let c = ExecTickets::default();
        c.persist(&path).unwrap();
        assert!(c.is_empty(), "taken is taken, after a restart too");
    }
}
