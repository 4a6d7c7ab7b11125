//! `layerport image ARN1 ARN2 --push` is a pipeline: layers download concurrently, each converts as
//! soon as its own zip is there, and each blob uploads as soon as it is built, the manifest last.
//!
//! Proven without sleeps or timing: the fake AWS endpoint holds layer 2's download until the
//! registry (behind an observing proxy) has stored layer 1's blob. A tool that downloads everything
//! first, or converts everything before uploading, can never get there: layer 2's download waits
//! out its gate, is answered 500, and the test fails naming the missing overlap.
//!
//! Not covered here: the download→convert overlap of `--oci-layout` output on its own. Nothing of a
//! layer's conversion is observable before every layer is built (no log line, no network request;
//! only a file renamed in a staging directory), and watching for that would mean polling the
//! filesystem. The push test covers that overlap too: layer 1's blob is uploaded, so converted,
//! while layer 2 still downloads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::fake_aws::{FakeAws, Gate};
use crate::support::fault_proxy::{FaultProxy, ProxiedRequest};
use crate::support::registry::{PushHome, Registry, digest_of, layer_digests, write_docker_config};
use crate::support::tools::testdata;
use serde_json::Value;

const ARN1: &str = "arn:aws:lambda:us-west-2:210987654321:layer:deps:4";
const ARN2: &str = "arn:aws:lambda:us-west-2:210987654321:layer:ext:1";
/// How long layer 2's download waits for layer 1's blob: generous, and below layerport's 60 s read
/// timeout, so a sequential tool meets the fake's 500 rather than its own timeout.
const GATE_TIMEOUT: Duration = Duration::from_secs(45);

/// What happened, in the order it happened. Each event is logged before the other side can react:
/// a download before its body is sent, a registry answer before the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    /// The fake answered a download of this layer version ARN with this status.
    Download(String, u16),
    /// The registry answered 201 to the PUT that completes the upload of this blob.
    BlobStored(String),
    /// The test opened layer 2's download gate.
    GateOpened,
    /// The registry answered a manifest PUT with this status.
    ManifestPut(u16),
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The `digest` query parameter of a request target (`sha256:…`, `:` possibly percent-encoded).
fn digest_param(target: &str) -> Option<String> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .find_map(|p| p.strip_prefix("digest="))
        .map(|d| d.replace("%3A", ":").replace("%3a", ":"))
}

fn position(events: &[Event], want: &Event) -> usize {
    events
        .iter()
        .position(|e| e == want)
        .unwrap_or_else(|| panic!("never happened: {want:?}\nevents: {events:#?}"))
}

