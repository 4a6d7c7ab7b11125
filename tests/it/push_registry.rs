//! `layerport image --push` against a real registry (docker-registry with htpasswd auth): a single
//! OCI image manifest checked by skopeo and umoci, idempotent second pushes proven from the
//! registry's access log, base images (OCI, Docker v2, pinned, multi-platform index, another
//! registry), and retries and digest checks through a fault-injecting proxy.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use crate::support::fault_proxy::{FaultProxy, ProxyFault};
use crate::support::registry::{
    PushHome, Registry, digest_of, layer_digests, push_args, statuses, umoci_image,
    write_docker_config, zip_path,
};
use crate::support::tools::{Kind, blob_path, tree};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

/// Files (path → bytes) of the zips applied in order, as they should appear under /opt.
fn zip_files(zips: &[&str]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for z in zips {
        let mut archive = zip::ZipArchive::new(fs::File::open(zip_path(z)).unwrap()).unwrap();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            if entry.is_file() {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                out.insert(entry.name().unwrap().to_string(), data);
            }
        }
    }
    out
}

/// Regular files under `root`, relative, with their bytes.
fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let files = tree(root).into_iter().filter(|(_, n)| n.kind == Kind::File);
    files.map(|(k, n)| (k, n.data)).collect()
}

#[test]
fn push_with_docker_config_auth_gives_one_oci_image_manifest() {
    let reg = Registry::start();
    let home = PushHome::default();
    reg.docker_config(&home.docker_dir(), &[]);
    let host = reg.host();
    let args = push_args(
        &["deps.zip", "ext.zip"],
        None,
        &format!("{host}/lambda/app:v1"),
    );
    let (code, stdout, stderr) = home.run(&[&host], &args);
    assert_eq!(code, 0, "push failed: {stderr}");
    let digest = stdout
        .strip_suffix('\n')
        .and_then(|l| l.strip_prefix(&format!("{host}/lambda/app@")))
        .unwrap_or_else(|| panic!("stdout is not {host}/lambda/app@sha256:…: {stdout:?}"));

    let raw = reg.raw_manifest("lambda/app:v1");
    assert_eq!(digest_of(&raw), digest);
    let manifest = parse(&raw);
    assert_eq!(manifest["mediaType"], OCI_MANIFEST, "{manifest}");
    assert!(manifest.get("manifests").is_none(), "an index: {manifest}");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "one layer per zip: {manifest}");
    assert!(
        layers.iter().all(|l| l["mediaType"] == OCI_LAYER),
        "{manifest}"
    );

    let inspect = reg.inspect("lambda/app:v1");
    assert_eq!(inspect["Digest"], digest);
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
    let config = reg.config("lambda/app:v1");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    let rootfs = reg.unpack("lambda/app:v1", &home.path("work"));
    let want = zip_files(&["deps.zip", "ext.zip"]);
    assert_eq!(
        files_under(&rootfs.join("opt")),
        want,
        "/opt differs from the zips"
    );
    let top: Vec<_> = fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, ["opt"], "the image holds more than /opt");
}

#[test]
fn second_identical_push_uploads_nothing() {
    let reg = Registry::start();
    let home = PushHome::default();
    reg.docker_config(&home.docker_dir(), &[]);
    let host = reg.host();
    let args = push_args(&["deps.zip"], None, &format!("{host}/app:v1"));
    let first = home.push_json(&[&host], &args);
    assert!(
        statuses(&first).values().all(|s| s == "uploaded"),
        "{first}"
    );
    assert_eq!(first["manifestPushed"], true);
    assert_eq!(first["output"]["kind"], "registry");
    let uploads = reg.upload_requests_for("app");
    assert!(
        uploads >= 4,
        "the log shows {uploads} upload requests for 2 blobs"
    );
    let manifest_puts = |r: &Registry| {
        let lines = r.access_lines();
        lines
            .iter()
            .filter(|l| l.method == "PUT" && l.uri.contains("/manifests/"))
            .count()
    };
    assert_eq!(manifest_puts(&reg), 1);

    let second = home.push_json(&[&host], &args);
    assert_eq!(statuses(&second).len(), 2, "{second}");
    assert!(
        statuses(&second).values().all(|s| s == "exists"),
        "{second}"
    );
    assert_eq!(second["manifestPushed"], false, "{second}");
    assert_eq!(second["manifestDigest"], first["manifestDigest"]);
    assert_eq!(second["output"]["reference"], first["output"]["reference"]);
    let blobs = second["blobs"].as_array().unwrap();
    assert!(
        blobs.iter().all(|b| b["size"].as_u64().unwrap() > 0),
        "{second}"
    );
    assert_eq!(
        reg.upload_requests(),
        uploads,
        "the second push uploaded something"
    );
    assert_eq!(
        manifest_puts(&reg),
        1,
        "the second push put the manifest again"
    );
}

