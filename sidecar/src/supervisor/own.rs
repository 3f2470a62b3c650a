//! What is nfguard's own and never the workload's to touch, in any mode: its
//! processes (the supervisor, every keeper) and its files (the model, the
//! events file, the socket's directory with the in-flight journals, the
//! spool). A call that would reach them is `forbidden`: refused in every mode,
//! learn included, with an event.
//!
//! Files are known by real path (a directory covers what is below it) and by
//! identity (device and inode) for the ones that are never replaced, so a
//! second name made for them before they were protected is caught too. In a
//! pod they are out of reach anyway (the shared volume is read-only in the NF
//! container and events go to the sidecar's stdout); under `nfguard run` the
//! workload often has the supervisor's uid, and this is what stops it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::RwLock;

/// nfguard's own files.
#[derive(Default)]
pub struct OwnFiles {
    paths: RwLock<Vec<String>>,
    /// Name prefixes: every name starting so in a directory (`.inflight-`
    /// beside the socket, for the journals of keepers yet to come).
    prefixes: RwLock<Vec<String>>,
    ids: RwLock<Vec<(u64, u64)>>,
}

impl OwnFiles {
    /// Protects `path` (a file or a directory, which need not exist yet: its
    /// real path is that of its parent plus its name).
    pub fn protect(&self, path: &Path) {
        let real = std::fs::canonicalize(path).ok().or_else(|| {
            let parent = std::fs::canonicalize(path.parent()?).ok()?;
            Some(parent.join(path.file_name()?))
        });
        if let Some(real) = real.and_then(|r| r.to_str().map(str::to_string)) {
            self.paths
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .push(real);
        }
        if let Ok(m) = std::fs::metadata(path) {
            if !m.is_dir() {
                self.ids
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((m.dev(), m.ino()));
            }
        }
    }

    /// Protects every name in `dir` that starts with `prefix`.
    pub fn protect_prefix(&self, dir: &Path, prefix: &str) {
        if let Some(d) = std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.to_str().map(str::to_string))
        {
            self.prefixes
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{}/{prefix}", d.trim_end_matches('/')));
        }
    }

    /// Is `real` (a real path in the supervisor's view) one of ours, or below one?
    pub fn covers(&self, real: &str) -> bool {
        let paths = self.paths.read().unwrap_or_else(|p| p.into_inner());
        let prefixes = self.prefixes.read().unwrap_or_else(|p| p.into_inner());
        paths.iter().any(|p| {
            real == p
                || real
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }) || prefixes.iter().any(|p| real.starts_with(p.as_str()))
    }

    /// Does `real` hold one of ours (a directory above it)? Removing or
    /// renaming such a directory moves nfguard's files with it.
    pub fn beneath(&self, real: &str) -> bool {
        let base = format!("{}/", real.trim_end_matches('/'));
        let paths = self.paths.read().unwrap_or_else(|p| p.into_inner());
        let prefixes = self.prefixes.read().unwrap_or_else(|p| p.into_inner());
        paths
            .iter()
            .chain(prefixes.iter())
            .any(|p| p.starts_with(&base))
    }

    /// Is the file of this device and inode one of ours?
    pub fn covers_id(&self, dev: u64, ino: u64) -> bool {
        self.ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(dev, ino))
    }

    /// Are any files protected (the common case in a pod is none)?
    pub fn is_empty(&self) -> bool {
        self.paths
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_protected_directory_covers_what_is_below_it_and_nothing_beside_it() {
        let d = tempfile::tempdir().unwrap();
        let own = OwnFiles::default();
        assert!(own.is_empty());
        own.protect(&d.path().join("sock"));
        std::fs::write(d.path().join("events.jsonl"), "").unwrap();
        own.protect(&d.path().join("events.jsonl"));
        let base = std::fs::canonicalize(d.path()).unwrap();
        let base = base.to_str().unwrap();
        assert!(own.covers(&format!("{base}/sock")));
        assert!(own.covers(&format!("{base}/sock/.inflight-7")));
        assert!(!own.covers(&format!("{base}/sockets")));
        assert!(!own.covers(base));
        assert!(own.beneath(base), "the directory holding them");
        assert!(
            !own.beneath(&format!("{base}/sock")),
            "nothing below the socket is protected by it"
        );
        own.protect_prefix(d.path(), ".inflight-");
        assert!(own.covers(&format!("{base}/.inflight-4242")));
        assert!(!own.covers(&format!("{base}/inflight-4242")));
        let m = std::fs::metadata(d.path().join("events.jsonl")).unwrap();
        assert!(own.covers_id(m.dev(), m.ino()));
        assert!(!own.covers_id(m.dev(), m.ino() + 1));
    }
}