fn layer_list(doc: &Value) -> Vec<String> {
    let layers = doc["layers"].as_array().expect("layers in the JSON");
    layers
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

#[test]
fn layer_one_uploads_while_layer_two_still_downloads() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(&reg.host());
    let fake = FakeAws::start();
    for (arn, zip) in [(ARN1, "deps.zip"), (ARN2, "ext.zip")] {
        let bytes = std::fs::read(testdata(&format!("good/sample/{zip}"))).unwrap();
        fake.add_layer(arn, bytes, &[]);
    }
    let mut home = PushHome::default();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", fake.endpoint().as_str()),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDLAYERPORTTEST"),
        ("AWS_SECRET_ACCESS_KEY", "SECRETKEYlayerportTEST0123456789"),
        ("AWS_SESSION_TOKEN", "SESSIONTOKENlayerportTEST"),
    ] {
        home.set_env(k, v);
    }
    let phost = proxy.host();
    write_docker_config(
        &home.docker_dir(),
        &[(phost.clone(), reg.user.clone(), reg.password.clone())],
    );

    // The reference: the same ARNs into an OCI layout, nothing held.
    let layout = home.path("reference");
    let (code, stdout, stderr) = home.run(
        &[],
        &[
            "--no-cache",
            "--json",
            "image",
            ARN1,
            ARN2,
            "--threads",
            "2",
            "--oci-layout",
            &format!("{}:t", layout.display()),
        ],
    );
    assert_eq!(code, 0, "reference build failed: {stderr}");
    let reference = parse(&stdout);
    let want_layers = layer_list(&reference);
    assert_eq!(want_layers.len(), 2, "{reference}");
    assert_ne!(want_layers[0], want_layers[1], "the two layers must differ");
    let l1 = want_layers[0].clone();

    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let log = |events: &Arc<Mutex<Vec<Event>>>, e: Event| {
        events.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    };
    let gate = Gate::new();
    fake.hold_download(ARN2, gate.clone(), GATE_TIMEOUT);
    let seen = Arc::clone(&events);
    fake.on_download(move |arn, status| log(&seen, Event::Download(arn.into(), status)));
    let (seen, opener, first) = (Arc::clone(&events), gate.clone(), l1.clone());
    proxy.set_observer(move |r: &ProxiedRequest| {
        let path = r.target.split('?').next().unwrap_or("");
        if r.method == "PUT" && path.starts_with("/v2/app/manifests/") {
            log(&seen, Event::ManifestPut(r.status));
        } else if r.method == "PUT" && path.starts_with("/v2/app/blobs/uploads/") && r.status == 201
        {
            let digest = digest_param(&r.target).unwrap_or_default();
            let is_first = digest == first;
            log(&seen, Event::BlobStored(digest));
            if is_first {
                log(&seen, Event::GateOpened);
                opener.open();
            }
        }
    });

    let (code, stdout, stderr) = home.run(
        &[&phost],
        &[
            "--no-cache",
            "--json",
            "image",
            ARN1,
            ARN2,
            "--threads",
            "2",
            "--push",
            &format!("{phost}/app:v1"),
        ],
    );
    let events = events.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        !gate.expired(),
        "layer 2's download was held {GATE_TIMEOUT:?} and layer 1's blob {l1} never reached the \
         registry meanwhile: downloading, converting and uploading do not overlap\n\
         events: {events:#?}\nexit {code}, stderr: {stderr}"
    );
    assert_eq!(
        code, 0,
        "push failed\nstderr: {stderr}\nevents: {events:#?}"
    );
    let pushed = parse(&stdout);

    // The order: layer 1 downloaded → its blob stored → only then layer 2 downloaded → its blob
    // stored → the manifest, last.
    let d1 = position(&events, &Event::Download(ARN1.into(), 200));
    let b1 = position(&events, &Event::BlobStored(l1.clone()));
    let opened = position(&events, &Event::GateOpened);
    let d2 = position(&events, &Event::Download(ARN2.into(), 200));
    let b2 = position(&events, &Event::BlobStored(want_layers[1].clone()));
    let manifest = position(&events, &Event::ManifestPut(201));
    assert!(d1 < b1, "layer 1's blob before its download: {events:#?}");
    assert!(
        b1 < d2,
        "layer 2's download completed before layer 1's blob was uploaded: {events:#?}"
    );
    assert!(opened < d2, "{events:#?}");
    assert!(d2 < b2, "layer 2's blob before its download: {events:#?}");
    assert!(
        manifest > b1 && manifest > b2,
        "the manifest was put before both layer blobs were stored: {events:#?}"
    );
    assert_eq!(manifest, events.len() - 1, "not last: {events:#?}");
    let downloads: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::Download(..)))
        .collect();
    assert_eq!(downloads.len(), 2, "one download per layer: {events:#?}");
    let manifest_puts = events
        .iter()
        .filter(|e| matches!(e, Event::ManifestPut(_)))
        .count();
    assert_eq!(manifest_puts, 1, "{events:#?}");

    // The image: the reference's layers, in order, as the tool reports and as the registry serves.
    assert_eq!(pushed["output"]["kind"], "registry", "{pushed}");
    assert_eq!(layer_list(&pushed), want_layers, "{pushed}");
    assert_eq!(pushed["manifestDigest"], reference["manifestDigest"]);
    assert_eq!(pushed["manifestPushed"], true, "{pushed}");
    let blobs = pushed["blobs"].as_array().expect("blobs");
    assert_eq!(blobs.len(), 3, "two layers and the config: {pushed}");
    assert!(blobs.iter().all(|b| b["status"] == "uploaded"), "{pushed}");
    let digest = pushed["manifestDigest"].as_str().unwrap();
    assert_eq!(
        pushed["output"]["reference"],
        format!("{phost}/app@{digest}")
    );
    let raw = reg.raw_manifest("app:v1");
    assert_eq!(digest_of(&raw), digest);
    assert_eq!(
        layer_digests(&parse(&String::from_utf8_lossy(&raw))),
        want_layers
    );
}
