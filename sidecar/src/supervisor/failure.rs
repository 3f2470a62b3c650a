//! Why a call could not be judged, sorted by whose failure it is.
//!
//! The distinction is the security argument of the hot path (issue: errors
//! sorted by errno at each `?` once turned the supervisor's own `EMFILE` into
//! "the call fails anyway"):
//! - the *target's* failure (a bad pointer, a missing file, an fd it does not
//!   have) is what the kernel would answer too: the call is answered with that
//!   errno in enforce mode (continuing would let a racing thread turn the bad
//!   argument into a good one) and continued otherwise, with no event;
//! - a *refusal* is nfguard declining to judge something it cannot judge
//!   safely (a symlink loop, a /proc magic link): an event in every mode, a
//!   denial in enforce mode;
//! - an *internal* failure is nfguard's own step failing (out of fds, /proc
//!   unreadable, no rights over the task): an `internal-error` event naming
//!   the step, a denial in enforce mode.
//!
//! Every `?` in `inspect` and `target` names its step and says, by the
//! constructor it uses, whether the step acted on the target's argument
//! ([`Failure::theirs`]) or was nfguard's own ([`Failure::ours`]).

use std::fmt;
use std::io;

/// Why a call could not be judged.
#[derive(Debug)]
pub enum Failure {
    /// The notification is gone (the task died or was interrupted): no answer is due.
    Gone,
    /// The call fails on its own argument, as it would in the kernel: this errno.
    Target(i32),
    /// nfguard will not judge this call: refused in enforce mode, an event in every mode.
    Refused { errno: i32, why: String },
    /// A step of nfguard's own failed.
    Internal { step: &'static str, error: String },
    /// The call reaches nfguard itself: refused in every mode, with an event.
    Forbidden(String),
}

impl Failure {
    /// A failure of nfguard's own step: the task being gone is not an error,
    /// anything else is internal.
    pub fn ours(step: &'static str, e: io::Error) -> Failure {
        match e.raw_os_error() {
            Some(libc::ESRCH) => Failure::Gone,
            _ => Failure::Internal {
                step,
                error: e.to_string(),
            },
        }
    }

    /// A failure of a step that acted on the target's argument (resolving its
    /// path, taking its fd): the errnos the kernel would give for that
    /// argument are the target's; a loop or a magic link is a refusal; running
    /// out of something is ours.
    pub fn theirs(step: &'static str, e: io::Error) -> Failure {
        match e.raw_os_error() {
            Some(libc::ESRCH) => Failure::Gone,
            Some(
                code @ (libc::ENOENT
                | libc::ENOTDIR
                | libc::EFAULT
                | libc::ENAMETOOLONG
                | libc::EINVAL
                | libc::EBADF
                | libc::ENOTSOCK
                | libc::EEXIST
                | libc::EISDIR
                | libc::EACCES
                | libc::EROFS
                | libc::ETXTBSY
                | libc::ENXIO
                | libc::ENODEV),
            ) => Failure::Target(code),
            Some(libc::ELOOP) => Failure::Refused {
                errno: libc::ELOOP,
                why: format!(
                    "{step}: too many symbolic links, or a /proc magic link nfguard does not follow"
                ),
            },
            _ => Failure::Internal {
                step,
                error: e.to_string(),
            },
        }
    }

    /// A refusal with its reason.
    pub fn refused(errno: i32, why: impl Into<String>) -> Failure {
        Failure::Refused {
            errno,
            why: why.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Gone => f.write_str("the task is gone"),
            Failure::Target(e) => write!(f, "the call fails on its own argument (errno {e})"),
            Failure::Refused { why, .. } => f.write_str(why),
            Failure::Internal { step, error } => write!(f, "{step}: {error}"),
            Failure::Forbidden(why) => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn our_own_running_out_of_fds_is_never_the_targets_failure() {
        // The bug this type exists for: EMFILE opening /proc/<pid>/root was
        // answered to the workload as if its call had failed on its own.
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOMEM,
            libc::EIO,
            libc::EAGAIN,
        ] {
            assert!(matches!(
                Failure::ours("open the root", e(code)),
                Failure::Internal { .. }
            ));
            assert!(
                matches!(
                    Failure::theirs("resolve", e(code)),
                    Failure::Internal { .. }
                ),
                "{code}"
            );
        }
        assert!(matches!(
            Failure::ours("x", e(libc::ENOENT)),
            Failure::Internal { .. }
        ));
    }

    #[test]
    fn the_targets_bad_arguments_and_our_refusals_are_told_apart() {
        assert!(matches!(
            Failure::theirs("resolve", e(libc::ENOENT)),
            Failure::Target(libc::ENOENT)
        ));
        assert!(matches!(
            Failure::theirs("take fd", e(libc::EBADF)),
            Failure::Target(libc::EBADF)
        ));
        assert!(matches!(
            Failure::theirs("resolve", e(libc::ELOOP)),
            Failure::Refused {
                errno: libc::ELOOP,
                ..
            }
        ));
        assert!(matches!(
            Failure::theirs("x", e(libc::ESRCH)),
            Failure::Gone
        ));
        assert!(matches!(Failure::ours("x", e(libc::ESRCH)), Failure::Gone));
    }
}
