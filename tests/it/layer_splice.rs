//! Proves that building a layer's gzip member by splicing the zip entries' own deflate streams
//! (`layerport image`, the default) gives a valid gzip file that every decoder we can reach accepts
//! (gzip, Python, flate2, Go via skopeo and umoci), whose uncompressed tar is byte-identical to what
//! `--recompress` makes, and whose bytes do not depend on `--threads`. That damaged deflate data or
//! lying size headers are still refused is proved in `layer_splice_refusals.rs`.
//!
//! The zips (made in `support/splice_zips.rs`) come from Python's zipfile (deterministic data, every
//! deflate level, stored entries, zip64, flushes that put block boundaries anywhere), Info-ZIP `zip`
//! and the zip crate, so the spliced streams come from three different deflate encoders. The inputs
//! are checked to have what they are meant to test (streams ending at every bit position, zip64
//! fields), so a tamer input cannot pass unnoticed.

use crate::support::images::LAYER_GZIP;
use crate::support::splice_zips::*;
use crate::support::tools::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

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

    let info = skopeo_inspect(&reference);
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
