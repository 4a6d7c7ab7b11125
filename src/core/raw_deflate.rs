//! Raw deflate compression into a growing buffer, ending each piece the way what follows needs it:
//! open (more input comes), byte-aligned and non-final (other deflate data follows), or final.

use flate2::{Compress, FlushCompress, Status};

/// Compresses `input` into `out`, growing it as needed. With `Sync` the output ends byte-aligned
/// and non-final; with `Finish` it ends with the final block.
pub fn deflate_into(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
    loop {
        if out.capacity() - out.len() < 1024 + input.len() / 2 {
            out.reserve(64 * 1024 + input.len() / 2);
        }
        let before = c.total_in();
        let status = c
            .compress_vec(input, out, flush)
            .expect("deflate of in-memory data cannot fail");
        input = &input[(c.total_in() - before) as usize..];
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // Done when all input is taken and the compressor did not stop for lack of room.
            _ => input.is_empty() && out.len() < out.capacity(),
        };
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::Compression;

    use super::*;

    #[test]
    fn sync_pieces_then_a_final_one_make_one_stream() {
        let a: Vec<u8> = (0..300_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 997) as u8)
            .collect();
        let mut c = Compress::new(Compression::new(6), false);
        let mut out = Vec::new();
        deflate_into(&mut c, &a, &mut out, FlushCompress::Sync);
        deflate_into(&mut c, b"tail", &mut out, FlushCompress::Finish);
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back.len(), a.len() + 4);
        assert!(back[..a.len()] == a[..] && &back[a.len()..] == b"tail");
    }
}
