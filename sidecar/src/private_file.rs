//! Opening nfguard's own files where a workload may also write: the
//! in-flight journals and exec tickets beside the socket, the events file.
//!
//! Why: a directory the workload can write (`nfguard supervise` with its
//! socket in a shared directory, the events file in the workload's working
//! directory) lets it plant a name before nfguard opens it: a symlink to a
//! file it wants overwritten (followed, with nfguard's rights), or a file of
//! its own whose content nfguard would then trust. So a name is opened
//! without following a final symlink, and what it opens is used only when it
//! is a regular file of nfguard's own uid with no second name; anything else
//! is removed (the name only) and made afresh, exclusively.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Is `f` a regular file with one link (a second name would let a write
/// through it reach another file)? The events file may be anyone's: the
/// user who asked for it chose it.
pub fn check_single(f: &File, path: &Path) -> io::Result<()> {
    let m = f.metadata()?;
    if m.file_type().is_file() && m.nlink() == 1 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a regular file with a single name",
                path.display()
            ),
        ))
    }
}

/// Is `f` a regular file of our effective uid with one link?
pub fn check(f: &File, path: &Path) -> io::Result<()> {
    let m = f.metadata()?;
    let ours = nix::unistd::geteuid().as_raw();
    if m.file_type().is_file() && m.uid() == ours && m.nlink() == 1 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not nfguard's own file (a regular file of uid {ours} with one link)",
                path.display()
            ),
        ))
    }
}

fn options(append: bool) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if append {
        o.append(true);
    } else {
        o.write(true);
    }
    o
}

/// Opens `path` for reading and writing (appending with `append`), creating
/// it when absent; a planted name (a symlink, a file of another owner, a
/// second name of another file) is replaced by a new file of ours.
pub fn open(path: &Path, append: bool) -> io::Result<File> {
    match options(append).create(true).open(path) {
        Ok(f) if check(&f, path).is_ok() => return Ok(f),
        // ELOOP: a symlink, not followed. Anything else wrong: replaced below.
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {}
        Err(e) => return Err(e),
    }
    remove_name(path)?;
    let f = options(append).create_new(true).open(path)?;
    check(&f, path)?;
    Ok(f)
}

/// Opens an existing `path` for reading only if it is nfguard's own;
/// `Ok(None)` when it does not exist.
pub fn open_existing(path: &Path) -> io::Result<Option<File>> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    check(&f, path)?;
    Ok(Some(f))
}

/// A new file beside `path` under a name nobody can guess ahead (for a
/// write-then-rename), made exclusively: never a planted one.
pub fn fresh_beside(path: &Path) -> io::Result<(PathBuf, File)> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("nfguard");
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(
            ".{name}.tmp.{}.{nanos:x}.{attempt}",
            std::process::id()
        ));
        match options(false).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}

fn remove_name(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_is_replaced_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep me\n").unwrap();
        let name = d.path().join(".inflight-7");
        std::os::unix::fs::symlink(&victim, &name).unwrap();
        let f = open(&name, false).unwrap();
        f.set_len(4096).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
        assert!(!std::fs::symlink_metadata(&name)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn a_second_name_of_another_file_is_not_taken_for_ours() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep me\n").unwrap();
        let name = d.path().join("events.jsonl");
        std::fs::hard_link(&victim, &name).unwrap();
        assert!(
            open_existing(&victim).is_err(),
            "two links: not ours to trust"
        );
        use std::io::Write;
        open(&name, true).unwrap().write_all(b"event\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
        assert_eq!(std::fs::read_to_string(&name).unwrap(), "event\n");
        assert!(
            open_existing(&victim).unwrap().is_some(),
            "one name again: ours"
        );
        assert!(open_existing(&d.path().join("absent")).unwrap().is_none());
    }

    #[test]
    fn fresh_names_are_new_files() {
        let d = tempfile::tempdir().unwrap();
        let (a, _) = fresh_beside(&d.path().join("m.json")).unwrap();
        let (b, _) = fresh_beside(&d.path().join("m.json")).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(d.path()));
    }
}
