//! Re-uses a zip entry's deflate stream inside a layer's gzip member instead of recompressing it
//! (zlib's gzjoin technique): the stream is inflated once — for the size and CRC checks and the
//! diff_id — while its compressed bytes are copied with the final block's BFINAL bit cleared and the
//! end byte-aligned by an empty stored block, so that more deflate data can follow it.

use std::io::{self, Read};

use libz_rs_sys as z;

/// Compressed bytes read per refill, and the most inflated bytes handed over at a time.
const IN_CHUNK: usize = 64 * 1024;
const OUT_CHUNK: usize = 128 * 1024;

/// An empty, non-final stored block's LEN and NLEN, once its three header bits are byte-aligned.
const EMPTY_STORED_LEN: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Where spliced data goes: inflated bytes (for hashing and checks) and the rewritten deflate bytes.
pub trait SpliceSink {
    fn plain(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn deflate(&mut self, bytes: &[u8]) -> io::Result<()>;
}

#[derive(Debug, thiserror::Error)]
pub enum SpliceError {
    #[error("invalid deflate data: {0}")]
    Corrupt(String),
    #[error("the deflate data ends before its last block")]
    Truncated,
    #[error("inflates to more than its declared {0} bytes")]
    TooLong(u64),
    #[error("cannot read the compressed data: {0}")]
    Read(io::Error),
    #[error("{0}")]
    Sink(io::Error),
}

/// A raw-deflate inflater from zlib-rs's C API, whose `data_type` reports block boundaries.
pub struct RawInflater {
    // Boxed: zlib keeps a pointer back to the stream, so it must not move after init.
    strm: Box<z::z_stream>,
}

// SAFETY: the stream's state is owned by this value alone and never shared between threads.
unsafe impl Send for RawInflater {}

struct Step {
    consumed: usize,
    produced: usize,
    code: i32,
    data_type: i32,
}

impl RawInflater {
    pub fn new() -> Self {
        let mut strm = Box::new(z::z_stream::default());
        // SAFETY: `strm` is a default-initialised stream with the library's own allocator, and
        // `zlibVersion()` is the version string of the very library we call.
        let code = unsafe {
            z::inflateInit2_(
                &mut *strm,
                -15,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as i32,
            )
        };
        assert_eq!(code, z::Z_OK, "inflateInit2 of a raw deflate stream");
        RawInflater { strm }
    }

    fn reset(&mut self) {
        // SAFETY: the stream was initialised in `new` and has not been ended.
        let code = unsafe { z::inflateReset(&mut *self.strm) };
        debug_assert_eq!(code, z::Z_OK);
    }

    /// One `inflate(Z_BLOCK)` call: it returns at the latest after each block's end-of-block code.
    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Step {
        let avail_in = input.len().min(u32::MAX as usize) as u32;
        let avail_out = output.len().min(u32::MAX as usize) as u32;
        self.strm.next_in = input.as_ptr();
        self.strm.avail_in = avail_in;
        self.strm.next_out = output.as_mut_ptr();
        self.strm.avail_out = avail_out;
        // SAFETY: next_in/avail_in and next_out/avail_out describe live slices for this call only.
        let code = unsafe { z::inflate(&mut *self.strm, z::Z_BLOCK) };
        let step = Step {
            consumed: (avail_in - self.strm.avail_in) as usize,
            produced: (avail_out - self.strm.avail_out) as usize,
            code,
            data_type: self.strm.data_type,
        };
        self.strm.next_in = std::ptr::null();
        self.strm.avail_in = 0;
        self.strm.next_out = std::ptr::null_mut();
        self.strm.avail_out = 0;
        step
    }

