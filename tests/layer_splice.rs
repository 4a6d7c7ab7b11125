//! Proves that building a layer's gzip member by splicing the zip entries' own deflate streams
//! (`layerport image`, the default) gives a valid gzip file that every decoder we can reach accepts
//! (gzip, Python, flate2, Go via skopeo and umoci), whose uncompressed tar is byte-identical to what
//! `--recompress` makes, whose bytes do not depend on `--threads`, and that damaged deflate data or
//! lying size headers are still refused, naming the entry and leaving nothing behind.
//!
//! The zips are generated here with Python's zipfile (deterministic data, every deflate level, stored
//! entries, zip64, flushes that put block boundaries anywhere), Info-ZIP `zip` and the zip crate, so
//! the spliced streams come from three different deflate encoders. The Python helper also checks
//! that the inputs have what they are meant to test (streams ending at every bit position, zip64
//! fields, damage that zlib classifies as intended), so a tamer input cannot pass unnoticed.

mod support;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::images::noise;
use support::tools::*;
use tempfile::TempDir;

const TAG: &str = "t";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Makes and examines the test zips. Subcommands: `make` (JSON list of zip specs on stdin),
/// `files` (writes a spec's files to a directory, for Info-ZIP), `info ZIP` (where each entry's
/// headers and data are, and how many bits of its deflate stream's last byte are used),
/// `classify ZIP NAME` (what an inflater makes of one entry's data against its headers) and
/// `gzcheck FILE...` (decompresses each file with Python's `gzip` and with zlib).
const PY: &str = r#"
import gzip, hashlib, json, os, random, struct, sys, zipfile, zlib

DATE = (2024, 1, 2, 3, 4, 6)
WORDS = ("def class import return self lambda layer python package module value None True False "
         "for while if else elif try except finally with as from yield async await print data json "
         "http request response handler event context os sys path").split()


def make_data(kind, size, seed):
    r = random.Random(seed)
    if size == 0:
        return b""
    if kind == "text":
        out, n = [], 0
        while n < size:
            s = "    " * r.randint(0, 3) + " ".join(r.choices(WORDS, k=r.randint(2, 12)))
            s += ":\n" if r.random() < 0.2 else "\n"
            out.append(s)
            n += len(s)
        return "".join(out).encode()[:size]
    if kind == "random":
        return r.randbytes(size)
    if kind == "zeros":
        return bytes(size)
    if kind == "runs":
        out = bytearray()
        while len(out) < size:
            out += bytes([r.randrange(256)]) * r.randint(1, 600)
        return bytes(out[:size])
    if kind == "mixed":
        out = bytearray()
        while len(out) < size:
            sub = r.choice(["text", "random", "zeros", "runs"])
            out += make_data(sub, r.randint(1, 20000), r.randrange(1 << 30))
        return bytes(out[:size])
    raise SystemExit("unknown kind " + kind)


def seed_of(e):
    return e["seed"] if "seed" in e else zlib.crc32(e["name"].encode())


FLUSH = {"sync": zlib.Z_SYNC_FLUSH, "full": zlib.Z_FULL_FLUSH,
         "partial": zlib.Z_PARTIAL_FLUSH, "block": zlib.Z_BLOCK}


class Compressor:
    """zipfile's raw deflate compressor, optionally flushing after every write."""

    def __init__(self, level, mode):
        self.c = zlib.compressobj(level, zlib.DEFLATED, -15)
        self.mode = mode

    def compress(self, data):
        out = self.c.compress(data)
        if self.mode in FLUSH:
            out += self.c.flush(FLUSH[self.mode])
        return out

    def flush(self):
        out = self.c.flush(zlib.Z_SYNC_FLUSH) if self.mode == "sync_end" else b""
        return out + self.c.flush(zlib.Z_FINISH)


def make_zip(spec):
    saved = (zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT, zipfile._get_compressor)
    try:
        if spec.get("zip64_limits"):
            # Every size and offset over 1000 goes into zip64 extra fields, and the archive
            # gets a zip64 end of central directory record.
            zipfile.ZIP64_LIMIT = 1000
            zipfile.ZIP_FILECOUNT_LIMIT = 2
        with zipfile.ZipFile(spec["out"], "w") as zf:
            for e in spec["entries"]:
                zi = zipfile.ZipInfo(e["name"], DATE)
                zi.create_system = 3
                if e["name"].endswith("/"):
                    zi.external_attr = ((0o040000 | 0o755) << 16) | 0x10
                    zf.writestr(zi, b"")
                    continue
                zi.external_attr = (0o100000 | e.get("mode", 0o644)) << 16
                data = make_data(e["kind"], e["size"], seed_of(e))
                if e["method"] == "deflate":
                    zi.compress_type = zipfile.ZIP_DEFLATED
                    level, mode = e["level"], e.get("flush")
                    zipfile._get_compressor = lambda _t, _l: Compressor(level, mode)
                else:
                    zi.compress_type = zipfile.ZIP_STORED
                    zipfile._get_compressor = saved[2]
                chunk = e.get("chunk") or max(len(data), 1)
                with zf.open(zi, "w", force_zip64=e.get("zip64", False)) as f:
                    for i in range(0, len(data), chunk):
                        f.write(data[i:i + chunk])
                zipfile._get_compressor = saved[2]
    finally:
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT, zipfile._get_compressor = saved
    with zipfile.ZipFile(spec["out"]) as zf:
        bad = zf.testzip()
        if bad is not None:
            raise SystemExit("generated zip fails its own test at " + bad)
        for e in spec["entries"]:
            if not e["name"].endswith("/"):
                if zf.read(e["name"]) != make_data(e["kind"], e["size"], seed_of(e)):
                    raise SystemExit("generated zip reads back wrong at " + e["name"])


def end_bits(raw, plain):
    """How many bits of the deflate stream's last byte are used (1..8): the unused high bits
    are padding, which an inflater ignores, so flipping one changes nothing."""
    pad = 0
    for k in range(7, -1, -1):
        b = bytearray(raw)
        b[-1] ^= 1 << k
        try:
            d = zlib.decompressobj(-15)
            out = d.decompress(bytes(b))
            same = d.eof and not d.unused_data and out == plain
        except zlib.error:
            same = False
        if not same:
            break
        pad += 1
    return 8 - pad


