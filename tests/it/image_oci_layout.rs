//! Proves that `layerport image --oci-layout` writes a valid, deterministic OCI layout whose layers follow
//! the zip → layer rules, checked by independent consumers (skopeo, oci-image-tool, umoci, unzip).

use crate::support::tools::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const MANIFEST_MT: &str = "application/vnd.oci.image.manifest.v1+json";
const LAYER_MT: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Builds `zips` (names under testdata/good) into TMP/img:TAG with extra flags; returns the layout dir
/// and the manifest digest printed on stdout.
fn build(tmp: &Path, tag: &str, zips: &[&str], extra: &[&str]) -> (PathBuf, String) {
    let layout = tmp.join("img");
    let mut args: Vec<String> = vec!["image".into()];
    args.extend(
        zips.iter()
            .map(|z| testdata(&format!("good/{z}")).display().to_string()),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("--oci-layout".into());
    args.push(format!("{}:{tag}", layout.display()));
    let stdout = run_ok(&args);
    let digest = stdout.trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "stdout is not a digest: {stdout:?}"
    );
    (layout, digest)
}

#[test]
fn skopeo_and_oci_image_tool_accept_the_layout() {
    let tmp = TempDir::new().unwrap();
    let (layout, digest) = build(
        tmp.path(),
        "v1",
        &["infozip-symlinks.zip", "stored.zip"],
        &[],
    );
    let info = skopeo_inspect(&format!("oci:{}:v1", layout.display()));
    assert_eq!(info["Digest"], digest.as_str());
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
    tool_ok(
        "oci-image-tool",
        "oci-image-tool",
        &[
            "validate".as_ref(),
            "--type".as_ref(),
            "image".as_ref(),
            "--ref".as_ref(),
            "name=v1".as_ref(),
            layout.as_os_str(),
        ],
    );
}

#[test]
fn umoci_unpacks_infozip_symlinks_as_expected() {
    let tmp = TempDir::new().unwrap();
    let zip = testdata("good/infozip-symlinks.zip");
    let (layout, _) = build(tmp.path(), "t", &["infozip-symlinks.zip"], &[]);
    let rootfs = umoci_unpack(&layout, "t", &tmp.path().join("bundle"));
    let all = tree(&rootfs);
    assert_eq!(
        all.keys().next().map(String::as_str),
        Some("opt"),
        "only opt/ at top: {all:?}"
    );
    assert!(all.keys().all(|k| k == "opt" || k.starts_with("opt/")));
    let opt = subtree(&all, "opt");
    let link = |p: &str, target: &str| {
        let n = &opt[p];
        assert_eq!(n.kind, Kind::Symlink, "{p}");
        assert_eq!(n.data, target.as_bytes(), "{p} target");
    };
    link("python/mod/link.py", "__init__.py");
    link("lib/libfoo.so", "libfoo.so.1");
    link("share/escape", "../../etc/passwd");
    for (p, mode) in [
        ("bin/tool", 0o755),
        ("bin/suid", 0o755),
        ("share/readonly.txt", 0o644),
        ("lib/libfoo.so.1", 0o644),
        ("python/mod/__init__.py", 0o644),
        ("python/mod/data.txt", 0o644),
    ] {
        assert_eq!(opt[p].kind, Kind::File, "{p}");
        assert_eq!(opt[p].mode, mode, "{p} mode {:o}", opt[p].mode);
        let want = tool_bytes(
            "unzip",
            "unzip",
            &[OsStr::new("-p"), zip.as_os_str(), OsStr::new(p)],
        );
        assert_eq!(opt[p].data, want, "{p} content differs from `unzip -p`");
    }
    for d in ["bin", "lib", "python", "python/mod", "share"] {
        assert_eq!((opt[d].kind, opt[d].mode), (Kind::Dir, 0o755), "{d}");
    }
    assert_eq!(
        opt.len(),
        14,
        "unexpected entries: {:?}",
        opt.keys().collect::<Vec<_>>()
    );
    // umoci agrees with the unzip extraction on every path, kind, content and link target.
    assert_eq!(shape(&opt), shape(&unzip_tree(&zip, tmp.path())));
}

