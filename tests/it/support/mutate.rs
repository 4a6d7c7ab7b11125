//! Seeded mutations of real inputs for the fuzz tests: blind byte edits, and edits that know where
//! a zip's headers, a tar's header fields and a JSON document's values are — so that cases get past
//! the first signature check and reach the code behind it. The same seed gives the same cases.

use serde_json::Value;

/// SplitMix64: small, seedable, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that sit on the edges integer fields are read with.
const EDGES: [u64; 10] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0xffff_fffe,
    0x1_0000,
];

/// One to four blind edits: bit flips, edge bytes, edge integers, cuts, repeats, inserts.
pub fn bytes(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        if data.is_empty() {
            data.push(rng.next() as u8);
            continue;
        }
        let at = rng.below(data.len());
        match rng.below(7) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = *rng.pick(&[0u8, 0xff, 0x7f, 0x80, b'/', b'.']),
            2 => put_le(data, at, *rng.pick(&EDGES), *rng.pick(&[2usize, 4, 8])),
            3 => data.truncate(at),
            4 => {
                let len = rng.below((data.len() - at).min(4096)) + 1;
                let chunk = data[at..at + len].to_vec();
                let to = rng.below(data.len());
                data.splice(to..to, chunk);
            }
            5 => {
                let len = rng.below((data.len() - at).min(4096)) + 1;
                data.drain(at..at + len);
            }
            _ => {
                let extra: Vec<u8> = (0..rng.below(64) + 1).map(|_| rng.next() as u8).collect();
                data.splice(at..at, extra);
            }
        }
    }
}

fn put_le(data: &mut [u8], at: usize, value: u64, width: usize) {
    for i in 0..width {
        if let Some(b) = data.get_mut(at + i) {
            *b = (value >> (8 * i)) as u8;
        }
    }
}

fn find_all(data: &[u8], needle: &[u8]) -> Vec<usize> {
    data.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// A zip record's signature and the (offset, width) of the fields a reader trusts.
type Record = (&'static [u8], &'static [(usize, usize)]);

/// Edits one field of a zip's local header, central directory entry or end record, or one byte
/// of an entry's name (to `/`, `.`, `\`, NUL or a path that climbs).
pub fn zip_fields(rng: &mut Rng, data: &mut Vec<u8>) {
    let records: [Record; 3] = [
        (
            b"PK\x03\x04",
            &[(6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)],
        ),
        (
            b"PK\x01\x02",
            &[
                (4, 2),
                (8, 2),
                (10, 2),
                (16, 4),
                (20, 4),
                (24, 4),
                (28, 2),
                (30, 2),
                (32, 2),
                (38, 4),
                (42, 4),
            ],
        ),
        (b"PK\x05\x06", &[(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)]),
    ];
    let (signature, fields) = *rng.pick(&records);
    let starts = find_all(data, signature);
    if starts.is_empty() {
        return bytes(rng, data);
    }
    let start = *rng.pick(&starts);
    if signature == b"PK\x01\x02" && rng.below(3) == 0 {
        return zip_name(rng, data, start);
    }
    let (offset, width) = *rng.pick(fields);
    let value = match rng.below(3) {
        0 => *rng.pick(&EDGES),
        1 => rng.next(),
        _ => read_le(data, start + offset, width).wrapping_add(rng.below(3) as u64 + 1),
    };
    put_le(data, start + offset, value, width);
}

fn zip_name(rng: &mut Rng, data: &mut [u8], central: usize) {
    let len = read_le(data, central + 28, 2) as usize;
    let name = central + 46;
    if len == 0 || name + len > data.len() {
        return;
    }
    let at = name + rng.below(len);
    data[at] = *rng.pick(&[b'/', b'.', b'\\', 0, b':']);
    if rng.below(4) == 0 && len >= 3 {
        data[name..name + 3].copy_from_slice(b"../");
    }
}

fn read_le(data: &[u8], at: usize, width: usize) -> u64 {
    (0..width)
        .map(|i| u64::from(*data.get(at + i).unwrap_or(&0)) << (8 * i))
        .sum()
}

/// Edits one header of a tar stream (name, mode, size, type, link name), usually with a valid
/// checksum after, so that readers get past the checksum to the field.
pub fn tar_header(rng: &mut Rng, tar: &mut Vec<u8>) {
    let headers: Vec<usize> = (0..tar.len() / 512)
        .map(|i| i * 512)
        .filter(|&at| tar.get(at + 257..at + 262) == Some(b"ustar".as_slice()))
        .collect();
    if headers.is_empty() {
        return bytes(rng, tar);
    }
    let at = *rng.pick(&headers);
    let names: [&[u8]; 9] = [
        b"opt/.wh..wh..opq",
        b"opt/.wh..",
        b"opt/.wh...",
        b"opt/.wh.absent-file",
        b"../../etc/passwd",
        b"/opt/abs",
        b"opt/a/../../..",
        b"opt/\\win\\path",
        b"",
    ];
    let modes: [&[u8]; 4] = [b"7777777", b"0000000", b"999", b"-1"];
    let sizes: [&[u8]; 4] = [b"77777777777", b"00000000000", b"00000001000", b"zzz"];
    let links: [&[u8]; 4] = [b"../../../../outside", b"/etc", b"opt", b"opt/missing"];
    match rng.below(6) {
        0 => write_field(tar, at, 100, rng.pick::<&[u8]>(&names)),
        1 => write_field(tar, at + 100, 8, rng.pick::<&[u8]>(&modes)),
        2 => write_field(tar, at + 124, 12, rng.pick::<&[u8]>(&sizes)),
        3 => tar[at + 156] = *rng.pick(b"0125673LKxgSV\0"),
        4 => write_field(tar, at + 157, 100, rng.pick::<&[u8]>(&links)),
        _ => bytes(rng, tar),
    }
    if rng.below(10) != 0 && at + 512 <= tar.len() {
        fix_checksum(&mut tar[at..at + 512]);
    }
}

fn write_field(tar: &mut [u8], at: usize, width: usize, value: &[u8]) {
    if at + width > tar.len() {
        return;
    }
    let field = &mut tar[at..at + width];
    field.fill(0);
    let n = value.len().min(width);
    field[..n].copy_from_slice(&value[..n]);
}

fn fix_checksum(header: &mut [u8]) {
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
}

/// Replaces one value somewhere in a JSON document with one of another kind, an edge number, a
/// digest that is not one, or a path that climbs out.
pub fn json_value(rng: &mut Rng, doc: &mut Value) {
    let replacements = [
        Value::Null,
        Value::from(-1),
        Value::from(u64::MAX),
        Value::from(1u64 << 40),
        Value::from(""),
        Value::from("sha256:../../../../etc/passwd"),
        Value::from("sha256:0000"),
        Value::from("application/vnd.oci.image.layer.v1.tar+zstd"),
        Value::from("../outside"),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!([{"digest": "sha256:x"}]),
    ];
    let mut slots = Vec::new();
    collect_paths(doc, &mut Vec::new(), &mut slots);
    if slots.is_empty() {
        *doc = rng.pick(&replacements).clone();
        return;
    }
    let path = rng.pick(&slots).clone();
    let mut at = &mut *doc;
    for step in &path {
        at = match step {
            Step::Key(k) => &mut at[k.as_str()],
            Step::Index(i) => &mut at[*i],
        };
    }
    *at = rng.pick(&replacements).clone();
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn collect_paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                here.push(Step::Key(k.clone()));
                collect_paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                here.push(Step::Index(i));
                collect_paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}