def extra_ids(blob):
    ids, i = [], 0
    while i + 4 <= len(blob):
        hid, n = struct.unpack_from("<HH", blob, i)
        ids.append(hid)
        i += 4 + n
    return ids


def positions(path, data):
    """Entry positions from the headers alone (entry data may be damaged)."""
    with zipfile.ZipFile(path) as zf:
        infos, start_dir = zf.infolist(), zf.start_dir
    out, p = [], start_dir
    for zi in infos:
        sig, = struct.unpack_from("<I", data, p)
        assert sig == 0x02014B50, "central header expected at %d" % p
        n, m, k = struct.unpack_from("<HHH", data, p + 28)
        central_extra = data[p + 46 + n:p + 46 + n + m]
        lsig, = struct.unpack_from("<I", data, zi.header_offset)
        assert lsig == 0x04034B50, "local header expected at %d" % zi.header_offset
        ln, lm = struct.unpack_from("<HH", data, zi.header_offset + 26)
        local_extra = data[zi.header_offset + 30 + ln:zi.header_offset + 30 + ln + lm]
        out.append({
            "name": zi.filename, "method": zi.compress_type, "header_offset": zi.header_offset,
            "central_offset": p, "data_offset": zi.header_offset + 30 + ln + lm,
            "compress_size": zi.compress_size, "file_size": zi.file_size, "crc": zi.CRC,
            "local_zip64": 1 in extra_ids(local_extra),
            "central_zip64": 1 in extra_ids(central_extra), "end_bits": None,
        })
        p += 46 + n + m + k
    return out


def info(path):
    data = open(path, "rb").read()
    entries = positions(path, data)
    with zipfile.ZipFile(path) as zf:
        for e in entries:
            raw = data[e["data_offset"]:e["data_offset"] + e["compress_size"]]
            if e["method"] == zipfile.ZIP_DEFLATED and raw:
                e["end_bits"] = end_bits(raw, zf.read(e["name"]))
    eocd64 = len(data) >= 42 and data[-42:-38] == b"PK\x06\x07"
    return {"entries": entries, "zip64_eocd": eocd64}


def classify_raw(raw, e):
    try:
        d = zlib.decompressobj(-15)
        plain = d.decompress(raw)
    except zlib.error as err:
        return "inflate-error", str(err)
    if not d.eof:
        return "truncated", "no final block"
    if len(plain) > e["file_size"]:
        return "longer", str(len(plain))
    if len(plain) < e["file_size"]:
        return "shorter", str(len(plain))
    if zlib.crc32(plain) != e["crc"]:
        return "crc", "%08x" % zlib.crc32(plain)
    return "ok", ""


def classify(path, name):
    data = open(path, "rb").read()
    e = next(x for x in positions(path, data) if x["name"] == name)
    c, detail = classify_raw(data[e["data_offset"]:e["data_offset"] + e["compress_size"]], e)
    return {"class": c, "detail": detail}


def scan(path, name, start, step, count, xor):
    """XORs one byte at START, START+STEP, ... of an entry's data in turn; the first offset that
    gives each verdict."""
    data = open(path, "rb").read()
    e = next(x for x in positions(path, data) if x["name"] == name)
    found = {}
    for k in range(count):
        at = start + k * step
        raw = bytearray(data[e["data_offset"]:e["data_offset"] + e["compress_size"]])
        raw[at] ^= xor
        found.setdefault(classify_raw(bytes(raw), e)[0], at)
    return found


def gzcheck(paths):
    res = []
    for p in paths:
        blob = open(p, "rb").read()
        via_gzip = gzip.decompress(blob)
        d = zlib.decompressobj(31)
        via_zlib = d.decompress(blob) + d.flush()
        res.append({
            "sha256": hashlib.sha256(via_gzip).hexdigest(), "len": len(via_gzip),
            "zlib_same": via_zlib == via_gzip, "single_member": d.eof and not d.unused_data,
        })
    return res


def write_files(spec):
    for e in spec["entries"]:
        p = os.path.join(spec["dir"], e["name"])
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(make_data(e["kind"], e["size"], seed_of(e)))


cmd = sys.argv[1]
if cmd == "make":
    for spec in json.load(sys.stdin):
        make_zip(spec)
elif cmd == "files":
    write_files(json.load(sys.stdin))
elif cmd == "info":
    print(json.dumps(info(sys.argv[2])))
elif cmd == "classify":
    print(json.dumps(classify(sys.argv[2], sys.argv[3])))
elif cmd == "scan":
    print(json.dumps(scan(sys.argv[2], sys.argv[3], *map(int, sys.argv[4:8]))))
elif cmd == "gzcheck":
    print(json.dumps(gzcheck(sys.argv[2:])))
else:
    raise SystemExit("unknown command " + cmd)
"#;

/// Runs the helper script with `args` (and `stdin`), asserts success, returns stdout.
fn python<S: AsRef<OsStr>>(args: &[S], stdin: Option<&Value>) -> String {
    require_tool("python3", "python3");
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(PY)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run python3");
    let input = stdin.map(|v| v.to_string()).unwrap_or_default();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("wait for python3");
    let first = args
        .first()
        .map(|a| a.as_ref().to_string_lossy().into_owned());
    assert!(
        out.status.success(),
        "python3 helper {first:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A deflated entry of generated data (`kind`: text, random, zeros, runs, mixed) at zlib `level`.
fn deflated(name: &str, kind: &str, size: usize, level: u32) -> Value {
    json!({"name": name, "kind": kind, "size": size, "method": "deflate", "level": level})
}

fn stored(name: &str, kind: &str, size: usize) -> Value {
    json!({"name": name, "kind": kind, "size": size, "method": "stored"})
}

fn with(mut v: Value, key: &str, val: impl Into<Value>) -> Value {
    v[key] = val.into();
    v
}

/// Writes each `(path, entries, zip64_limits)` zip with Python's zipfile.
fn make_zips(specs: &[(&Path, Vec<Value>, bool)]) {
    let list: Vec<Value> = specs
        .iter()
        .map(|(out, entries, z64)| {
            json!({"out": out.display().to_string(), "entries": entries, "zip64_limits": z64})
        })
        .collect();
    python(&["make"], Some(&Value::Array(list)));
}

/// `info` of a zip: every entry's offsets, sizes, zip64 fields and (deflate) used bits of the last byte.
fn zip_info(zip: &Path) -> Value {
    parse_json(&python(&["info".as_ref(), zip.as_os_str()], None))
}

fn entry_info<'a>(info: &'a Value, name: &str) -> &'a Value {
    info["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no entry {name} in {info}"))
}

