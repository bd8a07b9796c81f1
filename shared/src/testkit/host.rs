//! A backend as a local user of the host sees it: which user its process runs as, and who
//! can read its files. For the tests that no backend runs as root and no data directory or
//! secret is open to other users.

use std::{
    fs,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::Path,
};

/// Whether this process runs as root (then the backends drop to their own users).
pub fn running_as_root() -> bool {
    uids(std::process::id()).is_some_and(|uids| uids.get(1) == Some(&0))
}

/// The real, effective, saved and filesystem uids of `pid` (`/proc/<pid>/status`).
pub fn uids(pid: u32) -> Option<Vec<u32>> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace()
        .skip(1)
        .map(|uid| uid.parse().ok())
        .collect()
}

/// The uid of the system user `name` (`/etc/passwd`).
pub fn uid_of(name: &str) -> Option<u32> {
    fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name))
        .and_then(|fields| fields.get(2)?.parse().ok())
}

/// Every path under `dir` (itself included, symlinks not followed) whose mode grants anything
/// to group or others, as `path mode`. A Unix socket counts only when its directory lets
/// others through: servers make their sockets 0777 and guard them by the directory.
pub fn open_to_others(dir: &Path) -> Vec<String> {
    let mut open = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue; // removed meanwhile (a server's temporary file)
        };
        let mode = meta.permissions().mode();
        let guarded_socket = meta.file_type().is_socket()
            && path
                .parent()
                .and_then(|parent| fs::metadata(parent).ok())
                .is_some_and(|parent| parent.permissions().mode() & 0o011 == 0);
        if mode & 0o077 != 0 && !meta.file_type().is_symlink() && !guarded_socket {
            open.push(format!("{} {mode:o}", path.display()));
        }
        if meta.is_dir()
            && let Ok(entries) = fs::read_dir(&path)
        {
            pending.extend(entries.filter_map(Result::ok).map(|entry| entry.path()));
        }
    }
    open
}

/// What a local user could take from the backend listening on `port` with its files in `dir`:
/// a process running as root (or, when `user` is given, as anyone else), and paths open to
/// others. Empty when there is nothing. Whose process it is can only be seen as root; then
/// the process must be visible.
pub fn exposure(port: u16, dir: &Path, user: Option<&str>) -> Vec<String> {
    let mut found = open_to_others(dir);
    if !running_as_root() {
        return found;
    }
    let Some(pid) = listening_pid(port) else {
        found.push(format!("no process listens on port {port}"));
        return found;
    };
    let uids = uids(pid).unwrap_or_default();
    if uids.is_empty() || uids.contains(&0) {
        found.push(format!("the server (pid {pid}) runs with uids {uids:?}"));
    }
    if let Some(user) = user {
        let expected = uid_of(user);
        if expected.is_none() || uids.iter().any(|uid| Some(*uid) != expected) {
            found.push(format!(
                "the server (pid {pid}) runs with uids {uids:?}, not as {user} ({expected:?})"
            ));
        }
    }
    found
}

/// The process that listens on TCP `port` (any local address), found through
/// `/proc/net/tcp{,6}` and the processes' open sockets; `None` when none is visible (a
/// process of another user is only visible to root).
pub fn listening_pid(port: u16) -> Option<u32> {
    const LISTEN: &str = "0A";
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local_port = fields.get(1)?.rsplit(':').next()?;
                    let listening = u16::from_str_radix(local_port, 16).ok()? == port
                        && *fields.get(3)? == LISTEN;
                    let inode = fields.get(9)?;
                    listening.then(|| format!("socket:[{inode}]"))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse::<u32>().ok()?, entry)))
        .find(|(_, entry)| {
            fs::read_dir(entry.path().join("fd")).is_ok_and(|fds| {
                fds.filter_map(Result::ok).any(|fd| {
                    fs::read_link(fd.path()).is_ok_and(|target| {
                        inodes
                            .iter()
                            .any(|inode| target.as_os_str() == inode.as_str())
                    })
                })
            })
        })
        .map(|(pid, _)| pid)
}
