//! Segment files: naming, creation, and reading one record by offset.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::codec::{self, SegmentHeader, RECORD_HEADER_LEN};
use super::error::EngineError;
use super::fsutil;
use crate::types::Sequence;

const SUFFIX: &str = ".seg";

/// The file name of the segment starting at `base`: zero-padded so names sort by sequence.
pub fn file_name(base: Sequence) -> String {
    format!("{:020}{SUFFIX}", base.0)
}

/// Lists a directory's segments, oldest first, and removes leftovers that never held
/// acknowledged data: interrupted segment creations (`*.seg.tmp`), interrupted or
/// orphaned index checkpoints.
pub fn list(dir: &Path) -> Result<Vec<(Sequence, PathBuf)>, EngineError> {
    let entries = std::fs::read_dir(dir).map_err(|e| EngineError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(dir, e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(".seg.tmp"))
        {
            std::fs::remove_file(entry.path()).map_err(|e| EngineError::io(entry.path(), e))?;
        }
    }
    list_readonly(dir)
}

/// Lists a directory's segments, oldest first, changing nothing.
pub fn list_readonly(dir: &Path) -> Result<Vec<(Sequence, PathBuf)>, EngineError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| EngineError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(base) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((Sequence(base), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Creates a segment atomically: the header and the space reservation are synced under a
/// temporary name, then renamed and the directory synced. A `.seg` file therefore always
/// has a valid header, whatever the moment of a crash.
pub fn create(
    dir: &Path,
    header: SegmentHeader,
    capacity: u64,
) -> Result<(File, PathBuf), EngineError> {
    let path = dir.join(file_name(header.base_seq));
    let tmp = path.with_extension("seg.tmp");
    let build = || -> std::io::Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        fsutil::preallocate(&file, capacity)?;
        file.write_all_at(&header.encode(), 0)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(file)
    };
    match build() {
        Ok(file) => {
            fsutil::sync_dir(dir)?;
            Ok((file, path))
        }
        Err(e) => {
            // Leave no half-made file behind; the next attempt starts clean.
            let _ = std::fs::remove_file(&tmp);
            Err(EngineError::io(&tmp, e))
        }
    }
}

/// Turns a zero-filled spare into the segment starting at `header.base_seq`: write
/// the header, sync, rename, sync the directory. Only the header block changes, so this
/// is cheap, and the segment's data blocks are already written (see [`super::spare`]).
pub fn promote(
    dir: &Path,
    spare: super::spare::Spare,
    header: SegmentHeader,
) -> Result<(File, PathBuf), EngineError> {
    let path = dir.join(file_name(header.base_seq));
    spare
        .file
        .write_all_at(&header.encode(), 0)
        .and_then(|()| spare.file.sync_data())
        .and_then(|()| std::fs::rename(&spare.path, &path))
        .map_err(|e| EngineError::io(&spare.path, e))?;
    fsutil::sync_dir(dir)?;
    Ok((spare.file, path))
}

/// Opens a segment for reading and writing.
pub fn open(path: &Path) -> Result<File, EngineError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| EngineError::io(path, e))
}

/// Most records fit in one read of this size, so a typical event read is one syscall.
const FIRST_READ_BYTES: usize = 2048;

/// How a read may wait for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Only from the page cache (`preadv2` with `RWF_NOWAIT`): data that would have to
    /// come from the disk fails with [`EngineError::NotCached`] instead of blocking.
    /// For async workers, which must never wait on a disk.
    Cached,
    /// Waits for the disk if it must. For the blocking pool and the writer thread.
    Wait,
}

/// Reads and verifies the record at `offset`. The returned buffer starts at the record
/// header; decode it with [`codec::read_record`].
pub fn read_record_at(file: &File, path: &Path, offset: u64) -> Result<Bytes, EngineError> {
    read_record(file, path, offset, ReadMode::Wait)
}

/// [`read_record_at`], with a choice of waiting; see [`ReadMode`].
pub fn read_record(
    file: &File,
    path: &Path,
    offset: u64,
    mode: ReadMode,
) -> Result<Bytes, EngineError> {
    let corrupt = |reason: &str| EngineError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.to_owned(),
    };
    let mut buf = vec![0u8; FIRST_READ_BYTES];
    let n = read_at_most(file, &mut buf, offset, mode).map_err(|e| read_error(path, e))?;
    buf.truncate(n);
    let len = codec::record_len(&buf).map_err(corrupt)?;
    let total = RECORD_HEADER_LEN + len;
    if buf.len() < total {
        let have = buf.len();
        buf.resize(total, 0);
        let n = read_at_most(file, &mut buf[have..], offset + have as u64, mode)
            .map_err(|e| read_error(path, e))?;
        if have + n < total {
            return Err(corrupt("record extends past the end of the segment"));
        }
    }
    buf.truncate(total);
    codec::read_record(&buf).map_err(corrupt)?;
    Ok(Bytes::from(buf))
}

/// Reads `len` bytes at `offset`: a stretch of records, for a log read. Reading past the
/// end of what was written is corruption (the index promised records there).
pub fn read_span(
    file: &File,
    path: &Path,
    offset: u64,
    len: u64,
    mode: ReadMode,
) -> Result<Bytes, EngineError> {
    let mut buf = vec![0u8; len as usize];
    let n = read_at_most(file, &mut buf, offset, mode).map_err(|e| read_error(path, e))?;
    if n < buf.len() {
        return Err(EngineError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: format!("the index points at {len} bytes past the end of the segment"),
        });
    }
    Ok(Bytes::from(buf))
}

fn read_error(path: &Path, e: std::io::Error) -> EngineError {
    if e.kind() == std::io::ErrorKind::WouldBlock {
        EngineError::NotCached
    } else {
        EngineError::io(path, e)
    }
}

/// Fills `buf` from `offset` until it is full or the file ends; returns the bytes read.
fn read_at_most(
    file: &File,
    buf: &mut [u8],
    offset: u64,
    mode: ReadMode,
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let at = offset + filled as u64;
        let got = match mode {
            ReadMode::Wait => file.read_at(&mut buf[filled..], at),
            ReadMode::Cached => read_cached(file, &mut buf[filled..], at),
        };
        match got {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// One `preadv2(RWF_NOWAIT)`: what the page cache holds at `offset`, or `WouldBlock`.
fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over `buf`, which is valid for writes of its length for the
    // whole call; the descriptor is owned by `file`, which outlives the call.
    let n = unsafe {
        libc::preadv2(
            file.as_raw_fd(),
            &iov,
            1,
            offset as libc::off_t,
            libc::RWF_NOWAIT,
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        // A kernel or file system without RWF_NOWAIT for buffered reads says so with
        // EOPNOTSUPP: treat it like a miss, so the read goes to the blocking pool.
        if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        return Err(e);
    }
    Ok(n as usize)
}