fn u(v: &Value) -> usize {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}")) as usize
}

/// The Python inflater's verdict on one entry's data: inflate-error, truncated, longer, shorter, crc
/// or ok.
fn classify(zip: &Path, name: &str) -> String {
    let v = parse_json(&python(
        &["classify".as_ref(), zip.as_os_str(), OsStr::new(name)],
        None,
    ));
    format!("{} ({})", v["class"].as_str().unwrap(), v["detail"])
}

/// Deterministic text-like bytes (for the zip crate's encoder; Python makes its own).
fn rust_text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "import", "def", "return", "self", "layer", "lambda", "value", "None", "for", "in", "if",
        "else", "print", "data", "json", "handler",
    ];
    let pick = noise(len, seed);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        let b = pick[i % pick.len()];
        out.extend_from_slice(WORDS[(b % 16) as usize].as_bytes());
        out.push(if b.is_multiple_of(7) { b'\n' } else { b' ' });
        i += 1;
    }
    out.truncate(len);
    out
}

/// A test zip with what `info` says about it.
struct Generated {
    path: PathBuf,
    info: Value,
}

const MIX_SIZES: [usize; 58] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128,
    129, 255, 256, 257, 511, 512, 513, 1000, 1023, 1024, 1025, 2047, 2048, 4095, 4096, 4097, 8191,
    8192, 10000, 16383, 16384, 16385, 32767, 32768, 32769, 50000, 65535, 65536, 65537, 70000,
    100000, 131072, 262147,
];
const KINDS: [&str; 5] = ["text", "random", "zeros", "runs", "mixed"];

/// The generated zips, each under its own top directory so that they can be layered and compared
/// with `unzip`: `mix` (every deflate level over many sizes, stored entries between, empty files,
/// explicit directories), `big` (300 KB to 1.5 MB entries: multi-block streams, stored and fixed
/// blocks), `flush` (streams with sync/full/partial/Z_BLOCK flushes after every write, so blocks
/// end anywhere, and a final empty block), `zip64` (entries written with force_zip64), `zip64full`
/// (sizes and offsets in zip64 extra fields, zip64 end records), `infozip` (Info-ZIP's encoder at
/// -1/-6/-9) and `rustzip` (the zip crate's encoder).
fn generated_zips(dir: &Path) -> Vec<Generated> {
    let mut mix = vec![json!({"name": "mix/"}), json!({"name": "mix/d0/"})];
    for round in 0..2usize {
        for (i, &size) in MIX_SIZES.iter().enumerate() {
            let kind = KINDS[(i + round * 3) % KINDS.len()];
            let level = ((i * 3 + round * 7) % 10) as u32;
            let name = format!("mix/d{}/r{round}-{i:02}-{kind}-{size}", i % 4);
            let e = if (i + round) % 7 == 3 {
                stored(&name, kind, size)
            } else {
                deflated(&name, kind, size, level)
            };
            mix.push(if i % 11 == 0 {
                with(e, "mode", 0o755)
            } else {
                e
            });
        }
    }
    let big = vec![
        deflated("big/text-l1.txt", "text", 400_000, 1),
        deflated("big/text-l6.txt", "text", 1_500_000, 6),
        deflated("big/text-l9.txt", "text", 450_001, 9),
        deflated("big/text-l0.txt", "text", 350_000, 0),
        deflated("big/random-l6.bin", "random", 300_000, 6),
        deflated("big/zeros-l9.bin", "zeros", 1_000_000, 9),
        deflated("big/mixed-l4.bin", "mixed", 600_000, 4),
        deflated("big/runs-l2.bin", "runs", 500_000, 2),
        stored("big/stored-text.txt", "text", 300_000),
        deflated("big/small-after.txt", "text", 999, 6),
    ];
    let mut flush = Vec::new();
    let shapes = [
        (1usize, "text", 1usize),
        (1000, "text", 7),
        (5000, "random", 999),
        (70_000, "mixed", 4096),
        (300_001, "text", 65536),
    ];
    for (m, mode) in ["sync", "full", "partial", "block", "sync_end"]
        .iter()
        .enumerate()
    {
        for (s, (size, kind, chunk)) in shapes.iter().enumerate() {
            let level = ((m * 5 + s) % 10) as u32;
            let e = deflated(&format!("flush/{mode}/{kind}-{size}"), kind, *size, level);
            flush.push(with(with(e, "flush", *mode), "chunk", *chunk));
        }
    }
    let zip64 = vec![
        with(deflated("z64/a.txt", "text", 300_000, 6), "zip64", true),
        with(deflated("z64/empty", "text", 0, 6), "zip64", true),
        with(stored("z64/stored.bin", "random", 5000), "zip64", true),
        with(deflated("z64/small.txt", "text", 777, 9), "zip64", true),
        deflated("z64/plain.txt", "text", 1234, 6),
    ];
    let zip64full = vec![
        with(
            deflated("z64f/text-a.txt", "text", 320_000, 5),
            "zip64",
            true,
        ),
        with(deflated("z64f/b.bin", "mixed", 90_000, 8), "zip64", true),
        with(stored("z64f/c", "runs", 3000), "zip64", true),
        with(deflated("z64f/d", "text", 10, 1), "zip64", true),
        with(deflated("z64f/e", "zeros", 0, 3), "zip64", true),
    ];
    let p = |n: &str| dir.join(n);
    make_zips(&[
        (&p("mix.zip"), mix, false),
        (&p("big.zip"), big, false),
        (&p("flush.zip"), flush, false),
        (&p("zip64.zip"), zip64, false),
        (&p("zip64full.zip"), zip64full, true),
    ]);

    // Info-ZIP's own deflate implementation, one run per level.
    let src = dir.join("infozip-src");
    let mut iz_files = Vec::new();
    for level in [1, 6, 9] {
        for (kind, size) in [
            ("text", 300_000usize),
            ("mixed", 50_000),
            ("runs", 12_345),
            ("random", 3000),
            ("text", 1),
            ("text", 4321),
        ] {
            iz_files.push((level, format!("izip/l{level}/{kind}-{size}"), kind, size));
        }
    }
    let entries: Vec<Value> = iz_files
        .iter()
        .map(|(_, name, kind, size)| json!({"name": name, "kind": kind, "size": size}))
        .collect();
    python(
        &["files"],
        Some(&json!({"dir": src.display().to_string(), "entries": entries})),
    );
    let iz = dir.join("infozip.zip");
    for level in [1, 6, 9] {
        let mut args: Vec<OsString> = vec![
            "-q".into(),
            "-X".into(),
            "-D".into(),
            format!("-{level}").into(),
            iz.clone().into(),
        ];
        args.extend(
            iz_files
                .iter()
                .filter(|f| f.0 == level)
                .map(|f| OsString::from(&f.1)),
        );
        require_tool("zip", "zip");
        let (code, out, err) = run_cmd(Command::new("zip").current_dir(&src).args(&args));
        assert_eq!(code, 0, "zip failed: {out}{err}");
    }

    // The zip crate's encoder (zlib-rs).
    let rz = dir.join("rustzip.zip");
    let datas: Vec<(String, Vec<u8>)> = [1usize, 77, 4099, 65_537, 310_000]
        .iter()
        .enumerate()
        .flat_map(|(i, &size)| {
            [
                (format!("rz/text-{size}"), rust_text(size, i as u64 + 1)),
                (format!("rz/noise-{size}"), noise(size, i as u64 + 100)),
            ]
        })
        .collect();
    let zentries: Vec<ZipEntry> = datas
        .iter()
        .map(|(n, d)| ZipEntry::File(n, d, 0o644))
        .collect();
    make_zip(&rz, &zentries);

    [
        "mix.zip",
        "big.zip",
        "flush.zip",
        "zip64.zip",
        "zip64full.zip",
        "infozip.zip",
        "rustzip.zip",
    ]
    .iter()
    .map(|n| {
        let path = dir.join(n);
        Generated {
            info: zip_info(&path),
            path,
        }
    })
    .collect()
}

