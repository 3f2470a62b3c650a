//! Inspection: a typed [`Call`] and the task that made it, turned into a
//! [`Request`]: what the call does in the model's terms (observations), what
//! an event about it says, and how an allow proceeds in enforce mode (a
//! `Plan`). Each kind of call has its inspector: `files`, `sockets`,
//! `sends` (datagrams' destinations), `sctp` (its socket options),
//! `signals`, `exec`.
//!
//! This is where the target's memory and /proc are read and paths resolved,
//! once, in the target's root: decisions are made on real paths of what the
//! supervisor holds fds to, and emulation acts on those fds.

use super::decode::Call;
use super::failure::Failure;
use super::request::{Plan, Request, Scope};
use super::target::Target;
use super::{exec, files, sctp, sends, signals, sockets};
use crate::event::{Category, Kind};

/// Inspects `call` (the syscall `syscall`, whose policy line says `why`) made by `t`.
pub fn inspect(
    call: &Call,
    (syscall, why): (&'static str, &'static str),
    t: &Target<'_>,
    scope: &Scope<'_>,
) -> Result<Request, Failure> {
    match *call {
        Call::Exec {
            base,
            path,
            argv,
            flags,
        } => exec::exec(t, scope, base, path, argv, flags),
        Call::Socket {
            family,
            kind,
            protocol,
        } => Ok(sockets::socket(t, family, kind, protocol)),
        Call::SockAddr {
            bind,
            fd,
            addr,
            len,
        } => sockets::sockaddr(t, scope, bind, fd, addr, len),
        Call::Listen { fd, backlog } => sockets::listen(t, fd, backlog),
        Call::Send { fd, of, flags } => sends::send(t, scope, fd, of, flags),
        Call::SockOpt {
            fd,
            level,
            name,
            val,
            len,
            get,
        } if get || level as u32 == nfguard_policy::SOL_SCTP => {
            sctp::sockopt(t, scope, fd, (level, name), (val, len), get)
        }
        // The filter notifies no other setsockopt: the options that source-route.
        Call::SockOpt {
            level,
            name,
            val,
            len,
            ..
        } => sockets::source_routing(t, (level, name), (val, len)),
        Call::Open {
            base,
            path,
            flags,
            mode,
            truncate_to,
        } => files::open(t, scope, base, path, flags, mode, truncate_to),
        Call::Unlink { base, path, flags } => files::unlink(t, scope, base, path, flags),
        Call::Rmdir { path } => {
            files::unlink(t, scope, super::decode::Base::Cwd, path, libc::AT_REMOVEDIR)
        }
        Call::Rename {
            old_base,
            old,
            new_base,
            new,
            flags,
        } => files::rename(t, scope, (old_base, old), (new_base, new), flags),
        Call::Link {
            old_base,
            old,
            new_base,
            new,
            flags,
        } => files::link(t, scope, (old_base, old), (new_base, new), flags),
        Call::Symlink { target, base, path } => files::symlink(t, scope, target, base, path),
        Call::Mkdir { base, path, mode } => files::mkdir(t, scope, base, path, mode),
        Call::Mknod {
            base,
            path,
            mode,
            dev,
        } => files::mknod(t, scope, base, path, mode, dev),
        Call::Chmod {
            base,
            path,
            mode,
            flags,
        } => files::chmod(t, scope, Some((base, path, flags)), None, mode),
        Call::Fchmod { fd, mode } => files::chmod(t, scope, None, Some(fd), mode),
        Call::Xattr {
            of,
            name,
            value,
            flags,
        } => files::xattr(t, scope, of, name, value, flags),
        Call::Debug { pid } => Ok(debug(scope, syscall, pid)),
        Call::Signal(s) => signals::signal(t, scope, syscall, s),
        Call::SetOwner {
            fd,
            cmd,
            arg,
            ioctl,
        } => signals::set_owner(t, scope, syscall, fd, cmd, arg, ioctl),
        Call::Limits { pid, new } => Ok(signals::limits(scope, syscall, pid, new)),
        Call::Reaches(r) => signals::reaches(t, scope, syscall, r),
        Call::Forbidden => Ok(forbidden(syscall, why)),
    }
}

fn debug(scope: &Scope<'_>, syscall: &str, pid: i32) -> Request {
    let mut req = Request::new(Category::Process, None, libc::EPERM);
    req.special = Some((
        Kind::OutsideModel,
        format!("{syscall} can rewrite another process's memory; nfguard never learns it"),
    ));
    if pid > 0 && (scope.is_nfguard)(pid) {
        req.forbid(format!("{syscall} of nfguard's own process {pid}"));
    }
    // Arguments are registers (pids, requests): continuing is exact.
    req.plan = Plan::Continue;
    req
}

/// A call the policy refuses in every mode: the event says which and why.
fn forbidden(syscall: &str, why: &str) -> Request {
    let mut req = Request::new(Category::Process, None, libc::EPERM);
    req.forbid(format!(
        "nfguard refuses {syscall} to every workload: {why}"
    ));
    req
}