    fn message(&self) -> String {
        if self.strm.msg.is_null() {
            return "inflate failed".into();
        }
        // SAFETY: zlib-rs sets `msg` to a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(self.strm.msg) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Default for RawInflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RawInflater {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, ended exactly once here.
        unsafe { z::inflateEnd(&mut *self.strm) };
    }
}

/// Compressed bytes read but not yet handed to the sink, with the absolute offset of the first.
struct Pending {
    bytes: Vec<u8>,
    start: u64,
    /// The bit (absolute) of the final block's BFINAL flag, once known; cleared as it is emitted.
    final_flag: Option<u64>,
}

impl Pending {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    fn bit(&self, at: u64) -> Option<bool> {
        let i = (at / 8).checked_sub(self.start)? as usize;
        self.bytes.get(i).map(|b| (b >> (at % 8)) & 1 == 1)
    }

    /// Hands over every byte before absolute offset `upto`, with the final block's flag cleared.
    fn emit(&mut self, upto: u64, sink: &mut dyn SpliceSink) -> io::Result<()> {
        let n = (upto.saturating_sub(self.start) as usize).min(self.bytes.len());
        if n == 0 {
            return Ok(());
        }
        if let Some(flag) = self.final_flag
            && flag / 8 < self.start + n as u64
        {
            let i = (flag / 8 - self.start) as usize;
            self.bytes[i] &= !(1u8 << (flag % 8));
            self.final_flag = None;
        }
        sink.deflate(&self.bytes[..n])?;
        self.bytes.drain(..n);
        self.start += n as u64;
        Ok(())
    }
}

/// Splices one raw deflate stream read from `input`: the sink receives its inflated bytes and its
/// compressed bytes rewritten to end non-final and byte-aligned. Stops with an error as soon as the
/// stream inflates past `max_plain` bytes. Returns the number of inflated bytes. Bytes after the
/// stream's end, if `input` has any, are ignored.
pub fn splice(
    inflater: &mut RawInflater,
    input: &mut dyn Read,
    max_plain: u64,
    sink: &mut dyn SpliceSink,
) -> Result<u64, SpliceError> {
    inflater.reset();
    let mut pending = Pending {
        bytes: Vec::with_capacity(IN_CHUNK + 16),
        start: 0,
        final_flag: None,
    };
    // Index into `pending.bytes` of the first byte not yet given to the inflater.
    let mut fed = 0usize;
    let mut out = vec![0u8; OUT_CHUNK];
    let mut plain: u64 = 0;
    // A block starts at bit 0; a block start whose byte has not been read yet waits here.
    let mut unresolved: Option<u64> = Some(0);
    let mut last_block_start: Option<u64> = None;
    let end_bit: u64;
    loop {
        if fed == pending.bytes.len() {
            // Every later block starts at or after the inflater's position, which is at most 63
            // buffered bits (8 bytes) before the end of what it was given: the bytes before that
            // will not change again.
            let settled = pending.end().saturating_sub(8);
            pending.emit(settled, sink).map_err(SpliceError::Sink)?;
            fed = pending.bytes.len();
            let old = pending.bytes.len();
            pending.bytes.resize(old + IN_CHUNK, 0);
            let n = read_some(input, &mut pending.bytes[old..]).map_err(SpliceError::Read)?;
            pending.bytes.truncate(old + n);
            if n == 0 {
                return Err(SpliceError::Truncated);
            }
            if let Some(at) = unresolved
                && let Some(is_final) = pending.bit(at)
            {
                if is_final {
                    pending.final_flag = Some(at);
                }
                unresolved = None;
            }
        }
        let step = inflater.step(&pending.bytes[fed..], &mut out);
        fed += step.consumed;
        if step.produced > 0 {
            plain += step.produced as u64;
            if plain > max_plain {
                return Err(SpliceError::TooLong(max_plain));
            }
            sink.plain(&out[..step.produced])
                .map_err(SpliceError::Sink)?;
        }
        match step.code {
            z::Z_OK | z::Z_BUF_ERROR => {}
            z::Z_STREAM_END => {
                // With Z_BLOCK, the end of the last block is reported (below) before the stream end.
                return Err(SpliceError::Corrupt(
                    "the end of the last block was not reported".into(),
                ));
            }
            _ => return Err(SpliceError::Corrupt(inflater.message())),
        }
        if step.data_type & 128 != 0 {
            // Stopped at a block boundary; the bits still buffered inside the inflater are unread.
            let buffered = (step.data_type & 63) as u64;
            let at = (pending.start + fed as u64) * 8 - buffered;
            if step.data_type & 64 != 0 {
                end_bit = at;
                break;
            }
            if last_block_start != Some(at) {
                last_block_start = Some(at);
                match pending.bit(at) {
                    Some(true) => pending.final_flag = Some(at),
                    Some(false) => {}
                    None => unresolved = Some(at),
                }
            }
        }
    }
    finish(&mut pending, end_bit, sink).map_err(SpliceError::Sink)?;
    Ok(plain)
}

/// Emits the stream up to `end_bit` and byte-aligns it with an empty stored block.
fn finish(pending: &mut Pending, end_bit: u64, sink: &mut dyn SpliceSink) -> io::Result<()> {
    let whole = end_bit / 8;
    pending.emit(whole, sink)?;
    let used = (end_bit % 8) as u32;
    if used == 0 {
        return Ok(());
    }
    let mut last = pending.bytes[(whole - pending.start) as usize];
    if let Some(flag) = pending.final_flag
        && flag / 8 == whole
    {
        last &= !(1u8 << (flag % 8));
    }
    // The stored block's three header bits are zero, so they only need room: past the used bits,
    // then padding to the byte boundary, then LEN and NLEN.
    let mut tail = Vec::with_capacity(6);
    tail.push(last & ((1u8 << used) - 1));
    if 8 - used < 3 {
        tail.push(0);
    }
    tail.extend_from_slice(&EMPTY_STORED_LEN);
    sink.deflate(&tail)
}

fn read_some(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::DeflateEncoder;
    use flate2::{Compress, Compression, FlushCompress};
    use proptest::prelude::*;

    use super::*;

    #[derive(Default)]
    struct Collect {
        plain: Vec<u8>,
        deflate: Vec<u8>,
    }

    impl SpliceSink for Collect {
        fn plain(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.plain.extend_from_slice(bytes);
            Ok(())
        }
        fn deflate(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.deflate.extend_from_slice(bytes);
            Ok(())
        }
    }

    fn deflate(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Reads one byte at a time, so block boundaries fall at every possible refill position.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    /// A gzip member made of the spliced streams, each followed by `between` compressed fresh.
    fn gzip_of(parts: &[(Vec<u8>, u32)], between: &[u8], trickle: bool) -> (Vec<u8>, Vec<u8>) {
        let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        let mut plain = Vec::new();
        let mut inflater = RawInflater::new();
        let mut fresh = Compress::new(Compression::new(6), false);
        for (data, level) in parts {
            let stream = deflate(data, *level);
            let mut sink = Collect::default();
            let n = if trickle {
                splice(&mut inflater, &mut Trickle(&stream), u64::MAX, &mut sink)
            } else {
                splice(&mut inflater, &mut &stream[..], u64::MAX, &mut sink)
            }
            .unwrap();
            assert_eq!(n as usize, data.len());
            assert_eq!(&sink.plain, data);
            gz.extend_from_slice(&sink.deflate);
            plain.extend_from_slice(data);
            fresh.reset();
            let mut out = Vec::with_capacity(between.len() + 1024);
            fresh
                .compress_vec(between, &mut out, FlushCompress::Sync)
                .unwrap();
            gz.extend_from_slice(&out);
            plain.extend_from_slice(between);
        }
        gz.extend_from_slice(&[0x03, 0x00]);
        gz.extend_from_slice(&crc32fast::hash(&plain).to_le_bytes());
        gz.extend_from_slice(&(plain.len() as u32).to_le_bytes());
        (gz, plain)
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn text(len: usize, seed: u64) -> Vec<u8> {
        let words: [&[u8]; 6] = [
            b"import ",
            b"numpy ",
            b"def ",
            b"\n    ",
            b"return x",
            b"(self)",
        ];
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if x >> 60 == 0 {
                out.push((x >> 32) as u8);
            } else {
                out.extend_from_slice(words[(x >> 33) as usize % words.len()]);
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn spliced_streams_of_every_level_read_back() {
        for level in 0..=9 {
            let parts: Vec<_> = [0usize, 1, 2, 17, 1000, 70_000, 300_000]
                .iter()
                .enumerate()
                .map(|(i, &len)| (text(len, level as u64 * 10 + i as u64), level))
                .collect();
            let (gz, plain) = gzip_of(&parts, b"a tar header between entries", false);
            assert_eq!(gunzip(&gz), plain, "level {level}");
        }
    }

    #[test]
    fn every_end_bit_offset_and_refill_position_works() {
        // Sizes 0..200 make streams end at every bit offset within their last byte; trickled input
        // puts a refill at every possible point, including right at a block's first bit.
        let parts: Vec<_> = (0..200).map(|n| (text(n, n as u64), 6)).collect();
        let (gz, plain) = gzip_of(&parts, b"", true);
        assert_eq!(gunzip(&gz), plain);
        let (gz2, _) = gzip_of(&parts, b"", false);
        assert_eq!(
            gz, gz2,
            "the output must not depend on how the input is read"
        );
    }

    #[test]
    fn the_final_flag_is_cleared_and_the_end_is_aligned() {
        // An empty fixed-Huffman final block (03 00) becomes a non-final one plus an empty stored block.
        let mut sink = Collect::default();
        let mut inflater = RawInflater::new();
        splice(&mut inflater, &mut &[0x03u8, 0x00][..], 0, &mut sink).unwrap();
        assert_eq!(sink.deflate, [0x02, 0x00, 0x00, 0x00, 0xff, 0xff]);
        assert!(sink.plain.is_empty());
    }

    #[test]
    fn corrupt_truncated_and_oversized_streams_are_refused() {
        let data = text(200_000, 7);
        let stream = deflate(&data, 6);
        let mut inflater = RawInflater::new();
        let mut sink = Collect::default();
        let cut = &stream[..stream.len() / 2];
        assert!(matches!(
            splice(&mut inflater, &mut &cut[..], u64::MAX, &mut sink),
            Err(SpliceError::Truncated)
        ));
        let mut sink = Collect::default();
        assert!(matches!(
            splice(&mut inflater, &mut &stream[..], 1000, &mut sink),
            Err(SpliceError::TooLong(1000))
        ));
        assert!(
            sink.plain.len() < 200_000,
            "stops early, not after inflating it all"
        );
        let mut bad = stream.clone();
        bad[0] |= 0b110; // block type 3 is reserved
        let mut sink = Collect::default();
        assert!(matches!(
            splice(&mut inflater, &mut &bad[..], u64::MAX, &mut sink),
            Err(SpliceError::Corrupt(_))
        ));
        // The inflater is reusable after an error.
        let mut sink = Collect::default();
        splice(&mut inflater, &mut &stream[..], u64::MAX, &mut sink).unwrap();
        assert_eq!(sink.plain, data);
    }

    #[test]
    fn trailing_bytes_after_the_stream_are_ignored() {
        let spliced = |stream: &[u8]| {
            let mut sink = Collect::default();
            splice(
                &mut RawInflater::new(),
                &mut &stream[..],
                u64::MAX,
                &mut sink,
            )
            .unwrap();
            sink.deflate
        };
        let mut stream = deflate(&text(5000, 3), 9);
        let clean = spliced(&stream);
        stream.extend_from_slice(b"junk after the end");
        assert_eq!(spliced(&stream), clean);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_files_splice_into_a_valid_member(
            files in proptest::collection::vec((0usize..40_000, 0u32..=9, any::<u64>(), any::<bool>()), 1..8),
        ) {
            let parts: Vec<_> = files
                .iter()
                .map(|&(len, level, seed, random)| {
                    let data = if random {
                        let mut x = seed | 1;
                        (0..len).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 }).collect()
                    } else {
                        text(len, seed)
                    };
                    (data, level)
                })
                .collect();
            let (gz, plain) = gzip_of(&parts, b"between", false);
            prop_assert_eq!(gunzip(&gz), plain);
        }
    }
}