#[test]
fn manifest_config_and_index_follow_the_image_rules() {
    let tmp = TempDir::new().unwrap();
    let zips = ["infozip-symlinks.zip", "stored.zip"];
    let (layout, digest) = build(tmp.path(), "v1", &zips, &[]);
    let index_bytes = fs::read(layout.join("index.json")).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&index_bytes).unwrap();
    let (desc, manifest) = manifest_for_tag(&layout, "v1");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(desc["digest"], digest.as_str());
    assert_eq!(desc["mediaType"], MANIFEST_MT);
    let manifest_bytes = blob(&layout, &digest);
    assert_eq!(desc["size"], manifest_bytes.len() as u64);
    assert_eq!(
        manifest["mediaType"], MANIFEST_MT,
        "must be an image manifest, never an index"
    );
    assert_eq!(manifest["schemaVersion"], 2);
    assert!(manifest.get("manifests").is_none());
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config_bytes = blob(&layout, config_digest);
    assert_eq!(manifest["config"]["size"], config_bytes.len() as u64);
    // Canonical JSON: re-serialising with sorted keys and no whitespace gives the same bytes.
    for (name, bytes) in [
        ("index.json", &index_bytes),
        ("manifest", &manifest_bytes),
        ("config", &config_bytes),
    ] {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(
            canonical(&v).as_bytes(),
            bytes.as_slice(),
            "{name} is not canonical JSON"
        );
    }
    let config = config_of(&layout, &manifest);
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("linux"), Some("amd64"))
    );
    let layers = manifest["layers"].as_array().unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let history = config["history"].as_array().unwrap();
    assert_eq!((layers.len(), diff_ids.len(), history.len()), (2, 2, 2));
    assert_eq!(config["rootfs"]["type"], "layers");
    let ann = &manifest["annotations"];
    for (i, zip_name) in zips.iter().enumerate() {
        let layer = &layers[i];
        assert_eq!(layer["mediaType"], LAYER_MT);
        let gz = blob(&layout, layer["digest"].as_str().unwrap());
        assert_eq!(layer["size"], gz.len() as u64);
        let tar = gunzip(&gz);
        assert_eq!(
            diff_ids[i],
            format!("sha256:{}", sha256_hex(&tar)),
            "diff_id {i}"
        );
        let zip_bytes = fs::read(testdata(&format!("good/{zip_name}"))).unwrap();
        let hex = sha256_hex(&zip_bytes);
        assert_eq!(ann[format!("dev.layerport.layer.{i}.source")], *zip_name);
        assert_eq!(
            ann[format!("dev.layerport.layer.{i}.code-sha256")],
            B64.encode(Sha256::digest(&zip_bytes))
        );
        assert_eq!(
            history[i]["created_by"],
            format!("layerport: {zip_name} sha256:{hex}")
        );
        let created_by = history[i]["created_by"].as_str().unwrap();
        assert!(
            !created_by.contains('/'),
            "history names a path: {created_by}"
        );
    }
    // Layer order follows the command line: the first layer is infozip-symlinks.zip.
    let tars = layer_tars(&layout, "v1");
    assert!(
        tar_entries(&tars[0])
            .iter()
            .any(|e| e.path == "opt/share/escape")
    );
    assert!(
        tar_entries(&tars[1])
            .iter()
            .any(|e| e.path == "opt/python/pkg/notes.txt")
    );
    assert_eq!(
        fs::read_to_string(layout.join("oci-layout"))
            .unwrap()
            .trim(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
}

#[test]
fn json_output_describes_what_was_written() {
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("img");
    let zip = testdata("good/infozip-symlinks.zip");
    let out = run_ok(&[
        "--json".as_ref(),
        "image".as_ref(),
        zip.as_os_str(),
        "--oci-layout".as_ref(),
        format!("{}:j", layout.display()).as_ref(),
    ]);
    let doc = parse_json(&out);
    let (desc, manifest) = manifest_for_tag(&layout, "j");
    assert_eq!(doc["manifestDigest"], desc["digest"]);
    assert_eq!(doc["configDigest"], manifest["config"]["digest"]);
    assert_eq!(doc["output"]["kind"], "oci-layout");
    assert!(
        doc["output"]["reference"]
            .as_str()
            .unwrap()
            .ends_with("img:j"),
        "{doc}"
    );
    assert_eq!(doc["platform"], "linux/amd64");
    let l = &doc["layers"][0];
    assert_eq!(doc["layers"].as_array().unwrap().len(), 1);
    assert_eq!(l["digest"], manifest["layers"][0]["digest"]);
    let tar = gunzip(&blob(&layout, l["digest"].as_str().unwrap()));
    assert_eq!(l["diffId"], format!("sha256:{}", sha256_hex(&tar)));
    assert_eq!(l["uncompressedSize"], tar.len() as u64);
    assert_eq!(l["size"], manifest["layers"][0]["size"]);
    let zip_bytes = fs::read(&zip).unwrap();
    assert_eq!(l["sources"][0]["source"], "infozip-symlinks.zip");
    assert_eq!(l["sources"][0]["sha256"], sha256_hex(&zip_bytes));
    assert_eq!(
        l["sources"][0]["codeSha256"],
        B64.encode(Sha256::digest(&zip_bytes))
    );
    let mut warnings: Vec<(String, String)> = l["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["code"].as_str().unwrap().into(),
                w["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    warnings.sort();
    let want: Vec<(String, String)> = [
        ("mode-fixed", "bin/suid"),
        ("mode-fixed", "bin/tool"),
        ("mode-fixed", "share/readonly.txt"),
        ("symlink-outside", "share/escape"),
    ]
    .iter()
    .map(|(c, p)| (c.to_string(), p.to_string()))
    .collect();
    assert_eq!(warnings, want);
}

#[test]
fn layer_tars_are_sorted_root_owned_with_explicit_parents() {
    let tmp = TempDir::new().unwrap();
    let zips = [
        "infozip-symlinks.zip",
        "python-zipfile.zip",
        "windows-style.zip",
        "longpath.zip",
    ];
    let (layout, _) = build(tmp.path(), "t", &zips, &[]);
    let tars = layer_tars(&layout, "t");
    assert_eq!(tars.len(), zips.len(), "one layer per zip");
    for tar in &tars {
        assert_layer_rules(&tar_entries(tar), &["opt/"]);
    }
}

#[test]
fn windows_style_zip_gets_lambda_modes_and_slashes() {
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("img");
    let out = run_ok(&[
        "--json".as_ref(),
        "image".as_ref(),
        testdata("good/windows-style.zip").as_os_str(),
        "--oci-layout".as_ref(),
        format!("{}:w", layout.display()).as_ref(),
    ]);
    let t = subtree(&tar_tree(&tar_entries(&layer_tars(&layout, "w")[0])), "opt");
    for (p, mode) in [
        ("extensions/my-ext", 0o755),
        ("bin/runner", 0o755),
        ("bootstrap", 0o755),
        ("python/lib/tool.sh", 0o755),
        ("python/lib/helper.py", 0o644),
        ("README.txt", 0o644),
        ("python/lib/win.py", 0o644),
    ] {
        let n = t
            .get(p)
            .unwrap_or_else(|| panic!("{p} missing from {:?}", t.keys()));
        assert_eq!(
            (n.kind, n.mode),
            (Kind::File, mode),
            "{p} mode {:o}",
            n.mode
        );
    }
    for d in ["bin", "extensions", "python", "python/lib"] {
        assert_eq!(
            (t[d].kind, t[d].mode, t[d].mtime),
            (Kind::Dir, 0o755, SYNTH_MTIME),
            "{d}"
        );
    }
    assert!(
        !t.keys().any(|k| k.contains('\\')),
        "backslash kept: {:?}",
        t.keys()
    );
    assert_eq!(t.len(), 11);
    let doc = parse_json(&out);
    let warnings = doc["layers"][0]["warnings"].as_array().unwrap();
    let has = |code: &str, path: &str| {
        warnings
            .iter()
            .any(|w| w["code"] == code && w["path"] == path)
    };
    for p in [
        "extensions/my-ext",
        "bin/runner",
        "bootstrap",
        "python/lib/tool.sh",
    ] {
        assert!(
            has("made-executable", p),
            "no made-executable warning for {p}: {warnings:?}"
        );
    }
    assert!(
        has("backslash", "python/lib/win.py"),
        "no backslash warning: {warnings:?}"
    );
}

#[test]
fn prefix_moves_contents_and_platform_sets_architecture() {
    let tmp = TempDir::new().unwrap();
    let (layout, _) = build(
        tmp.path(),
        "t",
        &["override-a.zip"],
        &["--prefix", "/var/task", "--platform", "linux/arm64"],
    );
    let entries = tar_entries(&layer_tars(&layout, "t")[0]);
    assert_layer_rules(&entries, &["var/", "var/task/"]);
    assert!(
        entries.iter().all(|e| e.path.starts_with("var/")),
        "entry outside var/"
    );
    let rootfs = umoci_unpack(&layout, "t", &tmp.path().join("bundle"));
    assert_eq!(
        fs::read(rootfs.join("var/task/python/shared.txt")).unwrap(),
        b"from a\n"
    );
    assert!(!rootfs.join("opt").exists());
    let info = skopeo_inspect(&format!("oci:{}:t", layout.display()));
    assert_eq!(info["Architecture"], "arm64");
    let (_, manifest) = manifest_for_tag(&layout, "t");
    assert_eq!(config_of(&layout, &manifest)["architecture"], "arm64");
}

fn assert_override_tree(opt: &Tree) {
    let f = |p: &str| {
        opt.get(p)
            .unwrap_or_else(|| panic!("{p} missing: {:?}", opt.keys()))
    };
    assert_eq!(f("python/shared.txt").data, b"from b\n");
    assert_eq!(f("python/only_a.txt").kind, Kind::File);
    assert_eq!(f("python/only_b.txt").kind, Kind::File);
    assert_eq!(f("python/thing").kind, Kind::File);
    assert!(!opt.contains_key("python/thing/inner.txt"));
    assert_eq!(f("python/was_file").kind, Kind::Dir);
    assert_eq!(f("python/was_file/now_dir.txt").kind, Kind::File);
}

#[test]
fn squash_merges_layers_like_an_overlay_would() {
    let tmp = TempDir::new().unwrap();
    let zips = ["override-a.zip", "override-b.zip"];
    let (layout, _) = build(tmp.path(), "sq", &zips, &["--squash"]);
    let tars = layer_tars(&layout, "sq");
    assert_eq!(tars.len(), 1, "--squash must give one layer");
    let entries = tar_entries(&tars[0]);
    assert_layer_rules(&entries, &["opt/"]);
    let squashed = umoci_unpack(&layout, "sq", &tmp.path().join("b-sq"));
    assert_override_tree(&subtree(&tree(&squashed), "opt"));
    assert_eq!(
        subtree(&tar_tree(&entries), "opt"),
        subtree(&tree(&squashed), "opt")
    );

    let tmp2 = TempDir::new().unwrap();
    let (layout2, _) = build(tmp2.path(), "two", &zips, &[]);
    assert_eq!(layer_tars(&layout2, "two").len(), 2);
    let layered = umoci_unpack(&layout2, "two", &tmp2.path().join("b-two"));
    assert_override_tree(&subtree(&tree(&layered), "opt"));
    assert_eq!(
        tree(&layered),
        tree(&squashed),
        "umoci's layering differs from --squash"
    );
}

#[test]
fn long_paths_round_trip_through_umoci() {
    let tmp = TempDir::new().unwrap();
    let zip = testdata("good/longpath.zip");
    let (layout, _) = build(tmp.path(), "t", &["longpath.zip"], &[]);
    let opt = subtree(
        &tree(&umoci_unpack(&layout, "t", &tmp.path().join("b"))),
        "opt",
    );
    assert!(
        opt.keys().any(|k| k.len() == 250),
        "250-byte path lost: {:?}",
        opt.keys()
    );
    assert!(
        opt.keys()
            .any(|k| k.rsplit('/').next().unwrap().len() == 126)
    );
    assert_eq!(opt["python/link_to_long_module.py"].data.len(), 142);
    assert_eq!(shape(&opt), shape(&unzip_tree(&zip, tmp.path())));
    let from_tar = subtree(&tar_tree(&tar_entries(&layer_tars(&layout, "t")[0])), "opt");
    assert_eq!(from_tar, opt, "tar entries and umoci's tree differ");
}

#[test]
fn stored_and_python_zipfile_round_trip() {
    let tmp = TempDir::new().unwrap();
    let (layout, _) = build(
        tmp.path(),
        "t",
        &["stored.zip", "python-zipfile.zip"],
        &["--squash"],
    );
    let opt = subtree(
        &tree(&umoci_unpack(&layout, "t", &tmp.path().join("b"))),
        "opt",
    );
    let mut want = unzip_tree(&testdata("good/stored.zip"), tmp.path());
    want.extend(unzip_tree(&testdata("good/python-zipfile.zip"), tmp.path()));
    assert_eq!(shape(&opt), shape(&want));
    assert_eq!(opt["python/pkg/empty.txt"].data.len(), 0);
    assert_eq!(opt["python/pkg/big.txt"].data.len(), 80_000);
    assert_eq!(opt["python/pkg/run.sh"].mode, 0o755);
    assert_eq!(opt["python/pkg/core.py"].mode, 0o644);

    // python-zipfile.zip alone: python/pkg/ is not listed in the zip, so it is synthesised.
    let tmp2 = TempDir::new().unwrap();
    let (layout2, _) = build(tmp2.path(), "p", &["python-zipfile.zip"], &[]);
    let t = subtree(
        &tar_tree(&tar_entries(&layer_tars(&layout2, "p")[0])),
        "opt",
    );
    assert_eq!(
        (t["python/pkg"].kind, t["python/pkg"].mode),
        (Kind::Dir, 0o755)
    );
    assert_eq!(t["python/pkg"].mtime, SYNTH_MTIME, "synthesised dir mtime");
    assert_eq!(
        t["python"].mtime, PYZIP_MTIME,
        "listed dir keeps its own mtime"
    );
}

#[test]
fn same_inputs_give_identical_bytes() {
    let zips = ["infozip-symlinks.zip", "python-zipfile.zip", "longpath.zip"];
    let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let (la, da) = build(a.path(), "t", &zips, &[]);
    let (lb, db) = build(b.path(), "t", &zips, &[]);
    assert_eq!(da, db, "manifest digest changed between runs");
    let blobs = |l: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = fs::read_dir(l.join("blobs/sha256"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let (ba, bb) = (blobs(&la), blobs(&lb));
    assert_eq!(ba.len(), 2 + zips.len());
    assert!(ba == bb, "blob bytes differ between runs");
    assert_eq!(
        fs::read(la.join("index.json")).unwrap(),
        fs::read(lb.join("index.json")).unwrap()
    );
}

#[test]
fn source_date_epoch_overrides_every_mtime() {
    let zip = testdata("good/python-zipfile.zip");
    let build_env = |tmp: &Path, sde: Option<&str>| -> (PathBuf, String) {
        let layout = tmp.join("img");
        let mut cmd = layerport();
        cmd.args(["image".as_ref(), zip.as_os_str(), "--oci-layout".as_ref()])
            .arg(format!("{}:t", layout.display()));
        if let Some(v) = sde {
            cmd.env("SOURCE_DATE_EPOCH", v);
        }
        let (code, out, err) = run_cmd(&mut cmd);
        assert_eq!(code, 0, "{err}");
        (layout, out.trim().to_string())
    };
    let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let (la, da) = build_env(a.path(), Some("1700000000"));
    let (_, db) = build_env(b.path(), None);
    assert_ne!(da, db, "SOURCE_DATE_EPOCH did not change the digest");
    let entries = tar_entries(&layer_tars(&la, "t")[0]);
    assert!(entries.len() > 5);
    for e in &entries {
        assert_eq!(e.mtime, 1_700_000_000, "{} mtime", e.path);
    }
}

#[test]
fn mtimes_come_from_extended_timestamp_else_dos_time() {
    let tmp = TempDir::new().unwrap();
    let (layout, _) = build(
        tmp.path(),
        "t",
        &["infozip-symlinks.zip", "python-zipfile.zip"],
        &[],
    );
    let tars = layer_tars(&layout, "t");
    let info = tar_tree(&tar_entries(&tars[0]));
    let py = tar_tree(&tar_entries(&tars[1]));
    for p in [
        "opt/bin/tool",
        "opt/lib/libfoo.so",
        "opt/share",
        "opt/python/mod/__init__.py",
    ] {
        assert_eq!(
            info[p].mtime, INFOZIP_MTIME,
            "{p}: extended timestamp not used"
        );
    }
    for p in [
        "opt/python/pkg/core.py",
        "opt/python/pkg/big.txt",
        "opt/python",
    ] {
        assert_eq!(py[p].mtime, PYZIP_MTIME, "{p}: DOS time not read as UTC");
    }
    assert_eq!(
        (info["opt"].mtime, py["opt"].mtime),
        (SYNTH_MTIME, SYNTH_MTIME),
        "prefix dir mtime"
    );
}
