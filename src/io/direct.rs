//! [`DirectWriter`]: files written past the page cache (`O_DIRECT`) where the file system
//! allows, for the state cache.

use std::fs::File;
use std::io::{Seek, Write};
use std::path::Path;

/// Creates `path` for writing, with `O_DIRECT` if `direct` (on Linux, where the file system
/// takes it; else without).
pub(super) fn create_file(path: &Path, direct: bool) -> std::io::Result<File> {
    #[cfg(target_os = "linux")]
    if direct {
        use std::os::unix::fs::OpenOptionsExt;
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(path);
        match opened {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            other => return other,
        }
    }
    let _ = direct;
    File::create(path)
}

/// The status flags of `file` (`F_GETFL`).
#[cfg(target_os = "linux")]
fn status_flags(file: &File) -> std::io::Result<libc::c_int> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: F_GETFL only reads the status flags of a descriptor `file` owns.
    match unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) } {
        -1 => Err(std::io::Error::last_os_error()),
        flags => Ok(flags),
    }
}

/// Whether `file` was opened with `O_DIRECT`.
fn is_direct(file: &File) -> bool {
    #[cfg(target_os = "linux")]
    return status_flags(file).is_ok_and(|f| f & libc::O_DIRECT != 0);
    #[cfg(not(target_os = "linux"))]
    return {
        let _ = file;
        false
    };
}

/// Clears `O_DIRECT` from `file`'s flags, for the tail of a file that is not a whole block.
#[cfg(target_os = "linux")]
fn clear_direct(file: &File) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let flags = status_flags(file)? & !libc::O_DIRECT;
    // SAFETY: F_SETFL sets the status flags of a descriptor `file` owns; without O_DIRECT
    // later writes only go through the page cache.
    match unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags) } {
        -1 => Err(std::io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// Without `O_DIRECT` (off Linux) a file never has it.
#[cfg(not(target_os = "linux"))]
fn clear_direct(_: &File) -> std::io::Result<()> {
    Ok(())
}

/// A buffered writer that hands whole, aligned blocks to a file opened with `O_DIRECT`, so
/// they go to the disk without passing through the page cache, and writes the last partial
/// block through the page cache in [`DirectWriter::finish`]. On a file opened without
/// `O_DIRECT` it is a plain buffered writer.
///
/// For the state cache: on a 10× day its 483 MB took ~2 CPU-s to write, half of it the
/// kernel copying into fresh page-cache pages (which a virtual machine's host first has to back
/// with memory) beside the stages; the files are read again only on a rerun.
pub struct DirectWriter {
    file: File,
    direct: bool,
    /// `DIRECT_BLOCK` bytes and room to start them at an aligned address.
    buf: Vec<u8>,
    /// Where the aligned block starts in `buf`.
    start: usize,
    /// Bytes of the block filled.
    len: usize,
}

/// The size of the blocks a [`DirectWriter`] writes: a multiple of any device's block size.
const DIRECT_BLOCK: usize = 1 << 20;

/// The alignment `O_DIRECT` needs of a block's address (the largest logical block size).
const DIRECT_ALIGN: usize = 4096;

impl DirectWriter {
    /// A writer of `file` (with whole blocks past the page cache if it was opened with
    /// `O_DIRECT`).
    pub fn new(file: File) -> Self {
        let buf = vec![0u8; DIRECT_BLOCK + DIRECT_ALIGN];
        let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
        Self {
            direct: is_direct(&file),
            file,
            buf,
            start,
            len: 0,
        }
    }

    /// Writes what is buffered: a whole block as it is; a partial one (the file's end) through
    /// the page cache.
    fn write_out(&mut self) -> std::io::Result<()> {
        if self.len < DIRECT_BLOCK && self.direct {
            clear_direct(&self.file)?;
            self.direct = false;
        }
        let (start, len) = (self.start, self.len);
        let at = self.file.stream_position()?;
        match self.file.write_all(&self.buf[start..start + len]) {
            // A file system that opened the file with O_DIRECT may still refuse its writes
            // (a block size above DIRECT_ALIGN): the page cache takes them, the block again
            // from where it started.
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                clear_direct(&self.file)?;
                self.direct = false;
                self.file.seek(std::io::SeekFrom::Start(at))?;
                self.file.write_all(&self.buf[start..start + len])?;
            }
            other => other?,
        }
        self.len = 0;
        Ok(())
    }

    /// Writes the rest and returns the file (not yet synced).
    pub fn finish(mut self) -> std::io::Result<File> {
        self.write_out()?;
        Ok(self.file)
    }
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(DIRECT_BLOCK - self.len);
        let at = self.start + self.len;
        self.buf[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == DIRECT_BLOCK {
            self.write_out()?;
        }
        Ok(n)
    }

    /// Writes nothing: only whole blocks can go past the page cache, and [`Self::finish`]
    /// writes the last one.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_writes_give_the_bytes_written_whatever_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let mut seed = 7u64;
        for n in [
            0,
            1,
            4095,
            4097,
            DIRECT_BLOCK - 1,
            DIRECT_BLOCK,
            3 * DIRECT_BLOCK + 123,
        ] {
            let bytes: Vec<u8> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 56) as u8
                })
                .collect();
            let path = dir.path().join(format!("f{n}"));
            // In pieces of uneven sizes, as an IPC writer hands them over.
            crate::io::TempFile::write_direct_in(dir.path(), &path, |w| {
                for piece in bytes.chunks(70_001) {
                    w.write_all(piece)?;
                    w.flush()?;
                }
                Ok(())
            })
            .unwrap()
            .commit()
            .unwrap();
            assert!(std::fs::read(&path).unwrap() == bytes, "{n} bytes");
        }
    }

    #[test]
    fn a_direct_writer_of_a_file_without_o_direct_writes_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = DirectWriter::new(File::create(&path).unwrap());
        assert!(!w.direct);
        let bytes = vec![5u8; DIRECT_BLOCK + 10];
        w.write_all(&bytes).unwrap();
        drop(w.finish().unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
}
