//! The keeper's connection after the hello: exec stops in, verdicts out.
//!
//! A keeper that traces its workload (`"traced": true` in its hello, protocol
//! 2; `launcher/src/trace.rs` has the keeper's side) stops every task at
//! `PTRACE_EVENT_EXEC` and sends one JSON line per stop on the connection it
//! handed the listener over:
//!
//! ```text
//! keeper -> supervisor  {"exec":{"pid":P,"tid":T,"seq":N}}
//! supervisor -> keeper  {"verdict":{"seq":N,"pid":P,"resume":true}}   (false: the keeper SIGKILLs P)
//! ```
//!
//! P is the task's thread group id after the exec, T the thread that called
//! execve (the one whose seccomp notification was judged), N the keeper's
//! counter. The keeper keeps a stop pending, the task stopped, until a
//! verdict for it comes, and sends it again to the next supervisor if this one
//! dies first; the supervisor answers each line once, in order.
//!
//! [`serve`] reads the connection (one thread per keeper, started by the
//! supervisor, which judges each stop in `supervisor/exec_verify.rs`): lines
//! are at most [`MAX_LINE`] bytes; anything that is not an exec stop ends it
//! with an error (the caller closes the connection and says so in one line).
//! The same thread is how the supervisor learns that the keeper is gone (the
//! connection's end), which the listener's thread waits for before it lets
//! go of the listener.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

use serde::{Deserialize, Serialize};

/// A task stopped at its exec, waiting for a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStop {
    /// The task's thread group id after the exec.
    pub pid: i32,
    /// The thread that called execve.
    pub tid: i32,
    /// The keeper's number for this stop.
    pub seq: u64,
}

/// The answer to one exec stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecVerdict {
    pub seq: u64,
    pub pid: i32,
    /// false: the keeper kills the task before its first instruction.
    pub resume: bool,
}

/// What a keeper sends after its hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FromKeeper {
    Exec(ExecStop),
}

/// What the supervisor sends a keeper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToKeeper {
    Verdict(ExecVerdict),
}

/// The longest line a keeper may send (an exec stop is about 50 bytes).
pub const MAX_LINE: usize = 4096;

/// Why a keeper's connection was closed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("reading from keeper {keeper}: {source}")]
    Read { keeper: i32, source: io::Error },
    #[error("keeper {keeper} sent a line longer than {MAX_LINE} bytes")]
    TooLong { keeper: i32 },
    #[error("keeper {keeper} sent {line:?}, which is not an exec stop: {source}")]
    Bad {
        keeper: i32,
        line: String,
        source: serde_json::Error,
    },
    #[error("answering keeper {keeper}: {source}")]
    Write { keeper: i32, source: io::Error },
}

/// Reads exec stops from `conn` until the keeper closes it, answering each
/// with what `on_exec` says (true: resume). Ok at the keeper's end of the
/// connection; an error for input that breaks the protocol.
pub fn serve(
    conn: &UnixStream,
    keeper: i32,
    mut on_exec: impl FnMut(ExecStop) -> bool,
) -> Result<(), LinkError> {
    let mut reader = BufReader::new(conn);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|source| LinkError::Read { keeper, source })?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            if line.len() > MAX_LINE {
                return Err(LinkError::TooLong { keeper });
            }
            // The keeper died in the middle of a line.
            return Ok(());
        }
        let msg: FromKeeper = serde_json::from_slice(&line).map_err(|source| LinkError::Bad {
            keeper,
            line: String::from_utf8_lossy(&line).trim_end().to_string(),
            source,
        })?;
        let FromKeeper::Exec(stop) = msg;
        let verdict = ToKeeper::Verdict(ExecVerdict {
            seq: stop.seq,
            pid: stop.pid,
            resume: on_exec(stop),
        });
        let mut out = serde_json::to_vec(&verdict).unwrap_or_default();
        out.push(b'\n');
        (&mut &*conn)
            .write_all(&out)
            .map_err(|source| LinkError::Write { keeper, source })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_messages_are_the_documented_json() {
        let stop: FromKeeper =
            serde_json::from_str(r#"{"exec":{"pid":42,"tid":43,"seq":7}}"#).unwrap();
        assert_eq!(
            stop,
            FromKeeper::Exec(ExecStop {
                pid: 42,
                tid: 43,
                seq: 7
            })
        );
        let v = ToKeeper::Verdict(ExecVerdict {
            seq: 7,
            pid: 42,
            resume: false,
        });
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(text, r#"{"verdict":{"seq":7,"pid":42,"resume":false}}"#);
        // The keeper's own reader (no_std, launcher/src/trace.rs) takes it.
        assert_eq!(
            nfguard_launcher::parse_verdict(text.as_bytes()),
            Some(nfguard_launcher::Verdict {
                seq: 7,
                pid: 42,
                resume: false
            })
        );
        // And we read what the keeper writes.
        let line = nfguard_launcher::exec_line(5, 6, 9);
        let back: FromKeeper = serde_json::from_str(&line).unwrap();
        assert_eq!(
            back,
            FromKeeper::Exec(ExecStop {
                pid: 5,
                tid: 6,
                seq: 9
            })
        );
    }

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().unwrap()
    }

    #[test]
    fn each_exec_stop_gets_its_verdict_in_order_until_the_keeper_closes() {
        let (keeper, sup) = pair();
        let t = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let r = serve(&sup, 1, |s| {
                seen.push(s.seq);
                s.seq % 2 == 0
            });
            (r.is_ok(), seen)
        });
        let mut k = &keeper;
        let mut replies = BufReader::new(&keeper);
        let mut read_line = || {
            let mut line = String::new();
            replies.read_line(&mut line).unwrap();
            line
        };
        k.write_all(b"{\"exec\":{\"pid\":10,\"tid\":11,\"seq\":1}}\n{\"exec\":{\"pid\":10,\"tid\":10,\"seq\":2}}\n")
            .unwrap();
        assert_eq!(
            read_line(),
            "{\"verdict\":{\"seq\":1,\"pid\":10,\"resume\":false}}\n"
        );
        assert_eq!(
            read_line(),
            "{\"verdict\":{\"seq\":2,\"pid\":10,\"resume\":true}}\n"
        );
        drop(replies);
        drop(keeper);
        assert_eq!(t.join().unwrap(), (true, vec![1, 2]));
    }

    #[test]
    fn bad_or_endless_input_ends_the_connection_with_a_reason() {
        for (input, want) in [
            (b"{\"hello\":1}\n".to_vec(), "is not an exec stop"),
            (vec![b'x'; MAX_LINE + 10], "longer than 4096 bytes"),
        ] {
            let (keeper, sup) = pair();
            let t = std::thread::spawn(move || serve(&sup, 9, |_| true));
            (&keeper).write_all(&input).unwrap();
            let e = t.join().unwrap().unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("keeper 9"), "{e}");
        }
    }
}
