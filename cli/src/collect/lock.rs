//! One collector per directory: an exclusive `flock` on `DIR/.llm-cost-collect.lock`, held for the
//! life of the process (the kernel releases it when the process ends, however it ends).

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Holds the directory lock while alive.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Takes the lock, or says who holds it.
pub fn lock(dir: &Path) -> Result<DirLock, String> {
    let path = dir.join(".llm-cost-collect.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    try_lock(&file).map_err(|e| {
        format!(
            "{} is in use by another `llm-cost collect` ({e})",
            dir.display()
        )
    })?;
    Ok(DirLock { _file: file })
}

#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<()> {
    Ok(())
}