/// Checks that the generated zips have what they are meant to test, so the tests cannot quietly
/// pass on tamer inputs.
fn assert_generated_inputs(zips: &[Generated]) {
    let by_name = |n: &str| {
        zips.iter()
            .find(|z| z.path.file_name().unwrap() == n)
            .unwrap()
    };
    let mut end_bits = BTreeSet::new();
    for z in zips {
        for e in z.info["entries"].as_array().unwrap() {
            if let Some(b) = e["end_bits"].as_u64() {
                end_bits.insert(b);
            }
        }
    }
    assert_eq!(
        end_bits,
        (1..=8).collect(),
        "the deflate streams must end at every bit position of their last byte"
    );
    let big_deflated = |z: &Generated| {
        z.info["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == 8 && u(&e["file_size"]) >= 300_000)
            .count()
    };
    assert!(big_deflated(by_name("big.zip")) >= 7);
    for n in ["infozip.zip", "rustzip.zip", "flush.zip", "zip64full.zip"] {
        assert!(big_deflated(by_name(n)) >= 1, "{n}: no large deflate entry");
    }
    let mix = &by_name("mix.zip").info["entries"];
    for method in [8, 0] {
        assert!(
            mix.as_array()
                .unwrap()
                .iter()
                .any(|e| e["method"] == method),
            "mix.zip has no method {method} entry"
        );
    }
    let z64 = &by_name("zip64.zip").info;
    assert!(entry_info(z64, "z64/a.txt")["local_zip64"] == true);
    assert!(entry_info(z64, "z64/plain.txt")["local_zip64"] == false);
    let full = &by_name("zip64full.zip").info;
    assert!(
        full["zip64_eocd"] == true,
        "zip64full.zip: no zip64 end record"
    );
    assert!(entry_info(full, "z64f/text-a.txt")["central_zip64"] == true);
    let iz = &by_name("infozip.zip").info["entries"];
    assert_eq!(iz.as_array().unwrap().len(), 18);
}

/// `layerport image ZIPS... EXTRA... --oci-layout LAYOUT:t`; asserts success, returns the manifest digest.
fn build(zips: &[&Path], layout: &Path, extra: &[&str]) -> String {
    let mut args: Vec<OsString> = vec!["image".into()];
    args.extend(zips.iter().map(|z| z.as_os_str().to_owned()));
    args.extend(extra.iter().map(OsString::from));
    args.push("--oci-layout".into());
    args.push(format!("{}:{TAG}", layout.display()).into());
    let digest = run_ok(&args).trim().to_string();
    assert!(digest.starts_with("sha256:"), "not a digest: {digest:?}");
    digest
}

/// One layer of a built image: its blob, the diff_id the config gives it, and its tar (flate2).
struct Layer {
    digest: String,
    blob: PathBuf,
    diff_id: String,
    tar: Vec<u8>,
}

/// The layers of LAYOUT:t, each checked: gzip media type, size, and diff_id == sha256 of its tar.
fn layers(layout: &Path) -> Vec<Layer> {
    let (_, manifest) = manifest_for_tag(layout, TAG);
    let config = config_of(layout, &manifest);
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let descs = manifest["layers"].as_array().unwrap();
    assert_eq!(descs.len(), diff_ids.len(), "layers vs diff_ids");
    descs
        .iter()
        .zip(diff_ids)
        .map(|(d, diff_id)| {
            assert_eq!(d["mediaType"], LAYER_GZIP);
            let digest = d["digest"].as_str().unwrap().to_string();
            let blob = blob_path(layout, &digest);
            let bytes = fs::read(&blob).unwrap();
            assert_eq!(d["size"], bytes.len() as u64);
            let tar = gunzip(&bytes);
            let diff_id = diff_id.as_str().unwrap().to_string();
            assert_eq!(
                diff_id,
                format!("sha256:{}", sha256_hex(&tar)),
                "diff_id of {digest}"
            );
            Layer {
                digest,
                blob,
                diff_id,
                tar,
            }
        })
        .collect()
}

/// Runs `name ARGS < input`, asserts success, returns stdout.
fn tool_stdin(name: &str, package: &str, args: &[&str], input: &Path) -> Vec<u8> {
    require_tool(name, package);
    let out = Command::new(name)
        .args(args)
        .stdin(fs::File::open(input).unwrap())
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        out.status.success(),
        "`{name} {}` < {} failed: {}",
        args.join(" "),
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Panics with the first differing offset instead of printing megabytes.
fn assert_same_bytes(a: &[u8], b: &[u8], what: &str) {
    if a != b {
        let at = a
            .iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        panic!(
            "{what}: {} vs {} bytes, first difference at offset {at}",
            a.len(),
            b.len()
        );
    }
}

/// Every layer blob is one valid gzip member that GNU gzip (`-t`, and `-dc` bytes), Python's `gzip`
/// module and zlib decode to exactly the tar flate2 read.
fn assert_decoders_agree(layers: &[Layer], what: &str) {
    for l in layers {
        tool_stdin("gzip", "gzip", &["-t"], &l.blob);
        let out = tool_stdin("gzip", "gzip", &["-dc"], &l.blob);
        assert_same_bytes(&out, &l.tar, &format!("{what}: gzip -dc of {}", l.digest));
    }
    let mut args: Vec<OsString> = vec!["gzcheck".into()];
    args.extend(layers.iter().map(|l| l.blob.clone().into_os_string()));
    let res = parse_json(&python(&args, None));
    for (l, r) in layers.iter().zip(res.as_array().unwrap()) {
        assert_eq!(
            (r["sha256"].as_str(), u(&r["len"])),
            (Some(&l.diff_id[7..]), l.tar.len()),
            "{what}: Python's gzip module decodes {} differently",
            l.digest
        );
        assert!(
            r["zlib_same"] == true,
            "{what}: zlib disagrees on {}",
            l.digest
        );
        assert!(
            r["single_member"] == true,
            "{what}: {} is not exactly one gzip member",
            l.digest
        );
    }
}

/// Same tars and diff_ids, layer by layer.
fn assert_same_tars(a: &[Layer], b: &[Layer], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: layer count");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_same_bytes(&x.tar, &y.tar, &format!("{what}: tar of layer {i}"));
        assert_eq!(x.diff_id, y.diff_id, "{what}: diff_id of layer {i}");
    }
}

/// Every file of a directory with its bytes.
fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(dir)
        .into_iter()
        .filter(|(_, n)| n.kind == Kind::File)
        .map(|(k, n)| (k, n.data))
        .collect()
}

