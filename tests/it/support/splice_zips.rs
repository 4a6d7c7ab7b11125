//! The zips of the layer splicing tests (`tests/layer_splice.rs`, `tests/layer_splice_refusals.rs`)
//! and what both build them with: the embedded Python zipfile helper that makes and examines them,
//! the generated zip set from three deflate encoders, and `layerport image` into an OCI layout.

use super::images::noise;
use super::tools::{ZipEntry, make_zip, parse_json, require_tool, run_cmd, run_ok};
use serde_json::{Value, json};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The tag every test image is built under.
pub const TAG: &str = "t";

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
pub fn python<S: AsRef<OsStr>>(args: &[S], stdin: Option<&Value>) -> String {
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
pub fn deflated(name: &str, kind: &str, size: usize, level: u32) -> Value {
    json!({"name": name, "kind": kind, "size": size, "method": "deflate", "level": level})
}

pub fn stored(name: &str, kind: &str, size: usize) -> Value {
    json!({"name": name, "kind": kind, "size": size, "method": "stored"})
}

pub fn with(mut v: Value, key: &str, val: impl Into<Value>) -> Value {
    v[key] = val.into();
    v
}

/// Writes each `(path, entries, zip64_limits)` zip with Python's zipfile.
pub fn make_zips(specs: &[(&Path, Vec<Value>, bool)]) {
    let list: Vec<Value> = specs
        .iter()
        .map(|(out, entries, z64)| {
            json!({"out": out.display().to_string(), "entries": entries, "zip64_limits": z64})
        })
        .collect();
    python(&["make"], Some(&Value::Array(list)));
}

/// `info` of a zip: every entry's offsets, sizes, zip64 fields and (deflate) used bits of the last byte.
pub fn zip_info(zip: &Path) -> Value {
    parse_json(&python(&["info".as_ref(), zip.as_os_str()], None))
}

pub fn entry_info<'a>(info: &'a Value, name: &str) -> &'a Value {
    info["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no entry {name} in {info}"))
}

pub fn u(v: &Value) -> usize {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}")) as usize
}

/// The Python inflater's verdict on one entry's data: inflate-error, truncated, longer, shorter, crc
/// or ok.
pub fn classify(zip: &Path, name: &str) -> String {
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
pub struct Generated {
    pub path: PathBuf,
    pub info: Value,
}

const MIX_SIZES: [usize; 58] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128,
    129, 255, 256, 257, 511, 512, 513, 1000, 1023, 1024, 1025, 2047, 2048, 4095, 4096, 4097, 8191,
    8192, 10000, 16383, 16384, 16385, 32767, 32768, 32769, 50000, 65535, 65536, 65537, 70000,
    100000, 131072, 262147,
];
pub const KINDS: [&str; 5] = ["text", "random", "zeros", "runs", "mixed"];

/// The generated zips, each under its own top directory so that they can be layered and compared
/// with `unzip`: `mix` (every deflate level over many sizes, stored entries between, empty files,
/// explicit directories), `big` (300 KB to 1.5 MB entries: multi-block streams, stored and fixed
/// blocks), `flush` (streams with sync/full/partial/Z_BLOCK flushes after every write, so blocks
/// end anywhere, and a final empty block), `zip64` (entries written with force_zip64), `zip64full`
/// (sizes and offsets in zip64 extra fields, zip64 end records), `infozip` (Info-ZIP's encoder at
/// -1/-6/-9) and `rustzip` (the zip crate's encoder).
pub fn generated_zips(dir: &Path) -> Vec<Generated> {
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

pub fn paths_of(zips: &[Generated]) -> Vec<&Path> {
    zips.iter().map(|z| z.path.as_path()).collect()
}

/// `layerport image ZIPS... EXTRA... --oci-layout LAYOUT:t`; asserts success, returns the manifest digest.
pub fn build(zips: &[&Path], layout: &Path, extra: &[&str]) -> String {
    let mut args: Vec<OsString> = vec!["image".into()];
    args.extend(zips.iter().map(|z| z.as_os_str().to_owned()));
    args.extend(extra.iter().map(OsString::from));
    args.push("--oci-layout".into());
    args.push(format!("{}:{TAG}", layout.display()).into());
    let digest = run_ok(&args).trim().to_string();
    assert!(digest.starts_with("sha256:"), "not a digest: {digest:?}");
    digest
}
