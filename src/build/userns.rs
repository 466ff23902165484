//! Rootless isolation: a non-root hoist re-runs itself in a user namespace where it is root
//! over the user's subordinate id ranges (`/etc/subuid`, `/etc/subgid`, written by the setuid
//! helpers `newuidmap`/`newgidmap`, as podman and buildah do), else over its own id alone.
//! Inside, the RUN sandbox works as for root: mounts, overlay (with `userxattr`), chown within
//! the mapped ids. Device nodes cannot be made there.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Set for the re-run hoist: its ends of the two handshake pipes, `READ,WRITE`.
const HANDSHAKE_ENV: &str = "HOIST_USERNS_HANDSHAKE";
/// Set for the re-run hoist when only one id can be mapped: why.
const SINGLE_ID_ENV: &str = "HOIST_USERNS_SINGLE_ID";

/// How this process's ids relate to the host's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// The host's ids (no user namespace).
    Host,
    /// Root over a range of ids: chown to the image's users works.
    Range,
    /// Root over one id: everything belongs to root, other users cannot exist.
    Single,
}

#[derive(Debug)]
struct State {
    mapping: Mapping,
    /// Why the namespace could not be made, when it was tried and failed.
    unavailable: Option<String>,
    /// Why only one id is mapped ([`Mapping::Single`]).
    single_id: Option<String>,
}

static STATE: OnceLock<State> = OnceLock::new();

/// The mapping this process runs under.
pub fn mapping() -> Mapping {
    state().mapping
}

/// Why a user namespace could not be made, when hoist tried.
pub fn unavailable() -> Option<&'static str> {
    state().unavailable.as_deref()
}

fn state() -> &'static State {
    STATE.get_or_init(|| State {
        mapping: mapping_from_uid_map(
            &std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default(),
        ),
        unavailable: None,
        single_id: None,
    })
}

/// The mapping a `/proc/self/uid_map` describes (a rootless container runtime may have put
/// hoist in a user namespace already).
fn mapping_from_uid_map(uid_map: &str) -> Mapping {
    let ranges: Vec<Vec<u64>> = uid_map
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .filter(|r: &Vec<u64>| r.len() == 3)
        .collect();
    match ranges.as_slice() {
        [] => Mapping::Host,
        [only] if only[0] == 0 && only[1] == 0 && only[2] == u64::from(u32::MAX) => Mapping::Host,
        [only] if only[2] == 1 => Mapping::Single,
        _ => Mapping::Range,
    }
}

/// The xattr overlayfs keeps its marks in (`opaque`, ...): `user.overlay.*` in a user
/// namespace, where `trusted.*` cannot be written (the overlay is mounted with `userxattr`).
pub fn overlay_xattr(name: &str) -> String {
    match mapping() {
        Mapping::Host => format!("trusted.overlay.{name}"),
        _ => format!("user.overlay.{name}"),
    }
}

/// Where [`enter`] leaves the caller.
pub enum Entered {
    /// This process started hoist again in the namespace; it ended with this exit code.
    Parent(u8),
    /// Go on in this process (inside the namespace, or outside when none could be made:
    /// [`unavailable`] says why, for the error of a RUN that needs one).
    Continue,
}

/// Runs the rest of this hoist in a user namespace. Call it first thing in `main`, while
/// the process has one thread (unshare(CLONE_NEWUSER) requires it).
pub fn enter() -> Result<Entered> {
    match std::env::var(HANDSHAKE_ENV) {
        Ok(fds) => {
            let single_id = std::env::var(SINGLE_ID_ENV).ok();
            // SAFETY: single-threaded, as this function's contract says.
            unsafe {
                std::env::remove_var(HANDSHAKE_ENV);
                std::env::remove_var(SINGLE_ID_ENV);
            }
            child_side(&fds, single_id);
            Ok(Entered::Continue)
        }
        Err(_) => parent_side().map(Entered::Parent),
    }
}

/// The re-run hoist: unshares, tells the parent, waits for its maps.
fn child_side(fds: &str, single_id: Option<String>) {
    let parse = |s: Option<&str>| s.and_then(|n| n.parse::<i32>().ok());
    let mut parts = fds.split(',');
    let (Some(read_fd), Some(write_fd)) = (parse(parts.next()), parse(parts.next())) else {
        return;
    };
    // SAFETY: the parent passed these two descriptors open for us, and nothing else owns them.
    let (mut from_parent, mut to_parent) = unsafe {
        (
            std::fs::File::from(OwnedFd::from_raw_fd(read_fd)),
            std::fs::File::from(OwnedFd::from_raw_fd(write_fd)),
        )
    };
    // SAFETY: unshare with a flag; the process is single-threaded here.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        let why = std::io::Error::last_os_error();
        let _ = to_parent.write_all(b"n");
        let _ = STATE.set(State {
            mapping: Mapping::Host,
            unavailable: Some(format!("cannot make a user namespace: {why}")),
            single_id: None,
        });
        return;
    }
    let mut answer = [0u8; 1];
    if to_parent.write_all(b"y").is_err() || from_parent.read_exact(&mut answer).is_err() {
        // The parent failed to map our ids and says why; nothing can work in here.
        std::process::exit(1);
    }
    let mapping = if answer[0] == b'r' {
        Mapping::Range
    } else {
        Mapping::Single
    };
    let _ = STATE.set(State {
        mapping,
        unavailable: None,
        single_id,
    });
}

/// The first `start:count` range for this user (by name or uid) in a subuid/subgid file.
fn subordinate_range(file: &str, name: Option<&str>, id: u32) -> Option<(u64, u64)> {
    let id = id.to_string();
    file.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let owner = fields.next()?;
        if owner != id && Some(owner) != name {
            return None;
        }
        let start = fields.next()?.parse().ok()?;
        let count: u64 = fields.next()?.parse().ok()?;
        (count > 0).then_some((start, count))
    })
}