fn assert_same_files(a: &Path, b: &Path, what: &str) {
    let (fa, fb) = (files_of(a), files_of(b));
    let ka: Vec<_> = fa.keys().collect();
    let kb: Vec<_> = fb.keys().collect();
    assert_eq!(ka, kb, "{what}: different files");
    for (k, v) in &fa {
        assert_same_bytes(v, &fb[k], &format!("{what}: {k}"));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn paths_of(zips: &[Generated]) -> Vec<&Path> {
    zips.iter().map(|z| z.path.as_path()).collect()
}

#[test]
fn testdata_zips_splice_and_recompress_give_the_same_tars() {
    let tmp = TempDir::new().unwrap();
    let mut zips: Vec<PathBuf> = Vec::new();
    for dir in ["good", "good/sample"] {
        let mut found: Vec<PathBuf> = fs::read_dir(testdata(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "zip"))
            .collect();
        found.sort();
        zips.extend(found);
    }
    assert_eq!(zips.len(), 11, "testdata/good changed: {zips:?}");
    let zips: Vec<&Path> = zips.iter().map(PathBuf::as_path).collect();
    let (splice, fresh) = (tmp.path().join("splice"), tmp.path().join("fresh"));
    build(&zips, &splice, &[]);
    build(&zips, &fresh, &["--recompress"]);
    let (a, b) = (layers(&splice), layers(&fresh));
    assert_eq!(a.len(), zips.len(), "one layer per zip");
    assert_decoders_agree(&a, "splice");
    assert_decoders_agree(&b, "--recompress");
    assert_same_tars(&a, &b, "testdata splice vs --recompress");
    for (z, l) in zips.iter().zip(&a) {
        assert_layer_rules(&tar_entries(&l.tar), &["opt/"]);
        // The tar holds what unzip extracts (unzip asks what to do about duplicates.zip's repeated
        // name, and exits 1 on windows-style.zip's backslashes).
        let quirky = ["duplicates.zip", "windows-style.zip"];
        if !quirky.iter().any(|q| z.ends_with(q)) {
            let opt = subtree(&tar_tree(&tar_entries(&l.tar)), "opt");
            let want = unzip_tree(z, tmp.path());
            assert_eq!(shape(&opt), shape(&want), "{}", z.display());
        }
    }
}

#[test]
fn generated_zips_splice_and_recompress_give_the_same_tars() {
    let tmp = TempDir::new().unwrap();
    let zips = generated_zips(tmp.path());
    assert_generated_inputs(&zips);
    let paths = paths_of(&zips);
    let (splice, fresh) = (tmp.path().join("splice"), tmp.path().join("fresh"));
    build(&paths, &splice, &[]);
    build(&paths, &fresh, &["--recompress"]);
    let (a, b) = (layers(&splice), layers(&fresh));
    assert_eq!(a.len(), zips.len());
    assert_decoders_agree(&a, "splice");
    assert_decoders_agree(&b, "--recompress");
    assert_same_tars(&a, &b, "generated splice vs --recompress");

    // The default build really reuses the zips' deflate data: a window from the middle of every large
    // text entry's compressed stream appears verbatim in the spliced blob, and not in the
    // recompressed one.
    let mut windows_checked = 0;
    for (i, z) in zips.iter().enumerate() {
        let zip_bytes = fs::read(&z.path).unwrap();
        let (spliced, fresh_blob) = (fs::read(&a[i].blob).unwrap(), fs::read(&b[i].blob).unwrap());
        for e in z.info["entries"].as_array().unwrap() {
            let name = e["name"].as_str().unwrap();
            let text = name.contains("text") || name.ends_with(".txt");
            if e["method"] != 8 || !text || u(&e["file_size"]) < 300_000 {
                continue;
            }
            let (start, len) = (u(&e["data_offset"]), u(&e["compress_size"]));
            assert!(len > 16_384, "{name}: only {len} compressed bytes");
            let window = &zip_bytes[start + len / 2 - 2048..start + len / 2 + 2048];
            assert!(
                contains(&spliced, window),
                "{}: {name}'s deflate data is not in the spliced layer",
                z.path.display()
            );
            assert!(
                !contains(&fresh_blob, window),
                "{}: {name}'s deflate data is in the --recompress layer",
                z.path.display()
            );
            windows_checked += 1;
        }
    }
    assert!(
        windows_checked >= 9,
        "only {windows_checked} windows checked"
    );

    // Other levels: same tar; --recompress means --recompress=6; 1 and 9 differ from each other.
    let big = [zips[1].path.as_path()];
    let mut level_blobs = Vec::new();
    for flag in ["--recompress=1", "--recompress=6", "--recompress=9"] {
        let dir = tmp.path().join(flag.trim_start_matches('-'));
        build(&big, &dir, &[flag]);
        let l = layers(&dir);
        assert_same_tars(&l, &a[1..2], flag);
        level_blobs.push(fs::read(&l[0].blob).unwrap());
    }
    assert_same_bytes(
        &level_blobs[1],
        &fs::read(&b[1].blob).unwrap(),
        "--recompress vs --recompress=6",
    );
    assert_ne!(
        level_blobs[0], level_blobs[2],
        "levels 1 and 9 gave the same bytes"
    );

    // --squash: one layer from several zips, spliced or recompressed, same tar.
    let squash_zips = [paths[0], paths[1], paths[4], paths[5]];
    let (sq_a, sq_b) = (tmp.path().join("sq-splice"), tmp.path().join("sq-fresh"));
    build(&squash_zips, &sq_a, &["--squash"]);
    build(&squash_zips, &sq_b, &["--squash", "--recompress"]);
    let (la, lb) = (layers(&sq_a), layers(&sq_b));
    assert_eq!(la.len(), 1);
    assert_decoders_agree(&la, "--squash splice");
    assert_same_tars(&la, &lb, "--squash splice vs --recompress");
}

#[test]
fn generated_zips_bytes_do_not_depend_on_threads() {
    let tmp = TempDir::new().unwrap();
    let zips = generated_zips(tmp.path());
    let paths = paths_of(&zips);
    for (mode, extra) in [("splice", &[][..]), ("recompress", &["--recompress"][..])] {
        let default = tmp.path().join(format!("{mode}-default"));
        let digest = build(&paths, &default, extra);
        for threads in ["1", "3"] {
            let dir = tmp.path().join(format!("{mode}-t{threads}"));
            let mut args = extra.to_vec();
            args.extend(["--threads", threads]);
            let d = build(&paths, &dir, &args);
            assert_eq!(
                d, digest,
                "{mode}: --threads {threads} changed the manifest digest"
            );
            assert_same_files(&default, &dir, &format!("{mode}: --threads {threads}"));
        }
    }
}

#[test]
fn zip64_end_records_with_a_plain_eocd_are_read() {
    // A valid zip (Python's zipfile reads it back, `unzip -t` passes) whose zip64 end records sit
    // between the central directory and an end record that still holds the real values, and whose
    // first central header is exactly as long as those zip64 records (76 bytes: 46 + a 10-byte name
    // + a 20-byte zip64 extra). A reader that assumes the central directory ends where the end
    // record starts finds a central header 76 bytes in, takes those 76 bytes for data prepended to
    // the archive, and then fails.
    let tmp = TempDir::new().unwrap();
    let zip = tmp.path().join("zip64-eocd.zip");
    make_zips(&[(
        &zip,
        vec![
            with(deflated("z64f/a.txt", "text", 320_000, 5), "zip64", true),
            with(deflated("z64f/d", "text", 10, 1), "zip64", true),
        ],
        true,
    )]);
    let info = zip_info(&zip);
    assert!(info["zip64_eocd"] == true);
    let first = &info["entries"][0];
    assert_eq!(
        u(&info["entries"][1]["central_offset"]) - u(&first["central_offset"]),
        76,
        "first central header length"
    );
    tool_ok("unzip", "unzip", &["-tq".as_ref(), zip.as_os_str()]);
    let layout = tmp.path().join("img");
    build(&[zip.as_path()], &layout, &[]);
    let l = layers(&layout);
    let opt = subtree(&tar_tree(&tar_entries(&l[0].tar)), "opt");
    assert_eq!(shape(&opt), shape(&unzip_tree(&zip, tmp.path())));
}

/// A small deterministic generator for the seeded zips.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Entries drawn from `seed`: log-uniform sizes up to 512 KiB, any kind, level, flush and chunking,
/// some stored, some (or all) written with zip64 fields.
fn random_entries(seed: u64, all_zip64: bool) -> Vec<Value> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let count = 1 + r.below(24);
    (0..count)
        .map(|i| {
            let base = 1u64 << r.below(20);
            let size = (base / 2 + r.below(base)) as usize;
            let size = if r.below(12) == 0 { 0 } else { size };
            let kind = KINDS[r.below(5) as usize];
            let name = format!("rnd{seed}/d{}/e{i}-{kind}-{size}", r.below(3));
            let mut e = if r.below(7) == 0 {
                stored(&name, kind, size)
            } else {
                deflated(&name, kind, size, r.below(10) as u32)
            };
            if e["method"] == "deflate" && r.below(3) == 0 {
                let mode = ["sync", "full", "partial", "block", "sync_end"][r.below(5) as usize];
                let chunk = size / 100 + 1 + r.below(size as u64 / 10 + 1) as usize;
                e = with(with(e, "flush", mode), "chunk", chunk);
            }
            if all_zip64 || r.below(8) == 0 {
                e = with(e, "zip64", true);
            }
            with(e, "seed", r.below(1 << 30))
        })
        .collect()
}

#[test]
fn seeded_random_zips_splice_like_recompress() {
    let tmp = TempDir::new().unwrap();
    let seeds = 1..=8u64;
    let paths: Vec<PathBuf> = seeds
        .clone()
        .map(|s| tmp.path().join(format!("seed{s}.zip")))
        .collect();
    let specs: Vec<(&Path, Vec<Value>, bool)> = seeds
        .clone()
        .zip(&paths)
        .map(|(s, p)| (p.as_path(), random_entries(s, s % 4 == 0), s % 4 == 0))
        .collect();
    let total: usize = specs.iter().flat_map(|s| &s.1).map(|e| u(&e["size"])).sum();
    assert!(total > 1_000_000, "seeded zips too small: {total} bytes");
    make_zips(&specs);
    let zips: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let (splice, fresh) = (tmp.path().join("splice"), tmp.path().join("fresh"));
    build(&zips, &splice, &[]);
    build(&zips, &fresh, &["--recompress"]);
    let (a, b) = (layers(&splice), layers(&fresh));
    assert_eq!(a.len(), zips.len());
    assert_decoders_agree(&a, "seeded splice");
    assert_same_tars(&a, &b, "seeded splice vs --recompress");
}

#[test]
fn go_and_umoci_decoders_accept_spliced_layers() {
    let tmp = TempDir::new().unwrap();
    let zips = generated_zips(tmp.path());
    let paths = paths_of(&zips);
    let layout = tmp.path().join("img");
    let digest = build(&paths, &layout, &[]);
    let ours = layers(&layout);
    let reference = format!("oci:{}:{TAG}", layout.display());

    let info = parse_json(&tool_ok(
        "skopeo",
        "skopeo",
        &["inspect", reference.as_str()],
    ));
    assert_eq!(info["Digest"], digest.as_str());
    let listed: Vec<&str> = info["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let want: Vec<&str> = ours.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(listed, want, "skopeo inspect layers");

    // skopeo decompresses every layer with Go's gzip into dir:; the results are our tars exactly.
    let dir = tmp.path().join("skopeo-dir");
    tool_ok(
        "skopeo",
        "skopeo",
        &[
            "copy".to_string(),
            "--dest-decompress".to_string(),
            reference.clone(),
            format!("dir:{}", dir.display()),
        ],
    );
    let copied = read_json(&dir.join("manifest.json"));
    let copied_layers = copied["layers"].as_array().unwrap();
    assert_eq!(copied_layers.len(), ours.len());
    for (c, l) in copied_layers.iter().zip(&ours) {
        assert_eq!(
            c["digest"].as_str(),
            Some(l.diff_id.as_str()),
            "Go's gzip decoded {} to something else than its diff_id",
            l.digest
        );
        let bytes = fs::read(dir.join(&l.diff_id[7..])).unwrap();
        assert_same_bytes(&bytes, &l.tar, "skopeo's decompressed layer");
    }

    // umoci unpacks the spliced layers into the zips' contents, as unzip extracts them.
    let rootfs = umoci_unpack(&layout, TAG, &tmp.path().join("bundle"));
    let opt = subtree(&tree(&rootfs), "opt");
    let mut want = Tree::new();
    for z in &zips {
        want.extend(unzip_tree(&z.path, tmp.path()));
    }
    assert!(want.len() > 180, "only {} paths", want.len());
    let (got, want) = (shape(&opt), shape(&want));
    let names = |s: &[(String, Kind, Vec<u8>)]| s.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&got),
        names(&want),
        "umoci's paths differ from unzip's"
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.1, w.1, "{}: kind", g.0);
        assert_same_bytes(&g.2, &w.2, &format!("umoci's {}", g.0));
    }
}

