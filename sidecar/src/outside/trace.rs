//! Following an outside session with ptrace, so that each program it starts can be judged at
//! its exec event, before its first instruction (enforce + `exec-sessions: deny` kills it
//! there). Its `ptrace(2)` and `waitpid(2)` calls are `sys`'s.
//!
//! Rules that shape it (ptrace(2)):
//! - `PTRACE_SEIZE` does not stop the tracee, and with `TRACEFORK|TRACEVFORK|TRACECLONE`
//!   every process or thread the session creates is traced from its first instruction, with
//!   `TRACEEXEC` each successful execve stops at `PTRACE_EVENT_EXEC`: the new image is loaded
//!   but has not run. SIGKILL there means the program never ran.
//! - A tracer is a *thread*: the watcher thread seizes, waits and resumes; `__WNOTHREAD`
//!   keeps its waitpid away from children of the supervisor's other threads (`nfguard run`
//!   has the launcher as a child).
//! - Rights: the tracer needs the tracee's uid or CAP_SYS_PTRACE, and under Yama
//!   `ptrace_scope=1` an ancestor relation or CAP_SYS_PTRACE (the sidecar is no ancestor of
//!   an exec session), `ptrace_scope>=2` CAP_SYS_PTRACE, `3` never. [`Tracer::check`] says
//!   which applies at start-up; the watcher then reports without following.
//! - A group-stop of a tracee is kept with `PTRACE_LISTEN` (job control still works); other
//!   signals are passed on with `PTRACE_CONT`.

use std::collections::HashMap;

use crate::{procfs, sys};

/// A followed process at its exec event.
#[derive(Debug, Clone)]
pub struct ExecStop {
    /// The program it now runs.
    pub exe: String,
    /// The program it ran before (the one that called execve).
    pub previous_exe: String,
}

pub struct Tracer {
    /// Followed pids (threads included) and the program each runs.
    traced: HashMap<i32, String>,
}

const OPTIONS: libc::c_int = libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACECLONE;

/// linux/capability.h
const CAP_SYS_PTRACE: u32 = 19;

fn has_cap_sys_ptrace() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_PTRACE) != 0)
}

impl Tracer {
    /// Can this process follow sessions? `Err` says why not, in one phrase.
    pub fn check() -> Result<Tracer, String> {
        let cap = has_cap_sys_ptrace();
        match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            Some(3) => return Err("Yama ptrace_scope=3 forbids ptrace".into()),
            Some(s) if s >= 1 && !cap => {
                return Err(format!(
                    "Yama ptrace_scope={s} needs CAP_SYS_PTRACE, which this sidecar lacks"
                ))
            }
            _ => {}
        }
        if let Ok(v) = std::env::var("NFGUARD_NO_PTRACE") {
            if v == "1" {
                return Err("NFGUARD_NO_PTRACE=1".into());
            }
        }
        Ok(Tracer {
            traced: HashMap::new(),
        })
    }

    /// Is `pid` followed (its execs are judged at the exec event)?
    pub fn is_traced(&self, pid: i32) -> bool {
        self.traced.contains_key(&pid)
    }

    pub fn active(&self) -> bool {
        !self.traced.is_empty()
    }

    /// Starts following `pid` (without stopping it). Fails for a pid of another uid
    /// without CAP_SYS_PTRACE, or one already traced by someone else.
    pub fn seize(&mut self, pid: i32) -> std::io::Result<()> {
        if self.traced.contains_key(&pid) {
            return Ok(());
        }
        sys::ptrace_seize(pid, OPTIONS)?;
        self.traced.insert(pid, procfs::exe_of(pid));
        Ok(())
    }

    fn cont(pid: i32, request: libc::c_uint, sig: libc::c_int) {
        let _ = sys::ptrace_resume(request, pid, sig);
    }

    /// Stops following a process stopped at its exec event and lets it run.
    pub fn detach(&mut self, pid: i32) {
        self.traced.remove(&pid);
        Self::cont(pid, libc::PTRACE_DETACH, 0);
    }

    /// Resumes a process stopped at its exec event, or kills it there.
    pub fn resume(&mut self, pid: i32, kill: bool) {
        if kill {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        Self::cont(pid, libc::PTRACE_CONT, 0);
    }

    /// Handles every pending stop; returns the exec events, whose tracees stay stopped until
    /// [`Tracer::resume`].
    pub fn poll(&mut self) -> Vec<(i32, ExecStop)> {
        let mut out = Vec::new();
        loop {
            let Some((pid, status)) =
                sys::waitpid_any(libc::WNOHANG | libc::__WALL | libc::__WNOTHREAD)
            else {
                return out;
            };
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                self.traced.remove(&pid);
                continue;
            }
            if !libc::WIFSTOPPED(status) {
                continue;
            }
            let sig = libc::WSTOPSIG(status);
            let event = status >> 16;
            match event {
                libc::PTRACE_EVENT_EXEC => {
                    let previous = self.traced.get(&pid).cloned().unwrap_or_default();
                    let exe = procfs::exe_of(pid);
                    self.traced.insert(pid, exe.clone());
                    out.push((
                        pid,
                        ExecStop {
                            exe,
                            previous_exe: previous,
                        },
                    ));
                }
                libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                    let child = sys::ptrace_event_msg(pid).unwrap_or(0);
                    let exe = self.traced.get(&pid).cloned().unwrap_or_default();
                    self.traced.insert(child as i32, exe);
                    Self::cont(pid, libc::PTRACE_CONT, 0);
                }
                libc::PTRACE_EVENT_STOP => {
                    self.traced
                        .entry(pid)
                        .or_insert_with(|| procfs::exe_of(pid));
                    if matches!(
                        sig,
                        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                    ) {
                        Self::cont(pid, libc::PTRACE_LISTEN, 0);
                    } else {
                        Self::cont(pid, libc::PTRACE_CONT, 0);
                    }
                }
                _ => {
                    // Signal-delivery stop: deliver the signal as if we were not here.
                    let pass = if sig == libc::SIGTRAP { 0 } else { sig };
                    Self::cont(pid, libc::PTRACE_CONT, pass);
                }
            }
        }
    }
}
