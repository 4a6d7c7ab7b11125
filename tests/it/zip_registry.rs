//! `layerport zip` reading straight from a registry (htpasswd auth, Docker config): the same image gives
//! the same zip bytes as from an OCI layout copied out of that registry by skopeo.

use crate::support::registry::{PushHome, Registry};

fn testdata(rel: &str) -> String {
    crate::support::tools::testdata(rel)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn zip_from_registry_equals_zip_from_a_skopeo_copy() {
    let registry = Registry::start();
    let host = registry.host();
    let home = PushHome::default();
    registry.docker_config(&home.docker_dir(), &[]);
    let target = format!("{host}/fn:v1");
    let pushed = home.push_json(
        &[&host],
        &[
            "image",
            &testdata("good/sample/deps.zip"),
            &testdata("good/override-a.zip"),
            "--push",
            &target,
        ],
    );
    assert_eq!(pushed["output"]["kind"], "registry");

    let (code, stdout, stderr) = home.run(&[&host], &["zip", &target, "-o", "from-registry.zip"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "from-registry.zip");

    registry.copy_to_oci("fn:v1", &home.path("layout"), "v1");
    let layout = format!("oci:{}:v1", home.path("layout").display());
    let (code, _, stderr) = home.run(&[], &["zip", &layout, "-o", "from-layout.zip"]);
    assert_eq!(code, 0, "{stderr}");

    let a = std::fs::read(home.path("from-registry.zip")).unwrap();
    let b = std::fs::read(home.path("from-layout.zip")).unwrap();
    assert!(!a.is_empty());
    assert_eq!(a, b, "same image, same zip bytes, whatever the source");

    // What the zip holds is what the layers held.
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(a)).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert!(
        names.contains(&"python/requests/api.py".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"python/only_a.txt".to_string()),
        "{names:?}"
    );
    let mut shared = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("python/shared.txt").unwrap(), &mut shared)
        .unwrap();
    assert_eq!(shared, "from a\n");
}

#[test]
fn zip_from_registry_without_credentials_explains_how_to_log_in() {
    let registry = Registry::start();
    let host = registry.host();
    let home = PushHome::default();
    let (code, stdout, stderr) = home.run(
        &[&host],
        &["zip", &format!("{host}/missing:v1"), "-o", "x.zip"],
    );
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains("docker login"), "{stderr}");
    assert!(!home.path("x.zip").exists());
}

#[test]
fn a_blob_download_cut_mid_body_is_retried_to_the_same_zip() {
    use crate::support::fault_proxy::{FaultProxy, ProxyFault};
    use crate::support::registry::write_docker_config;

    let registry = Registry::start();
    let proxy = FaultProxy::start(&registry.host());
    let (host, phost) = (registry.host(), proxy.host());
    let home = PushHome::default();
    let login = |h: String| (h, registry.user.clone(), registry.password.clone());
    write_docker_config(
        &home.docker_dir(),
        &[login(host.clone()), login(phost.clone())],
    );
    home.push_json(
        &[&host],
        &[
            "image",
            &testdata("good/sample/deps.zip"),
            "--push",
            &format!("{host}/fn:v1"),
        ],
    );
    let (code, _, stderr) = home.run(
        &[&host],
        &["zip", &format!("{host}/fn:v1"), "-o", "clean.zip"],
    );
    assert_eq!(code, 0, "{stderr}");

    // The first blob fetched through the proxy loses its connection after 100 bytes.
    proxy.inject(ProxyFault::cut_response("GET", "/v2/fn/blobs/", 100));
    let (code, _, stderr) = home.run(
        &[&phost],
        &["zip", &format!("{phost}/fn:v1"), "-o", "cut.zip"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(proxy.pending_faults(), 0, "the cut was applied");
    assert!(stderr.contains("retrying"), "{stderr}");
    assert_eq!(
        std::fs::read(home.path("clean.zip")).unwrap(),
        std::fs::read(home.path("cut.zip")).unwrap()
    );
}