/// The zip that the refusal tests damage: a small entry, a large multi-block deflate entry, the same
/// with a full flush every 50,000 bytes (so blocks start at known byte positions, right after each
/// flush's `00 00 ff ff`), a level 0 (stored blocks) deflate entry, and a large entry after them.
fn victim_zip(dir: &Path) -> (PathBuf, Value) {
    let zip = dir.join("victim.zip");
    let flushed = deflated("python/victim/flushed.txt", "text", 400_000, 6);
    make_zips(&[(
        &zip,
        vec![
            deflated("python/a_ok.txt", "text", 3000, 6),
            deflated("python/victim/big.txt", "text", 400_000, 6),
            with(with(flushed, "flush", "full"), "chunk", 50_000),
            deflated("python/victim/level0.txt", "text", 20_000, 0),
            deflated("python/z_after.bin", "mixed", 200_000, 6),
        ],
        false,
    )]);
    let info = zip_info(&zip);
    (zip, info)
}

/// A copy of `zip` with `edit` applied to its bytes.
fn damaged(zip: &Path, out: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(zip).unwrap();
    edit(&mut bytes);
    fs::write(out, bytes).unwrap();
}

/// Runs `layerport image BAD EXTRA...` with TMPDIR inside `tmp`, into a new nested layout and into an
/// existing one, under the splice default, `--recompress` and `--threads 1`. Each must exit 1 with
/// an error naming the zip and the entry and saying `says`, with a hint, and must leave `tmp`
/// exactly as it was (no new directory, no staging leftovers, the existing layout untouched).
fn assert_refused(bad: &Path, entry: &str, says: &str) {
    let good = testdata("good/sample/deps.zip");
    for extra in [&[][..], &["--recompress"][..], &["--threads", "1"][..]] {
        let tmp = TempDir::new().unwrap();
        let zip = tmp.path().join(bad.file_name().unwrap());
        fs::copy(bad, &zip).unwrap();
        fs::create_dir(tmp.path().join("tmpdir")).unwrap();
        let existing = tmp.path().join("existing");
        build(&[good.as_path()], &existing, &[]);
        let before = shape(&tree(tmp.path()));
        for dest in [
            format!("{}:v2", tmp.path().join("new/deeper/img").display()),
            format!("{}:v2", existing.display()),
        ] {
            let mut cmd = layerport();
            cmd.env("TMPDIR", tmp.path().join("tmpdir"))
                .arg("image")
                .arg(&zip)
                .args(extra)
                .args(["--oci-layout", &dest]);
            let (code, stdout, stderr) = run_cmd(&mut cmd);
            let ctx = format!(
                "{} {extra:?} -> {dest}: stderr was\n{stderr}",
                zip.display()
            );
            assert_eq!(code, 1, "exit code, {ctx}");
            assert!(stdout.is_empty(), "stdout {stdout:?}, {ctx}");
            assert!(!stderr.contains("panicked"), "panic, {ctx}");
            assert!(stderr.contains("error:"), "no error line, {ctx}");
            assert!(stderr.contains("victim"), "zip not named, {ctx}");
            assert!(
                stderr.contains(&format!("entry \"{entry}\"")),
                "entry {entry} not named, {ctx}"
            );
            assert!(stderr.contains(says), "does not say {says:?}, {ctx}");
            assert!(stderr.contains("hint:"), "no hint, {ctx}");
            let after = shape(&tree(tmp.path()));
            let names =
                |s: &[(String, Kind, Vec<u8>)]| s.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
            assert_eq!(names(&after), names(&before), "paths left behind, {ctx}");
            assert!(after == before, "files changed, {ctx}");
        }
    }
}

