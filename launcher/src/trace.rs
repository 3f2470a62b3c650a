//! The keeper as the workload's tracer: what each wait status means, and the
//! exec-stop protocol it speaks with the supervisor.
//!
//! Why ptrace: the supervisor lets an allowed `execve` continue
//! (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`), and the kernel then reads the path
//! again from the caller's memory, which another task may rewrite after the
//! check (a thread, a process sharing a `MAP_SHARED` page, a `CLONE_FS`
//! sibling changing the cwd under a relative path, a `CLONE_VM` process). No
//! proof about who can write that memory holds against all of them. What does
//! hold is to look at what the kernel actually loaded: the keeper traces the
//! whole workload (`PTRACE_SEIZE` of the command with `PTRACE_O_TRACEEXEC`
//! and the fork/vfork/clone options, so every descendant and thread is
//! attached as it is created), and at each `PTRACE_EVENT_EXEC` stop, after
//! the new program is mapped and before its first instruction, it asks the
//! supervisor, which compares the loaded file with the one it checked. A
//! task the supervisor refuses is killed while still stopped.
//!
//! The keeper is the workload's parent, so it may trace it with no
//! capability, also under Yama `ptrace_scope=1` (an ancestor may trace).
//!
//! The protocol (after the hello, on the same unix stream connection), one
//! JSON object per line:
//!
//! ```text
//! keeper -> supervisor  {"exec":{"pid":P,"tid":T,"seq":N}}
//! supervisor -> keeper  {"verdict":{"seq":N,"pid":P,"resume":true}}   (or false)
//! ```
//!
//! P is the thread group id after the exec, T the thread that called execve
//! (it differs when a non-leader thread execs: the kernel gives it the
//! leader's id), N a counter of this keeper. An exec stop stays pending,
//! the task stopped, until its verdict comes, across supervisor restarts: the
//! keeper sends every pending stop again after each handover.

use alloc::format;
use alloc::string::String;
use core::ffi::c_int;

use crate::sys::ptrace;

/// What one `waitpid(-1, __WALL)` status says about a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// It is gone (exited or killed): the raw status.
    Gone(c_int),
    /// `PTRACE_EVENT_EXEC`: the new program is loaded and has not run.
    Exec,
    /// `PTRACE_EVENT_FORK`, `_VFORK` or `_CLONE`: the event message names the new task.
    NewTask,
    /// `PTRACE_EVENT_STOP` in group-stop (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU):
    /// `PTRACE_LISTEN`, so the task stays stopped until SIGCONT, as untraced.
    GroupStop,
    /// `PTRACE_EVENT_STOP` otherwise: a new tracee's first stop, or the
    /// re-trap after SIGCONT ends a listened group-stop. Resume it.
    EventStop,
    /// Signal-delivery-stop: resume it with the signal (it was meant for the task).
    Signal(c_int),
    /// Another ptrace event (none is asked for): resume it.
    OtherEvent,
    /// Not a state of a task we trace (a continued report): nothing to do.
    Ignore,
}

/// The stop signals that start a group-stop.
fn is_stop_signal(sig: c_int) -> bool {
    matches!(
        sig,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    )
}

/// Reads a wait status of a task traced with `PTRACE_SEIZE` (ptrace(2)).
pub fn classify(status: c_int) -> Report {
    if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
        return Report::Gone(status);
    }
    if !libc::WIFSTOPPED(status) {
        return Report::Ignore;
    }
    let sig = libc::WSTOPSIG(status);
    match (status >> 16) & 0xff {
        0 => Report::Signal(sig),
        ptrace::EVENT_EXEC => Report::Exec,
        ptrace::EVENT_FORK | ptrace::EVENT_VFORK | ptrace::EVENT_CLONE => Report::NewTask,
        // With SEIZE a group-stop reports PTRACE_EVENT_STOP with the stop
        // signal; an attach or interrupt trap reports it with SIGTRAP.
        ptrace::EVENT_STOP if is_stop_signal(sig) => Report::GroupStop,
        ptrace::EVENT_STOP => Report::EventStop,
        _ => Report::OtherEvent,
    }
}

/// The line that asks the supervisor about an exec stop.
pub fn exec_line(pid: i32, tid: i32, seq: u64) -> String {
    format!("{{\"exec\":{{\"pid\":{pid},\"tid\":{tid},\"seq\":{seq}}}}}\n")
}

/// A verdict from the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub seq: u64,
    pub pid: i32,
    pub resume: bool,
}

