//! Proves the stand-in Lambda Python base (`support::lambda_base`): its config is shaped like the
//! AWS base image's, and the packing behind it is deterministic and leaves out what a layer cannot
//! hold.

use serde_json::json;
use std::fs;
use std::path::Path;
use tempfile::TempDir;

use crate::support::lambda_base::{MTIME, Overlay, base_env, lambda_base, pack_layer};
use crate::support::tools::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn the_base_config_is_shaped_like_the_aws_python_base() {
    let base = lambda_base();
    let config = parse_json(&tool_ok(
        "skopeo",
        "skopeo",
        &["inspect", "--config", &base.reference()],
    ));
    assert_eq!(config["architecture"], base.architecture);
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], json!(["/lambda-entrypoint.sh"]));
    assert_eq!(c["Cmd"], json!(["app.handler"]));
    assert_eq!(c["WorkingDir"], "/var/task");
    assert_eq!(c["Env"], json!(base_env(&base.python)));
    let info = skopeo_inspect(&base.reference());
    assert_eq!(info["Layers"], json!([base.layer_digest]));
    assert_eq!(info["Digest"], base.manifest_digest);
}

#[test]
fn packing_is_deterministic_and_leaves_out_what_a_layer_cannot_hold() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("a")).unwrap();
    fs::create_dir_all(root.join("var/log")).unwrap();
    for d in ["a", "var", "var/log"] {
        set_mode(&root.join(d), 0o755); // whatever the umask
    }
    fs::write(root.join("a/f"), "data").unwrap();
    set_mode(&root.join("a/f"), 0o640);
    fs::hard_link(root.join("a/f"), root.join("a/g")).unwrap();
    std::os::unix::fs::symlink("a/f", root.join("l")).unwrap();
    fs::write(root.join("var/log/trimmed.log"), "log").unwrap();
    tool_ok("mkfifo", "coreutils", &[s(&root.join("fifo"))]);
    let overlay = [("new.sh", Overlay::File(0o755, "#!/bin/sh\n"))];

    let (one, two) = (tmp.path().join("one.tar.gz"), tmp.path().join("two.tar.gz"));
    let packed = pack_layer(&root, &overlay, &one);
    assert_eq!(pack_layer(&root, &overlay, &two), packed);
    let bytes = fs::read(&one).unwrap();
    assert_eq!(bytes, fs::read(&two).unwrap(), "same tree, different bytes");
    assert_eq!(packed.digest, format!("sha256:{}", sha256_hex(&bytes)));
    assert_eq!(packed.size, bytes.len() as u64);
    let tar = gunzip(&bytes);
    assert_eq!(packed.diff_id, format!("sha256:{}", sha256_hex(&tar)));

    let entries = tar_entries(&tar);
    let summary: Vec<(&str, tar::EntryType, u32, Option<&str>)> = entries
        .iter()
        .map(|e| (e.path.as_str(), e.entry_type, e.mode, e.link.as_deref()))
        .collect();
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    assert_eq!(
        summary,
        vec![
            ("a/", Directory, 0o755, None),
            ("a/f", Regular, 0o640, None),
            ("a/g", Link, 0o640, Some("a/f")),
            ("l", Symlink, 0o777, Some("a/f")),
            ("new.sh", Regular, 0o755, None),
            ("var/", Directory, 0o755, None),
            ("var/log/", Directory, 0o755, None),
        ]
    );
    for e in &entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, MTIME), "{}", e.path);
        assert!(e.uname.is_empty() && e.gname.is_empty(), "{}", e.path);
    }
    assert_eq!(entries[1].data, b"data");
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}