/// This user's name in /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 2 && fields[2] == uid.to_string()).then(|| fields[0].to_string())
    })
}

/// Subordinate uids and gids (`start`, `count`) for newuidmap/newgidmap.
struct Ranges {
    uids: (u64, u64),
    gids: (u64, u64),
}

/// The ranges newuidmap/newgidmap would map, or why a single id is mapped instead.
fn ranges(uid: u32) -> std::result::Result<Ranges, String> {
    let name = user_name(uid);
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let who = name.clone().unwrap_or_else(|| uid.to_string());
    let uids = subordinate_range(&read("/etc/subuid"), name.as_deref(), uid)
        .ok_or_else(|| format!("user {who} has no range in /etc/subuid"))?;
    let gids = subordinate_range(&read("/etc/subgid"), name.as_deref(), uid)
        .ok_or_else(|| format!("user {who} has no range in /etc/subgid"))?;
    for helper in ["newuidmap", "newgidmap"] {
        if !on_path(helper) {
            return Err(format!("{helper} is not installed (Debian: uidmap)"));
        }
    }
    Ok(Ranges { uids, gids })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Starts hoist again with the same arguments, maps its ids once it has unshared, and waits.
fn parent_side() -> Result<u8> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let (child_read, parent_write) = std::io::pipe().map_err(|e| Error::io("<pipe>", e))?;
    let (mut parent_read, child_write) = std::io::pipe().map_err(|e| Error::io("<pipe>", e))?;
    let (child_read_fd, child_write_fd) = (child_read.as_raw_fd(), child_write.as_raw_fd());
    let mut args = std::env::args_os();
    let mut command = Command::new("/proc/self/exe");
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    command
        .args(args)
        .env(HANDSHAKE_ENV, format!("{child_read_fd},{child_write_fd}"));
    let ranges = ranges(uid);
    if let Err(why) = &ranges {
        command.env(SINGLE_ID_ENV, why);
    }
    // SAFETY: only system calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            for fd in [child_read_fd, child_write_fd] {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Killing hoist kills the build it started.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| Error::io("/proc/self/exe", e))?;
    drop((child_read, child_write));
    // Ctrl-C reaches the whole process group: the child decides what to do with it.
    // SAFETY: setting a signal disposition to ignore.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let mut unshared = [0u8; 1];
    let _ = parent_read.read_exact(&mut unshared);
    if unshared[0] == b'y' {
        let mut to_child = parent_write;
        match write_maps(child.id(), uid, gid, ranges) {
            Ok(mapping) => {
                let answer = if mapping == Mapping::Range {
                    b"r"
                } else {
                    b"s"
                };
                let _ = to_child.write_all(answer);
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
    }
    let status = child.wait().map_err(|e| Error::io("<hoist>", e))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128 + signal as u8,
        _ => 2,
    })
}

/// Writes the child's uid and gid maps: the subordinate ranges through newuidmap/newgidmap,
/// else this user's own ids alone.
fn write_maps(
    pid: u32,
    uid: u32,
    gid: u32,
    ranges: std::result::Result<Ranges, String>,
) -> Result<Mapping> {
    let helper = |program: &str, own: u32, (start, count): (u64, u64)| -> Result<()> {
        let out = Command::new(program)
            .args([pid.to_string(), "0".into(), own.to_string(), "1".into()])
            .args(["1".to_string(), start.to_string(), count.to_string()])
            .output()
            .map_err(|e| Error::io(program, e))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(Error::Usage(format!(
            "rootless isolation: {program} failed: {} (is it setuid root, and are the ranges in /etc/subuid and /etc/subgid free?)",
            stderr.trim()
        )))
    };
    match ranges {
        Ok(Ranges { uids, gids }) => {
            helper("newuidmap", uid, uids)?;
            helper("newgidmap", gid, gids)?;
            Ok(Mapping::Range)
        }
        Err(_) => {
            let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
            for (file, content) in [
                ("setgroups", "deny".to_string()),
                ("uid_map", format!("0 {uid} 1")),
                ("gid_map", format!("0 {gid} 1")),
            ] {
                let path = proc.join(file);
                std::fs::write(&path, content).map_err(|e| Error::io(&path, e))?;
            }
            Ok(Mapping::Single)
        }
    }
}

/// Why only one id is mapped, for the warning RUN gives then.
pub fn single_id_reason() -> String {
    let why = state().single_id.as_deref().unwrap_or("no subordinate ids");
    format!(
        "rootless RUN maps a single id ({why}): files of other users become root's and switching users fails; add ranges with `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_maps_tell_the_mapping() {
        assert_eq!(
            mapping_from_uid_map("         0          0 4294967295\n"),
            Mapping::Host
        );
        assert_eq!(mapping_from_uid_map("0 1000 1\n"), Mapping::Single);
        assert_eq!(
            mapping_from_uid_map("0 1000 1\n1 100000 65536\n"),
            Mapping::Range
        );
        assert_eq!(mapping_from_uid_map(""), Mapping::Host);
    }

    #[test]
    fn subordinate_ranges_match_by_name_or_uid() {
        let file = "alice:100000:65536\n1001:300000:1000\nbob:0:0\n";
        assert_eq!(
            subordinate_range(file, Some("alice"), 1000),
            Some((100000, 65536))
        );
        assert_eq!(
            subordinate_range(file, Some("carol"), 1001),
            Some((300000, 1000))
        );
        assert_eq!(subordinate_range(file, Some("bob"), 1002), None);
        assert_eq!(subordinate_range(file, None, 1003), None);
    }
}