#[test]
fn invalid_deflate_data_in_the_middle_is_refused_as_corrupt() {
    let tmp = TempDir::new().unwrap();
    let (zip, info) = victim_zip(tmp.path());
    let e = entry_info(&info, "python/victim/flushed.txt");
    let (start, len) = (u(&e["data_offset"]), u(&e["compress_size"]));
    let zip_bytes = fs::read(&zip).unwrap();
    let data = &zip_bytes[start..start + len];
    // The full flush nearest the middle; the block after it starts at a byte boundary.
    let flushes: Vec<usize> = (0..len - 4)
        .filter(|&i| data[i..i + 4] == [0, 0, 0xff, 0xff])
        .map(|i| i + 4)
        .collect();
    assert!(
        flushes.len() >= 7,
        "only {} full flushes found",
        flushes.len()
    );
    let block = *flushes
        .iter()
        .min_by_key(|&&b| b.abs_diff(len / 2))
        .unwrap();
    let bad = tmp.path().join("block-type/victim.zip");
    fs::create_dir_all(bad.parent().unwrap()).unwrap();
    // BTYPE 3 is reserved: no inflater may accept it.
    damaged(&zip, &bad, |b| b[start + block] |= 0b110);
    let verdict = classify(&bad, "python/victim/flushed.txt");
    assert!(
        verdict.starts_with("inflate-error"),
        "the edit was meant to break the deflate stream, zlib says {verdict}"
    );
    assert_refused(&bad, "python/victim/flushed.txt", "is corrupt");
}

