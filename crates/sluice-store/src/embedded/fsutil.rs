//! The few file-system calls the engine needs beyond `std`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::error::EngineError;

/// fsyncs a directory, so that file creations, renames and removals in it survive a
/// power loss. Without it a new segment can vanish after a crash even though its data
/// was synced.
pub fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| EngineError::io(dir, e))
}

/// Reserves `len` bytes of disk for `file` so that appends inside the reservation never
/// need the file system to allocate blocks (measured: +30 % at small batches), and so
/// that running out of space shows up here, at segment creation, instead of in the
/// middle of a group commit.
///
/// Falls back to `ftruncate` (a sparse file) on file systems without `fallocate`.
pub fn preallocate(file: &File, len: u64) -> std::io::Result<()> {
    let len_off =
        libc::off_t::try_from(len).map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: the descriptor is owned by `file` and stays open for the call; fallocate
    // reads no memory of ours.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_off) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => file.set_len(len),
        _ => Err(err),
    }
}

/// Writes `len` bytes of `file` at `offset` back to disk and waits for them, without
/// a journal commit (`sync_file_range`). A background writer that pushes its data out
/// in small steps this way never leaves tens of MiB of dirty pages for the kernel to
/// flush at once, which is what a group commit's `fdatasync` would queue behind.
///
/// Not a durability barrier (metadata is not synced); a no-op where unsupported.
pub fn write_back(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return Err(std::io::Error::from_raw_os_error(libc::EFBIG));
    };
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: the descriptor is owned by `file` and stays open for the call;
    // sync_file_range reads no memory of ours.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::ESPIPE) => Ok(()),
        _ => Err(err),
    }
}

/// Lowers the calling thread's CPU priority to the least (nice 19). For the engine's
/// background threads (spare preparation, index checkpoints, scrub): on a busy core
/// they would otherwise take equal turns with the request path and the group commit.
/// Measured: a checkpoint (reading and checking a sealed 64 MiB segment) at normal
/// priority held commits at 12–25 ms for ~200 ms after every roll-over. Nice 19 still
/// runs them on a saturated core, only slowly. Best effort: failure changes nothing.
pub fn lower_thread_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours;
    // on Linux, PRIO_PROCESS with a thread id applies to that thread only.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

/// Takes an exclusive, advisory lock on a data directory (`LOCK` inside it), held until
/// the returned file is dropped. One process at a time may own a data directory: two
/// writers would interleave segments, and an offline CLI edit of the catalog under a
/// running server would be overwritten by it.
pub fn lock_dir(dir: &Path) -> Result<File, EngineError> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| EngineError::io(&path, e))?;
    // SAFETY: flock on a descriptor owned by `file`, which outlives the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(EngineError::Locked(format!(
                "the data directory {} is in use by another Sluice process (stop it, or use the admin API)",
                dir.display()
            )));
        }
        return Err(EngineError::io(&path, err));
    }
    Ok(file)
}
