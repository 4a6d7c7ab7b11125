//! Reads a byte range of a file by position (`read_at`), without a shared cursor, so many threads
//! can read ranges of one open file at once (zip entries, spooled image files).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

pub struct FileRange<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl<'f> FileRange<'f> {
    /// Bytes `start..start + len` of `file`.
    pub fn new(file: &'f File, start: u64, len: u64) -> Self {
        FileRange {
            file,
            pos: start,
            // Callers check ranges against the file; saturating keeps a bad one a short read.
            end: start.saturating_add(len),
        }
    }
}

impl Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ends before the range it should hold",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}