#[test]
fn base_image_config_and_layers_are_inherited_and_mounted() {
    let reg = Registry::start();
    let home = PushHome::default();
    reg.docker_config(&home.docker_dir(), &[]);
    let host = reg.host();
    let layout = home.path("base-layout");
    umoci_image(&layout, "base", "amd64", "base-file.txt", "from the base\n");
    reg.push_oci(&layout, "base", "base:v1", false);
    let base_raw = reg.raw_manifest("base:v1");
    let base_layers = layer_digests(&parse(&base_raw));
    let base_config = reg.config("base:v1");

    let base = format!("{host}/base:v1");
    let doc = home.push_json(
        &[&host],
        &push_args(&["deps.zip"], Some(&base), &format!("{host}/app:v1")),
    );
    let raw = reg.raw_manifest("app:v1");
    assert_eq!(digest_of(&raw), doc["manifestDigest"]);
    let manifest = parse(&raw);
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    let ours = doc["layers"][0]["digest"].as_str().unwrap().to_string();
    let mut want_layers = base_layers.clone();
    want_layers.push(ours.clone());
    assert_eq!(
        layer_digests(&manifest),
        want_layers,
        "base layers, then ours"
    );

    let config = reg.config("app:v1");
    let inner = &config["config"];
    let env = inner["Env"].as_array().unwrap();
    assert!(
        env.iter().any(|e| e == "FOO=bar"),
        "Env not inherited: {config}"
    );
    assert_eq!(inner["Entrypoint"], json!(["/entry"]), "{config}");
    assert_eq!(inner["Cmd"], json!(["handler"]), "{config}");
    assert_eq!(inner["WorkingDir"], "/var/task", "{config}");
    assert_eq!(
        inner["Labels"]["team"], "x",
        "Labels not inherited: {config}"
    );
    assert_eq!(config["architecture"], "amd64");
    let mut diff_ids = base_config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .clone();
    diff_ids.push(doc["layers"][0]["diffId"].clone());
    assert_eq!(
        config["rootfs"]["diff_ids"],
        Value::Array(diff_ids),
        "{config}"
    );

    let status = statuses(&doc);
    for d in &base_layers {
        assert_eq!(status[d], "mounted", "{doc}");
    }
    assert_eq!(status[&ours], "uploaded");
    let rootfs = reg.unpack("app:v1", &home.path("work"));
    let base_file = fs::read_to_string(rootfs.join("etc/base-file.txt")).unwrap();
    assert_eq!(base_file, "from the base\n");
    assert_eq!(files_under(&rootfs.join("opt")), zip_files(&["deps.zip"]));

    // The same base pinned by digest gives the same layers.
    let pinned = format!("{host}/base@{}", digest_of(&base_raw));
    let doc = home.push_json(
        &[&host],
        &push_args(&["deps.zip"], Some(&pinned), &format!("{host}/app:pinned")),
    );
    assert_eq!(
        layer_digests(&parse(&reg.raw_manifest("app:pinned"))),
        want_layers,
        "{doc}"
    );

    // A Docker v2 schema 2 base: the result keeps the Docker media type family.
    reg.push_oci(&layout, "base", "base-docker:v1", true);
    assert_eq!(
        parse(&reg.raw_manifest("base-docker:v1"))["mediaType"],
        DOCKER_MANIFEST
    );
    let base = format!("{host}/base-docker:v1");
    home.push_json(
        &[&host],
        &push_args(&["deps.zip"], Some(&base), &format!("{host}/app-docker:v1")),
    );
    let manifest = parse(&reg.raw_manifest("app-docker:v1"));
    assert_eq!(manifest["mediaType"], DOCKER_MANIFEST, "{manifest}");
    let config_type = "application/vnd.docker.container.image.v1+json";
    assert_eq!(manifest["config"]["mediaType"], config_type);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert!(
        layers.iter().all(|l| l["mediaType"] == DOCKER_LAYER),
        "{manifest}"
    );
    let rootfs = reg.unpack("app-docker:v1", &home.path("work-docker"));
    assert!(rootfs.join("etc/base-file.txt").is_file());
    assert_eq!(files_under(&rootfs.join("opt")), zip_files(&["deps.zip"]));
}