#[test]
fn flipped_bytes_in_the_middle_of_deflate_data_are_refused() {
    // Deflate is resilient: one flipped byte in the middle of a stream mostly still inflates, to other
    // bytes or another length. Whatever zlib makes of it, layerport must refuse it with the matching
    // message.
    let tmp = TempDir::new().unwrap();
    let (zip, info) = victim_zip(tmp.path());
    let name = "python/victim/big.txt";
    let len = u(&entry_info(&info, name)["compress_size"]);
    let found = parse_json(&python(
        &[
            OsString::from("scan"),
            zip.clone().into(),
            name.into(),
            (len / 2).to_string().into(),
            "101".into(),
            "40".into(),
            "255".into(),
        ],
        None,
    ));
    let start = u(&entry_info(&info, name)["data_offset"]);
    let expected = [
        ("crc", "fails its CRC-32 check"),
        ("longer", "inflates to more than its declared 400000 bytes"),
        ("shorter", "but declares 400000"),
    ];
    for (class, says) in expected {
        let at = u(found
            .get(class)
            .unwrap_or_else(|| panic!("no flip gave {class}: {found}")));
        let bad = tmp.path().join(format!("{class}/victim.zip"));
        fs::create_dir_all(bad.parent().unwrap()).unwrap();
        damaged(&zip, &bad, |b| b[start + at] ^= 0xff);
        let verdict = classify(&bad, name);
        assert!(
            verdict.starts_with(class),
            "{class}: zlib now says {verdict}"
        );
        assert_refused(&bad, name, says);
    }
}

#[test]
fn changed_bytes_in_a_stored_deflate_block_fail_the_crc_check() {
    let tmp = TempDir::new().unwrap();
    let (zip, info) = victim_zip(tmp.path());
    let e = entry_info(&info, "python/victim/level0.txt");
    let (start, len) = (u(&e["data_offset"]), u(&e["compress_size"]));
    // Level 0 writes stored blocks: 20000 bytes of data plus a few block headers.
    assert!((20_000..20_100).contains(&len), "level0.txt: {len} bytes");
    let bad = tmp.path().join("stored-block/victim.zip");
    fs::create_dir_all(bad.parent().unwrap()).unwrap();
    let at = start + len / 2 + 3;
    damaged(&zip, &bad, |b| b[at] ^= 0x20);
    let verdict = classify(&bad, "python/victim/level0.txt");
    assert!(
        verdict.starts_with("crc"),
        "the change was meant to keep the stream valid and break the CRC, zlib says {verdict}"
    );
    assert_refused(&bad, "python/victim/level0.txt", "fails its CRC-32 check");
}

#[test]
fn entries_inflating_to_other_than_their_declared_size_are_refused() {
    let tmp = TempDir::new().unwrap();
    let (zip, info) = victim_zip(tmp.path());
    let cases = [
        (
            "python/victim/big.txt",
            300_000u32,
            "inflates to more than its declared 300000 bytes",
        ),
        (
            "python/a_ok.txt",
            2999,
            "inflates to more than its declared 2999 bytes",
        ),
        (
            "python/a_ok.txt",
            0,
            "inflates to more than its declared 0 bytes",
        ),
        (
            "python/victim/big.txt",
            400_001,
            "inflates to 400000 bytes but declares 400001",
        ),
    ];
    for (i, (entry, declared, says)) in cases.into_iter().enumerate() {
        let e = entry_info(&info, entry);
        let (local, central) = (u(&e["header_offset"]) + 22, u(&e["central_offset"]) + 24);
        let bad = tmp.path().join(format!("case{i}/victim.zip"));
        fs::create_dir_all(bad.parent().unwrap()).unwrap();
        damaged(&zip, &bad, |b| {
            for at in [local, central] {
                let old = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
                assert_eq!(
                    old as usize,
                    u(&e["file_size"]),
                    "{entry}: size field at {at}"
                );
                b[at..at + 4].copy_from_slice(&declared.to_le_bytes());
            }
        });
        let verdict = classify(&bad, entry);
        let want = if declared as usize > u(&e["file_size"]) {
            "shorter"
        } else {
            "longer"
        };
        assert!(
            verdict.starts_with(want),
            "{entry} declared {declared}: zlib says {verdict}"
        );
        assert_refused(&bad, entry, says);
    }
}
