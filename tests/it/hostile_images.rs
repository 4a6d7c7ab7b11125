//! Hostile and unlucky images read by `layerport zip` (issue #16, the image-reading half): each class
//! must end in a refusal naming the input with a hint (or a harmless success), within a time limit and
//! a peak RSS bound, leaving nothing in TMPDIR or beside the output.

use std::ffi::OsStr;
use std::fs;
use std::io::Read as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::images::*;
use crate::support::tools;
use tempfile::TempDir;

const MAX_RSS_KB: i64 = 512 * 1024;
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// What a guarded run ended with.
pub(crate) struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident set size of the process, in KiB.
    rss_kb: i64,
    /// The most disk space seen in use under TMPDIR and the output directory while it ran.
    pub scratch_peak: u64,
}

/// A scratch area: `TMPDIR` for the process (checked empty afterwards) and room for inputs and
/// outputs.
pub(crate) struct Case {
    dir: TempDir,
}

impl Case {
    pub(crate) fn new() -> Case {
        let case = Case {
            dir: TempDir::new().unwrap(),
        };
        fs::create_dir_all(case.tmpdir()).unwrap();
        fs::create_dir_all(case.path("out")).unwrap();
        case
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn tmpdir(&self) -> PathBuf {
        self.path("tmpdir")
    }

    /// A layout holding `img` tagged `t`; returns its `oci:` reference.
    fn layout(&self, name: &str, img: &Img) -> String {
        let dir = self.path(name);
        oci_layout(&dir, "t", img);
        format!("oci:{}:t", dir.display())
    }

    /// Runs layerport with TMPDIR set, under a time limit, measuring peak RSS (wait4's rusage).
    pub(crate) fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Outcome {
        let stdout_path = self.path("stdout");
        let stderr_path = self.path("stderr");
        let mut cmd = tools::layerport();
        cmd.env("TMPDIR", self.tmpdir())
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).unwrap())
            .stderr(fs::File::create(&stderr_path).unwrap());
        // Reaped by wait4 below, which also gives the peak RSS that `Child::wait` does not.
        #[allow(clippy::zombie_processes)]
        let child = cmd.spawn().expect("run layerport");
        let pid = child.id() as libc::pid_t;
        let start = Instant::now();
        let mut scratch_peak = 0;
        let (status, usage) = loop {
            scratch_peak = scratch_peak.max(disk_use(&self.tmpdir()) + disk_use(&self.path("out")));
            let mut status = 0;
            // SAFETY: plain syscall on our own child with valid out-pointers.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            let got = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
            if got == pid {
                break (status, usage);
            }
            assert!(got == 0, "wait4 failed");
            if start.elapsed() > TIME_LIMIT {
                unsafe { libc::kill(pid, libc::SIGKILL) };
                unsafe { libc::waitpid(pid, &mut status, 0) };
                panic!(
                    "{cmd:?} still running after {TIME_LIMIT:?} (a hang); stderr so far:\n{}",
                    fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let status = std::process::ExitStatus::from_raw(status);
        let out = Outcome {
            code: status.code().unwrap_or(-1),
            stdout: fs::read_to_string(&stdout_path).unwrap(),
            stderr: fs::read_to_string(&stderr_path).unwrap(),
            rss_kb: usage.ru_maxrss,
            scratch_peak,
        };
        assert!(
            out.rss_kb <= MAX_RSS_KB,
            "{cmd:?} peaked at {} MiB RSS (bound {} MiB); stderr:\n{}",
            out.rss_kb / 1024,
            MAX_RSS_KB / 1024,
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "panic:\n{}", out.stderr);
        out
    }

    /// `layerport zip IMAGE -o out/layer.zip [extra]`, expected to be refused: exit 1, an error
    /// naming `names` with a hint, no zip, nothing in TMPDIR or beside the output.
    fn zip_refused(&self, image: &str, extra: &[&str], names: &[&str]) -> String {
        let zip = self.path("out/layer.zip");
        let mut args = vec!["zip".to_string(), image.to_string(), "-o".into()];
        args.push(zip.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = self.run(&args);
        let err = out.stderr;
        assert_eq!(out.code, 1, "exit code; stderr:\n{err}");
        assert!(out.stdout.is_empty(), "stdout on failure: {}", out.stdout);
        assert!(err.contains("error:") && err.contains("hint:"), "{err}");
        for name in names {
            assert!(
                err.contains(name),
                "the error does not name {name:?}:\n{err}"
            );
        }
        self.assert_nothing_left();
        err
    }

    fn zip_ok(&self, image: &str) -> PathBuf {
        let zip = self.path("out/layer.zip");
        let args = [
            "zip".to_string(),
            image.to_string(),
            "-o".into(),
            zip.display().to_string(),
        ];
        let out = self.run(&args);
        assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
        assert!(zip.is_file());
        assert_eq!(listing(&self.tmpdir()), Vec::<String>::new(), "TMPDIR");
        zip
    }

    pub(crate) fn assert_nothing_left(&self) {
        assert_eq!(listing(&self.tmpdir()), Vec::<String>::new(), "TMPDIR");
        assert_eq!(
            listing(&self.path("out")),
            Vec::<String>::new(),
            "output dir"
        );
    }
}

/// Bytes of disk allocated to the files under `dir` (sparse holes not counted).
fn disk_use(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_use(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

pub(crate) fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn zip_names(zip: &Path) -> Vec<String> {
    let mut archive = zip::ZipArchive::new(fs::File::open(zip).unwrap()).unwrap();
    (0..archive.len())
        .map(|i| archive.by_index(i).unwrap().name().unwrap().to_string())
        .collect()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// The digest (`sha256:...`) of layer `i` of `img` as stored.
fn layer_digest(img: &Img, i: usize) -> String {
    digest(&img.blobs()[i].0)
}

// ---- 1. whiteouts ----

#[test]
fn a_whiteout_of_something_absent_is_a_no_op() {
    let case = Case::new();
    let img = Img::new(
        "amd64",
        vec![
            layer_tar(&[dir("opt/"), file("opt/a", "a")]),
            layer_tar(&[
                dir("opt/"),
                marker("opt/.wh.ghost"),
                marker(".wh.nowhere"),
                marker("opt/missing-dir/.wh.x"),
            ]),
        ],
    );
    let zip = case.zip_ok(&case.layout("l", &img));
    assert_eq!(zip_names(&zip), ["a"]);
}

#[test]
fn whiteouts_that_are_not_file_names_are_refused() {
    for name in ["opt/.wh..", "opt/.wh...", "opt/.wh."] {
        let case = Case::new();
        let img = Img::new(
            "amd64",
            vec![
                layer_tar(&[dir("opt/"), file("opt/a", "a")]),
                layer_tar(&[dir("opt/"), E::RawName(name)]),
            ],
        );
        let image = case.layout("l", &img);
        let err = case.zip_refused(&image, &[], &[&layer_digest(&img, 1), name]);
        assert!(err.contains("not a file name"), "{name}: {err}");
        // `check` applies the layers the same way.
        let out = case.run(&["check", &image]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(
            out.stderr.contains("not a file name") && out.stderr.contains("hint:"),
            "{}",
            out.stderr
        );
        case.assert_nothing_left();
    }
}

// ---- 2. blobs that are not regular files inside the layout ----

fn simple_image() -> Img {
    Img::new("amd64", vec![layer_tar(&[dir("opt/"), file("opt/a", "a")])])
}

#[test]
fn fifo_blobs_and_index_are_refused_without_blocking() {
    let img = simple_image();
    let layer_hex = layer_digest(&img, 0)[7..].to_string();
    // The manifest: the one blob index.json names.
    let manifest_hex = |layout: &Path| {
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        index["manifests"][0]["digest"].as_str().unwrap()[7..].to_string()
    };
    for what in ["layer", "manifest", "index.json"] {
        let case = Case::new();
        let image = case.layout("l", &img);
        let layout = case.path("l");
        let victim = match what {
            "layer" => layout.join("blobs/sha256").join(&layer_hex),
            "manifest" => layout.join("blobs/sha256").join(manifest_hex(&layout)),
            _ => layout.join("index.json"),
        };
        fs::remove_file(&victim).unwrap();
        mkfifo(&victim);
        let err = case.zip_refused(&image, &[], &[&image]);
        assert!(err.contains("FIFO"), "{what}: {err}");
        let out = case.run(&["check", &image]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains("FIFO"), "{what}: {}", out.stderr);
    }
}

#[test]
fn blobs_leading_out_of_the_layout_are_refused() {
    let img = simple_image();
    let layer_hex = layer_digest(&img, 0)[7..].to_string();
    // The same bytes outside the layout: they would verify, but are not the layout's to read.
    for what in ["blob", "blobs dir"] {
        let case = Case::new();
        let image = case.layout("l", &img);
        let blobs = case.path("l/blobs");
        let elsewhere = case.path("elsewhere");
        if what == "blob" {
            fs::create_dir_all(&elsewhere).unwrap();
            let blob = blobs.join("sha256").join(&layer_hex);
            fs::rename(&blob, elsewhere.join("layer")).unwrap();
            std::os::unix::fs::symlink(elsewhere.join("layer"), &blob).unwrap();
        } else {
            fs::rename(&blobs, &elsewhere).unwrap();
            std::os::unix::fs::symlink(&elsewhere, &blobs).unwrap();
        }
        let err = case.zip_refused(&image, &[], &[&image]);
        assert!(err.contains("leads out of the layout"), "{what}: {err}");
    }
    // A symlink inside the layout is fine.
    let case = Case::new();
    let image = case.layout("l", &img);
    let sha = case.path("l/blobs/sha256");
    fs::rename(sha.join(&layer_hex), sha.join("real")).unwrap();
    std::os::unix::fs::symlink("real", sha.join(&layer_hex)).unwrap();
    case.zip_ok(&image);
}

#[test]
fn a_docker_archive_that_is_not_a_regular_file_is_refused() {
    let case = Case::new();
    let fifo = case.path("image.tar");
    mkfifo(&fifo);
    let image = format!("docker-archive:{}", fifo.display());
    let err = case.zip_refused(&image, &[], &[&image]);
    assert!(err.contains("FIFO"), "{err}");
}

// ---- 4. header records and paths past the system's limits ----

/// A raw tar header block.
fn header_block(kind: tar::EntryType, name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    h.as_bytes().to_vec()
}

#[test]
fn a_huge_gnu_long_name_record_is_refused_before_it_is_read() {
    let case = Case::new();
    // A header claiming 1 GiB of name, followed by 16 MiB of it: a small gzip layer.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_cksum();
    tar.append_data(&mut h, "opt/", std::io::empty()).unwrap();
    let mut layer = tar.into_inner().unwrap();
    layer.truncate(layer.len() - 1024); // no end-of-archive blocks yet
    layer.extend(header_block(
        tar::EntryType::GNULongName,
        "././@LongLink",
        1 << 30,
    ));
    layer.extend(std::iter::repeat_n(b'n', 16 << 20));
    let img = Img::new("amd64", vec![layer]);
    let image = case.layout("l", &img);
    let err = case.zip_refused(&image, &[], &[&image, &layer_digest(&img, 0), "nnnn"]);
    assert!(
        err.contains("GNU long-name record of 1073741824 bytes"),
        "{err}"
    );
}

#[test]
fn paths_and_names_past_the_system_limits_are_refused() {
    let long_path: &'static str = Box::leak(format!("opt/{}x", "d/".repeat(2100)).into_boxed_str());
    let long_name: &'static str = Box::leak(format!("opt/{}", "n".repeat(256)).into_boxed_str());
    for (path, says) in [(long_path, "PATH_MAX"), (long_name, "NAME_MAX")] {
        let case = Case::new();
        let img = Img::new("amd64", vec![layer_tar(&[dir("opt/"), file(path, "x")])]);
        let image = case.layout("l", &img);
        let err = case.zip_refused(&image, &[], &[&image, &layer_digest(&img, 0), &path[..60]]);
        assert!(err.contains(says), "{err}");
    }
}

// ---- 3. contents that cannot fit in a zip are not spooled ----

/// Counts and hashes what passes (the layer's diff_id) on its way to the gzip file.
struct Tee<W> {
    inner: W,
    hasher: sha2::Sha256,
}

impl<W: std::io::Write> std::io::Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A layout whose one gzip layer is written by `fill` as it streams (never whole in memory).
fn streamed_layout(
    case: &Case,
    fill: impl FnOnce(&mut tar::Builder<&mut dyn std::io::Write>),
) -> (String, String) {
    let dir = case.path("l");
    init_layout(&dir);
    let gz_path = case.path("layer.gz");
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(&gz_path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tee = Tee {
        inner: gz,
        hasher: <sha2::Sha256 as sha2::Digest>::new(),
    };
    {
        let mut b = tar::Builder::new(&mut tee as &mut dyn std::io::Write);
        fill(&mut b);
        b.finish().unwrap();
    }
    let diff_id = format!("sha256:{:x}", sha2::Digest::finalize(tee.hasher));
    tee.inner.finish().unwrap();
    let gz = fs::read(&gz_path).unwrap();
    fs::remove_file(&gz_path).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let mut config_desc = put_blob(&dir, &config);
    config_desc["mediaType"] = serde_json::json!(OCI_CONFIG);
    let mut layer_desc = put_blob(&dir, &gz);
    layer_desc["mediaType"] = serde_json::json!(LAYER_GZIP);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": config_desc, "layers": [layer_desc.clone()],
    }))
    .unwrap();
    let mut desc = put_blob(&dir, &manifest);
    desc["mediaType"] = serde_json::json!(OCI_MANIFEST);
    write_index(&dir, vec![tagged(desc, "t")]);
    (
        format!("oci:{}:t", dir.display()),
        layer_desc["digest"].as_str().unwrap().to_string(),
    )
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h
}

#[test]
fn a_sparse_terabyte_file_is_never_spooled() {
    let case = Case::new();
    const TB: u64 = 1 << 40;
    let (image, layer) = streamed_layout(&case, |b| {
        b.append_data(&mut file_header(1), "opt/small", &b"s"[..])
            .unwrap();
        // A GNU sparse entry: 512 stored bytes at the end of a 1 TiB file.
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_path("opt/huge").unwrap();
        h.set_size(512);
        h.set_mode(0o644);
        h.set_mtime(0);
        let gnu = h.as_gnu_mut().unwrap();
        let base256 = |field: &mut [u8; 12], v: u64| {
            field.fill(0);
            field[0] = 0x80;
            field[4..].copy_from_slice(&v.to_be_bytes());
        };
        base256(&mut gnu.sparse[0].offset, TB - 512);
        base256(&mut gnu.sparse[0].numbytes, 512);
        base256(&mut gnu.realsize, TB);
        h.set_cksum();
        b.append(&h, &[7u8; 512][..]).unwrap();
    });
    let err = case.zip_refused(&image, &[], &[&image, &layer, "\"opt/huge\""]);
    assert!(err.contains(&(TB + 1).to_string()), "{err}");
}

#[test]
fn kept_contents_over_the_limit_are_refused_as_they_arrive() {
    let case = Case::new();
    // Two files of 132 MB of zeros (a small gzip), together over the 262144000-byte limit.
    const SIZE: u64 = 132_000_000;
    let (image, layer) = streamed_layout(&case, |b| {
        for name in ["opt/a", "opt/b", "opt/c"] {
            b.append_data(&mut file_header(SIZE), name, std::io::repeat(0).take(SIZE))
                .unwrap();
        }
    });
    let err = case.zip_refused(&image, &[], &[&image, &layer, "\"opt/b\""]);
    assert!(err.contains("first passed in layer"), "{err}");
}

// ---- 4b. deep trees: memory and time stay linear ----

#[test]
fn many_deep_paths_are_refused_before_memory_grows() {
    let case = Case::new();
    // 400 chains of 1,900 nested directories (each path under PATH_MAX): holding every ancestor's
    // full path would take over 1.4 GB.
    let deep = "d/".repeat(1900);
    let (image, layer) = streamed_layout(&case, |b| {
        b.append_data(&mut file_header(1), "opt/a", &b"a"[..])
            .unwrap();
        for i in 0..400 {
            let path = format!("usr/c{i}/{deep}f");
            b.append_data(&mut file_header(1), &path, &b"x"[..])
                .unwrap();
        }
    });
    let err = case.zip_refused(&image, &[], &[&image, &layer, "usr/c"]);
    assert!(err.contains("bytes of paths"), "{err}");
}

#[test]
fn thousands_of_files_at_the_bottom_of_a_deep_tree_are_applied_quickly() {
    let case = Case::new();
    let deep = "d/".repeat(1300);
    let (image, _) = streamed_layout(&case, |b| {
        b.append_data(&mut file_header(1), "opt/a", &b"a"[..])
            .unwrap();
        for i in 0..10_000 {
            let path = format!("usr/{deep}f{i}");
            b.append_data(&mut file_header(1), &path, &b"x"[..])
                .unwrap();
        }
    });
    let zip = case.zip_ok(&image);
    assert_eq!(zip_names(&zip), ["a"]);
}

#[test]
fn files_outside_path_are_spooled_only_when_a_hard_link_needs_them() {
    let case = Case::new();
    // 300 MB of zeros elsewhere in the image, and a hard link in /opt to one small file: the
    // second pass keeps that file, not the whole image.
    const SIZE: u64 = 100_000_000;
    let (image, _) = streamed_layout(&case, |b| {
        for name in ["usr/big1", "usr/big2", "usr/big3"] {
            b.append_data(&mut file_header(SIZE), name, std::io::repeat(0).take(SIZE))
                .unwrap();
        }
        b.append_data(&mut file_header(5), "usr/small", &b"small"[..])
            .unwrap();
        let mut h = file_header(0);
        h.set_entry_type(tar::EntryType::Link);
        b.append_link(&mut h, "opt/linked", "usr/small").unwrap();
    });
    let zip = case.path("out/layer.zip");
    let out = case.run(&["zip", &image, "-o", &zip.display().to_string()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(zip_names(&zip), ["linked"]);
    assert!(
        out.scratch_peak < 50_000_000,
        "{} bytes of scratch for a 5-byte zip",
        out.scratch_peak
    );
}

/// Near the limit on entries, a zip of them all stays within the memory bound.
#[test]
fn nine_hundred_thousand_empty_files_stay_within_memory() {
    let case = Case::new();
    let (image, _) = streamed_layout(&case, |b| {
        for i in 0..900_000u32 {
            let path = format!("opt/d{}/file-with-a-longer-name-{i}", i % 1000);
            b.append_data(&mut file_header(0), &path, std::io::empty())
                .unwrap();
        }
    });
    let zip = case.path("out/layer.zip");
    let out = case.run(&["zip", &image, "-o", &zip.display().to_string()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    eprintln!("peak RSS {} MiB", out.rss_kb / 1024);
}

#[test]
fn a_manifest_naming_a_layer_thousands_of_times_is_refused() {
    let case = Case::new();
    let layer = layer_tar(&[dir("opt/"), file("opt/a", "a")]);
    let img = Img::new("amd64", vec![layer; 5000]);
    let image = case.layout("l", &img);
    let err = case.zip_refused(&image, &[], &[&image]);
    assert!(err.contains("lists 5000 layers"), "{err}");
}

#[test]
fn zeros_after_the_end_of_a_layer_are_not_read_forever() {
    let case = Case::new();
    // A valid tar and then 4 MiB of zeros (a gzip bomb in miniature: the real one is endless).
    let mut layer = layer_tar(&[dir("opt/"), file("opt/a", "a")]);
    layer.extend(std::iter::repeat_n(0u8, 4 << 20));
    let img = Img::new("amd64", vec![layer]);
    let image = case.layout("l", &img);
    let err = case.zip_refused(&image, &[], &[&image, &layer_digest(&img, 0)]);
    assert!(err.contains("after its end-of-archive"), "{err}");
}

#[test]
fn a_blob_over_lambdas_image_limit_is_refused_unread() {
    let case = Case::new();
    let img = simple_image();
    let image = case.layout("l", &img);
    let blob = case
        .path("l/blobs/sha256")
        .join(&layer_digest(&img, 0)[7..]);
    // 11 GiB of holes: reading it would take minutes.
    fs::OpenOptions::new()
        .write(true)
        .open(&blob)
        .unwrap()
        .set_len(11 << 30)
        .unwrap();
    let err = case.zip_refused(&image, &[], &[&image, &layer_digest(&img, 0)]);
    assert!(err.contains("10 GiB"), "{err}");
}

#[test]
fn a_docker_archive_of_countless_members_is_refused() {
    let case = Case::new();
    let path = case.path("image.tar");
    let mut b = tar::Builder::new(std::io::BufWriter::new(fs::File::create(&path).unwrap()));
    for i in 0..100_001u32 {
        b.append_data(&mut file_header(0), format!("m{i}"), std::io::empty())
            .unwrap();
    }
    b.into_inner().unwrap();
    let image = format!("docker-archive:{}", path.display());
    let err = case.zip_refused(&image, &[], &[&image]);
    assert!(err.contains("more than 100000 members"), "{err}");
}