/// Reads `{"verdict":{"seq":N,"pid":P,"resume":B}}` (fields in any order,
/// whitespace allowed). Anything else is `None`: the supervisor speaks
/// another protocol and the connection is dropped.
pub fn parse_verdict(line: &[u8]) -> Option<Verdict> {
    let mut p = Parser { s: line, at: 0 };
    p.expect(b'{')?;
    p.key(b"verdict")?;
    p.expect(b'{')?;
    let (mut seq, mut pid, mut resume) = (None, None, None);
    loop {
        let key = p.string()?;
        p.expect(b':')?;
        match key {
            b"seq" => seq = Some(p.number()?),
            b"pid" => pid = Some(i32::try_from(p.number()?).ok()?),
            b"resume" => resume = Some(p.boolean()?),
            _ => return None,
        }
        match p.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    p.expect(b'}')?;
    p.end()?;
    Some(Verdict {
        seq: seq?,
        pid: pid?,
        resume: resume?,
    })
}

/// Just enough of a JSON reader for the verdict: objects, plain ASCII keys
/// without escapes, unsigned integers and booleans.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while self
            .s
            .get(self.at)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        {
            self.at += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        self.skip_ws();
        let c = *self.s.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        let len = self.s[start..].iter().position(|c| *c == b'"')?;
        let s = &self.s[start..start + len];
        if s.contains(&b'\\') {
            return None;
        }
        self.at = start + len + 1;
        Some(s)
    }

    fn key(&mut self, want: &[u8]) -> Option<()> {
        (self.string()? == want).then_some(())?;
        self.expect(b':')
    }

    fn number(&mut self) -> Option<u64> {
        self.skip_ws();
        let start = self.at;
        while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        core::str::from_utf8(&self.s[start..self.at])
            .ok()?
            .parse()
            .ok()
    }

    fn boolean(&mut self) -> Option<bool> {
        self.skip_ws();
        for (word, value) in [(&b"true"[..], true), (&b"false"[..], false)] {
            if self.s[self.at..].starts_with(word) {
                self.at += word.len();
                return Some(value);
            }
        }
        None
    }

    fn end(&mut self) -> Option<()> {
        self.skip_ws();
        (self.at == self.s.len()).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_read_as_ptrace_2_describes_them() {
        let stopped = |sig: c_int, event: i32| (event << 16) | (sig << 8) | 0x7f;
        assert_eq!(classify(3 << 8), Report::Gone(3 << 8));
        assert_eq!(classify(libc::SIGKILL), Report::Gone(libc::SIGKILL));
        assert_eq!(
            classify(stopped(libc::SIGTRAP, ptrace::EVENT_EXEC)),
            Report::Exec
        );
        for e in [ptrace::EVENT_FORK, ptrace::EVENT_VFORK, ptrace::EVENT_CLONE] {
            assert_eq!(classify(stopped(libc::SIGTRAP, e)), Report::NewTask);
        }
        for sig in [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
            assert_eq!(
                classify(stopped(sig, ptrace::EVENT_STOP)),
                Report::GroupStop
            );
            // The same signal outside an event is its delivery: inject it.
            assert_eq!(classify(stopped(sig, 0)), Report::Signal(sig));
        }
        assert_eq!(
            classify(stopped(libc::SIGTRAP, ptrace::EVENT_STOP)),
            Report::EventStop
        );
        assert_eq!(
            classify(stopped(libc::SIGUSR1, 0)),
            Report::Signal(libc::SIGUSR1)
        );
        assert_eq!(classify(stopped(libc::SIGTRAP, 6)), Report::OtherEvent);
        assert_eq!(classify(0xffff), Report::Ignore); // WIFCONTINUED
    }

    #[test]
    fn exec_lines_are_json() {
        let line = exec_line(42, 43, 7);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"exec": {"pid": 42, "tid": 43, "seq": 7}})
        );
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn verdicts_are_read_in_any_field_order_and_nothing_else_is() {
        let v = |s: &str| parse_verdict(s.as_bytes());
        assert_eq!(
            v(r#"{"verdict":{"seq":3,"pid":99,"resume":true}}"#),
            Some(Verdict {
                seq: 3,
                pid: 99,
                resume: true
            })
        );
        assert_eq!(
            v(" { \"verdict\" : { \"resume\" : false , \"pid\" : 1 , \"seq\" : 18446744073709551615 } } "),
            Some(Verdict {
                seq: u64::MAX,
                pid: 1,
                resume: false
            })
        );
        for bad in [
            "",
            "{}",
            r#"{"verdict":{"seq":3,"pid":99}}"#,
            r#"{"verdict":{"seq":3,"pid":99,"resume":1}}"#,
            r#"{"verdict":{"seq":-3,"pid":99,"resume":true}}"#,
            r#"{"verdict":{"seq":3,"pid":99999999999,"resume":true}}"#,
            r#"{"verdict":{"seq":3,"pid":99,"resume":true,"x":1}}"#,
            r#"{"verdict":{"seq":3,"pid":99,"resume":true}} x"#,
            r#"{"exec":{"pid":1,"tid":1,"seq":1}}"#,
            r#"{"verdict":{"se\"q":3,"pid":99,"resume":true}}"#,
        ] {
            assert_eq!(v(bad), None, "{bad}");
        }
    }
}
