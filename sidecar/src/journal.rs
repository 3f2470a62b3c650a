//! The in-flight journal: notifications received but not yet answered, kept
//! in a file-backed shared mapping so that a restarted supervisor can answer
//! what its predecessor left pending.
//!
//! Why: the kernel hands a notification to one reader only. If the supervisor
//! dies after SECCOMP_IOCTL_NOTIF_RECV and before answering, the keeper still
//! holds the listener (so nothing fails with ENOSYS), but that one task waits
//! in its syscall forever: no later reader is told about it again. With the
//! journal, the next supervisor re-reads the notification (pid, syscall,
//! arguments, id), checks that the id is still pending (SECCOMP_IOCTL_NOTIF_ID_VALID)
//! and decides it afresh, exactly as it would have.
//!
//! Layout: `SLOTS` fixed slots of `SLOT` bytes: a u64 state (0 free, 1 pending)
//! then the raw `seccomp_notif`. A slot is written before the notification is
//! handled and freed once it is answered. The window this does not cover is the
//! copy into the slot right after RECV (a few hundred nanoseconds).

use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::sys::{self, seccomp_notif, SharedMap};

const NOTIF_LEN: usize = std::mem::size_of::<seccomp_notif>();
const SLOT: usize = 8 + NOTIF_LEN;
/// Notifications that can be in flight at once (one per listener thread, plus
/// blocking connects answered from their own threads).
pub const SLOTS: usize = 256;

pub struct Journal {
    map: SharedMap,
    free: Mutex<Vec<usize>>,
}

impl Journal {
    /// Opens (or creates) the journal file at `path`.
    pub fn open(path: &Path) -> io::Result<Arc<Journal>> {
        // Beside the socket, where a planted name (a symlink to a file to
        // overwrite) must not be followed: see private_file.
        let file = crate::private_file::open(path, false)?;
        let len = (SLOT * SLOTS) as u64;
        if file.metadata()?.len() != len {
            file.set_len(len)?;
        }
        let map = SharedMap::map(file.as_fd(), SLOT * SLOTS)?;
        Ok(Arc::new(Journal {
            map,
            free: Mutex::new((0..SLOTS).rev().collect()),
        }))
    }

    /// Notifications a previous supervisor left pending (their slots are freed).
    pub fn take_pending(&self) -> Vec<seccomp_notif> {
        let mut out = Vec::new();
        for i in 0..SLOTS {
            let mut state = [0u8; 8];
            self.map.read(i * SLOT, &mut state);
            if u64::from_ne_bytes(state) == 1 {
                let mut raw = [0u8; NOTIF_LEN];
                self.map.read(i * SLOT + 8, &mut raw);
                out.push(sys::notif_from_bytes(&raw));
                self.map.write(i * SLOT, &0u64.to_ne_bytes());
            }
        }
        out
    }

    /// Records `n` as pending; the returned guard frees the slot when dropped
    /// (after the answer). `None` when every slot is taken: the notification is
    /// then handled unjournaled.
    pub fn record(self: &Arc<Self>, n: &seccomp_notif) -> Option<Pending> {
        let slot = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
        self.map.write(slot * SLOT + 8, &sys::notif_to_bytes(n));
        self.map.write(slot * SLOT, &1u64.to_ne_bytes());
        Some(Pending {
            journal: Arc::clone(self),
            slot,
        })
    }
}

/// A journaled notification; dropping it marks it answered.
pub struct Pending {
    journal: Arc<Journal>,
    slot: usize,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.journal
            .map
            .write(self.slot * SLOT, &0u64.to_ne_bytes());
        self.journal
            .free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_notifications_survive_the_journal_being_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        // SAFETY-free: a zeroed notification is plain data.
        let mut n: seccomp_notif = sys::notif_from_bytes(&[0u8; NOTIF_LEN]);
        n.id = 77;
        n.pid = 1234;
        n.data.nr = 257;
        n.data.args[1] = 0xdead;
        {
            let j = Journal::open(&path).unwrap();
            let answered = j.record(&n).unwrap();
            let pending = j.record(&n).unwrap();
            drop(answered);
            std::mem::forget(pending); // the supervisor "dies" before answering
        }
        let j = Journal::open(&path).unwrap();
        let left = j.take_pending();
        assert_eq!(left.len(), 1);
        assert_eq!(
            (
                left[0].id,
                left[0].pid,
                left[0].data.nr,
                left[0].data.args[1]
            ),
            (77, 1234, 257, 0xdead)
        );
        assert!(j.take_pending().is_empty(), "taken once");
    }
}