/// PUTs an OCI index of `entries` (tags of `repo`, with their architecture) as `repo:tag`.
fn put_index(reg: &Registry, repo: &str, tag: &str, entries: &[(&str, &str)]) {
    let manifests: Vec<Value> = entries
        .iter()
        .map(|(t, arch)| {
            let raw = reg.raw_manifest(&format!("{repo}:{t}"));
            json!({"mediaType": OCI_MANIFEST, "digest": digest_of(&raw), "size": raw.len(),
                   "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    reg.put_manifest(repo, tag, OCI_INDEX, index.to_string().as_bytes());
}

/// A registry holding multi:amd (amd64), multi:arm (arm64), the index multi:v1 of both and the
/// index multi:amd-only; and a home logged in to it.
fn multi_platform_base() -> (Registry, PushHome) {
    let reg = Registry::start();
    let home = PushHome::default();
    reg.docker_config(&home.docker_dir(), &[]);
    let layout = home.path("layout");
    umoci_image(&layout, "amd", "amd64", "arch", "amd64\n");
    umoci_image(&layout, "arm", "arm64", "arch", "arm64\n");
    reg.push_oci(&layout, "amd", "multi:amd", false);
    reg.push_oci(&layout, "arm", "multi:arm", false);
    put_index(&reg, "multi", "v1", &[("amd", "amd64"), ("arm", "arm64")]);
    put_index(&reg, "multi", "amd-only", &[("amd", "amd64")]);
    (reg, home)
}

#[test]
fn index_base_gives_the_requested_platform_or_lists_those_present() {
    let (reg, home) = multi_platform_base();
    let host = reg.host();
    let base = format!("{host}/multi:v1");
    for (platform, arch) in [(Some("linux/arm64"), "arm64"), (None, "amd64")] {
        let mut args = push_args(&["deps.zip"], Some(&base), &format!("{host}/app:{arch}"));
        args.extend(
            platform
                .iter()
                .flat_map(|p| ["--platform".to_string(), p.to_string()]),
        );
        let doc = home.push_json(&[&host], &args);
        assert_eq!(doc["platform"], format!("linux/{arch}"), "{doc}");
        let manifest = parse(&reg.raw_manifest(&format!("app:{arch}")));
        assert_eq!(
            manifest["mediaType"], OCI_MANIFEST,
            "the tag must hold an image manifest"
        );
        let base_layers =
            layer_digests(&parse(&reg.raw_manifest(&format!("multi:{}", &arch[..3]))));
        assert_eq!(
            layer_digests(&manifest)[..base_layers.len()],
            base_layers[..]
        );
        assert_eq!(reg.config(&format!("app:{arch}"))["architecture"], arch);
        assert_eq!(reg.inspect(&format!("app:{arch}"))["Architecture"], arch);
    }

    let uploads = reg.upload_requests_for("app");
    let base = format!("{host}/multi:amd-only");
    let mut args = push_args(&["deps.zip"], Some(&base), &format!("{host}/app:none"));
    args.extend(["--platform".into(), "linux/arm64".into()]);
    let (code, stdout, stderr) = home.run(&[&host], &args);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("linux/amd64"),
        "the platforms present are not listed: {stderr}"
    );
    assert!(
        stderr.contains("linux/arm64"),
        "the wanted platform is not named: {stderr}"
    );
    assert_eq!(
        reg.upload_requests_for("app"),
        uploads,
        "a failed base pick uploaded"
    );
}

#[test]
fn platform_missing_from_a_single_platform_base_is_an_error() {
    let (reg, home) = multi_platform_base();
    let host = reg.host();
    let base = format!("{host}/multi:amd");
    let mut args = push_args(&["deps.zip"], Some(&base), &format!("{host}/app:arm"));
    args.extend(["--platform".into(), "linux/arm64".into()]);
    let (code, stdout, stderr) = home.run(&[&host], &args);
    assert_eq!(
        code, 1,
        "asked for linux/arm64 on an amd64-only base\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("linux/amd64"),
        "the platform present is not listed: {stderr}"
    );
}

#[test]
fn base_in_another_registry_is_copied() {
    let reg = Registry::start();
    let other = Registry::start_with_users(&[("other-user", "other-pass-123")]);
    let home = PushHome::default();
    reg.docker_config(&home.docker_dir(), &[&other]);
    let layout = home.path("layout");
    umoci_image(&layout, "base", "amd64", "base-file.txt", "elsewhere\n");
    other.push_oci(&layout, "base", "lambda/base:v1", false);
    let base_layers = layer_digests(&parse(&other.raw_manifest("lambda/base:v1")));

    let (host, other_host) = (reg.host(), other.host());
    let base = format!("{other_host}/lambda/base:v1");
    let args = push_args(&["deps.zip"], Some(&base), &format!("{host}/app:v1"));
    let doc = home.push_json(&[&host, &other_host], &args);
    let status = statuses(&doc);
    for d in &base_layers {
        assert_eq!(status[d], "copied", "{doc}");
    }
    let rootfs = reg.unpack("app:v1", &home.path("work"));
    let base_file = fs::read_to_string(rootfs.join("etc/base-file.txt")).unwrap();
    assert_eq!(base_file, "elsewhere\n");
    assert_eq!(
        other.upload_requests_for("app"),
        0,
        "nothing goes to the base's registry"
    );
}

/// A zip with one stored file of incompressible bytes, so its layer is `size` bytes or more.
fn big_zip(path: &Path, size: usize) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let mut zw = zip::ZipWriter::new(fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::from_date_and_time(2024, 1, 2, 3, 4, 6).unwrap())
        .unix_permissions(0o644);
    zw.start_file("data/blob.bin", opts).unwrap();
    zw.write_all(&data).unwrap();
    zw.finish().unwrap();
}

/// A registry, a proxy in front of it and a home logged in to both.
fn proxied() -> (Registry, FaultProxy, PushHome) {
    let reg = Registry::start();
    let proxy = FaultProxy::start(&reg.host());
    let home = PushHome::default();
    let login = |h: String| (h, reg.user.clone(), reg.password.clone());
    write_docker_config(
        &home.docker_dir(),
        &[login(reg.host()), login(proxy.host())],
    );
    (reg, proxy, home)
}

/// Pushes the same big zip straight to the registry (`clean`) and through the proxy (`faulty`) after
/// `inject` queued faults on it; checks every fault was hit and both give the same digest.
fn push_through_faults(inject: &dyn Fn(&FaultProxy), faults: usize) {
    let (reg, proxy, home) = proxied();
    let (host, phost) = (reg.host(), proxy.host());
    let zip = home.path("big.zip");
    big_zip(&zip, 768 * 1024);
    let zip = zip.to_string_lossy().into_owned();

    let clean = home.push_json(
        &[&host],
        &push_args(&[&zip], None, &format!("{host}/clean:v1")),
    );
    inject(&proxy);
    let (code, stdout, stderr) = home.run(
        &[&phost],
        &push_args(&[&zip], None, &format!("{phost}/faulty:v1")),
    );
    let seen = proxy.requests();
    assert_eq!(
        code, 0,
        "push through the faults failed\nstderr: {stderr}\nproxy saw: {seen:#?}"
    );
    assert_eq!(
        proxy.pending_faults(),
        0,
        "not every fault was hit: {seen:#?}"
    );
    assert_eq!(
        seen.iter().filter(|r| r.injected).count(),
        faults,
        "{seen:#?}"
    );
    let digest = clean["manifestDigest"].as_str().unwrap();
    assert_eq!(stdout.trim(), format!("{phost}/faulty@{digest}"));
    assert_eq!(digest_of(&reg.raw_manifest("faulty:v1")), digest);
    // skopeo verifies every blob it copies: the retried uploads hold the right bytes.
    reg.copy_to_oci("faulty:v1", &home.path("pulled"), "t");
}

#[test]
fn retries_through_5xx_and_429_answers_end_in_the_same_digest() {
    push_through_faults(
        &|proxy| {
            proxy.inject(ProxyFault::status(
                "PUT",
                "/v2/faulty/blobs/uploads/",
                500,
                2,
            ));
            proxy.inject(ProxyFault::status("HEAD", "/v2/faulty/blobs/", 503, 1));
            proxy.inject(ProxyFault::status(
                "POST",
                "/v2/faulty/blobs/uploads/",
                429,
                1,
            ));
        },
        4,
    );
}

#[test]
fn a_reset_mid_upload_is_retried_to_the_same_digest() {
    // The head and 64 KiB of the layer's PUT reach the registry, then the connection is cut.
    push_through_faults(
        &|proxy| {
            proxy.inject(ProxyFault::reset(
                "PUT",
                "/v2/faulty/blobs/uploads/",
                64 * 1024,
            ))
        },
        1,
    );
}

#[test]
fn endless_500s_fail_saying_how_many_attempts() {
    let (reg, proxy, home) = proxied();
    let phost = proxy.host();
    proxy.inject(ProxyFault::status(
        "POST",
        "/v2/app/blobs/uploads/",
        500,
        usize::MAX,
    ));
    let (code, stdout, stderr) = home.run(
        &[&phost],
        &push_args(&["deps.zip"], None, &format!("{phost}/app:v1")),
    );
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let attempts: usize = stderr
        .split(" attempts")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the error does not say how many attempts: {stderr}"));
    assert!(attempts >= 2, "{stderr}");
    let seen = proxy.requests();
    let answered = seen
        .iter()
        .filter(|r| r.injected && r.method == "POST")
        .count();
    assert!(
        answered >= attempts,
        "{answered} 500s answered, {attempts} attempts claimed"
    );
    assert!(
        stderr.contains("500"),
        "the error does not say what failed: {stderr}"
    );
    assert_eq!(reg.upload_requests(), 0, "nothing may reach the registry");
    assert!(
        seen.iter()
            .all(|r| !(r.method == "PUT" && r.target.contains("/manifests/")))
    );
}

#[test]
fn a_corrupted_base_blob_never_lands_in_the_output() {
    let (reg, proxy, home) = proxied();
    let (host, phost) = (reg.host(), proxy.host());
    let layout = home.path("layout");
    umoci_image(&layout, "base", "amd64", "base-file.txt", "base\n");
    reg.push_oci(&layout, "base", "base:v1", false);
    let layer = layer_digests(&parse(&reg.raw_manifest("base:v1"))).remove(0);
    let base = format!("{phost}/base:v1");
    let out = home.path("out");
    let outputs = [
        vec!["--oci-layout".to_string(), format!("{}:t", out.display())],
        vec!["--push".to_string(), format!("{host}/app:v1")],
    ];
    for output in outputs {
        proxy.inject(ProxyFault::corrupt(
            "GET",
            &format!("/v2/base/blobs/{layer}"),
        ));
        let mut args = vec![
            "image".to_string(),
            zip_path("deps.zip"),
            "--base".into(),
            base.clone(),
        ];
        args.extend(output.iter().cloned());
        let (code, _, stderr) = home.run(&[&host, &phost], &args);
        assert_eq!(
            proxy.pending_faults(),
            0,
            "the base layer was never downloaded"
        );
        if code == 0 {
            // Retried after the mismatch: the output must hold the right bytes.
            if out.exists() {
                blob_path(&out, &layer);
            } else {
                reg.copy_to_oci("app:v1", &home.path("pulled"), "t");
            }
        } else {
            assert_eq!(code, 1, "{stderr}");
            assert!(
                stderr.contains("does not match"),
                "not a digest error: {stderr}"
            );
            assert!(stderr.contains(&layer), "the blob is not named: {stderr}");
            assert!(!out.exists(), "a layout was written from a corrupt blob");
            let lines = reg.access_lines();
            let put = |l: &&crate::support::registry::AccessLine| {
                l.method == "PUT" && l.uri.starts_with("/v2/app/manifests/")
            };
            assert!(
                !lines.iter().any(|l| put(&l)),
                "a manifest was pushed over a corrupt blob"
            );
        }
    }
}
