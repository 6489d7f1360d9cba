//! Other processes: whether one is alive. The shared memory's write locks
//! name their holder by pid (docs/DESIGN.md §9.1).

use std::io;

/// A process id, as the kernel numbers them.
pub type Pid = libc::pid_t;

/// Whether a process `pid` exists (a zombie does: see [`is_zombie`]). A
/// number that is no pid (0 or negative, which `kill` would take for a
/// process group) does not.
pub fn process_exists(pid: Pid) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 sends nothing: the kernel only checks that the process
    // exists. `EPERM` (another user's) still means it does.
    let probed = unsafe { syscall!(kill(pid, 0)) };
    !matches!(probed, Err(e) if e.raw_os_error() == Some(libc::ESRCH))
}

/// Whether `pid` is a zombie (dead, not yet reaped by its parent), from
/// `/proc/<pid>/stat`. Where there is no `/proc`, never.
#[cfg(target_os = "linux")]
pub fn is_zombie(pid: Pid) -> bool {
    // /proc/<pid>/stat: "pid (comm) S ...", comm may hold spaces and ')'.
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else { return false };
    let Some(close) = stat.iter().rposition(|b| *b == b')') else { return false };
    matches!(stat.get(close + 2), Some(b'Z' | b'X'))
}

#[cfg(not(target_os = "linux"))]
pub fn is_zombie(_pid: Pid) -> bool {
    false
}
