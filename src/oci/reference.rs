//! Image references as users write them (`repo:tag`, `host/repo@sha256:…`, Docker Hub short names),
//! normalised the way Docker does, plus the `oci:` and `docker-archive:` transports.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host as written in references (`docker.io`, `localhost:5000`, `…amazonaws.com`).
    pub registry: String,
    /// Repository path (`library/python`, `lambda/python`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("invalid image reference {input:?}: {why}\n  hint: {REFERENCE_HINT}")
        };
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("only sha256 digests are supported"))?;
                if hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return Err(bad(
                        "the digest must be sha256: and 64 lowercase hex digits",
                    ));
                }
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => {
                (&rest[..i], Some(rest[i + 1..].to_string()))
            }
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(bad(
                    "the tag may hold letters, digits, '_', '.' and '-' (128 at most)",
                ));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            "docker.io".to_string()
        } else {
            registry
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let path_ok = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'.' | b'_' | b'-')
                    })
            });
        if !path_ok {
            return Err(bad(
                "repository names are lowercase letters, digits, '.', '_', '-' and '/'",
            ));
        }
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The tag or digest to ask the registry for (`latest` when neither was given).
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The host the registry API is served from.
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// An IMAGE argument, by transport (the prefixes users know from skopeo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSpec {
    OciLayout {
        dir: PathBuf,
        tag: Option<String>,
    },
    DockerArchive {
        file: PathBuf,
        name: Option<String>,
    },
    /// `repo:tag`, `host/repo@sha256:…`, Docker Hub short names (`docker://` taken off).
    Registry(ImageRef),
}

impl ImageSpec {
    /// `oci:DIR[:TAG]` and `docker-archive:FILE[:NAME]` split at the first `:` after the transport,
    /// as skopeo does, unless the whole rest names an existing path; anything else must be a
    /// registry reference. A transport prefix is never taken for a registry host.
    pub fn parse(spec: &str) -> Result<ImageSpec, String> {
        let split = |rest: &str| -> (PathBuf, Option<String>) {
            if Path::new(rest).exists() {
                return (PathBuf::from(rest), None);
            }
            match rest.split_once(':') {
                Some((path, tag)) if !tag.is_empty() => {
                    (PathBuf::from(path), Some(tag.to_string()))
                }
                Some((path, _)) => (PathBuf::from(path), None),
                None => (PathBuf::from(rest), None),
            }
        };
        if let Some(rest) = spec.strip_prefix("oci:") {
            let (dir, tag) = split(rest);
            return Ok(ImageSpec::OciLayout { dir, tag });
        }
        if let Some(rest) = spec.strip_prefix("docker-archive:") {
            let (file, name) = split(rest);
            return Ok(ImageSpec::DockerArchive { file, name });
        }
        if let Some(reference) = spec.strip_prefix("docker://") {
            return ImageRef::parse(reference).map(ImageSpec::Registry);
        }
        if let Some(local) = LocalPath::find(spec) {
            return Err(local.message(spec));
        }
        ImageRef::parse(spec).map(ImageSpec::Registry)
    }
}

/// How an image is named, for hints.
pub const REFERENCE_HINT: &str = "a registry image is [HOST/]REPOSITORY[:TAG][@sha256:DIGEST] \
     (e.g. public.ecr.aws/lambda/python:3.12); an image on disk is oci:DIR[:TAG] (an OCI layout) \
     or docker-archive:FILE (a `docker save` tar)";

/// An IMAGE argument without a transport that names something on disk: it would otherwise go to
/// a registry (Docker Hub, for a name without a host) and fail there slowly, over DNS and retries.
enum LocalPath {
    Dir,
    File,
    /// Written as a path (`/…`, `./…`, `../…`), and nothing is there.
    Missing,
}

impl LocalPath {
    /// `DIR`, `DIR:TAG`, `FILE`, `FILE:NAME`, or an absolute or relative path. A bare name
    /// (no `/`) that is a directory but not an OCI layout is left to the registry: `python:3.12`
    /// means Docker Hub even beside a `python/` directory.
    fn find(spec: &str) -> Option<LocalPath> {
        let mut candidates = vec![spec];
        if let Some((path, _)) = spec.rsplit_once(':') {
            candidates.push(path);
        }
        for candidate in candidates {
            let path = Path::new(candidate);
            if path.is_file() {
                return Some(LocalPath::File);
            }
            if path.is_dir() && (candidate.contains('/') || path.join("oci-layout").is_file()) {
                return Some(LocalPath::Dir);
            }
        }
        let path_like = ["/", "./", "../", "~"].iter().any(|p| spec.starts_with(p));
        path_like.then_some(LocalPath::Missing)
    }

    fn message(&self, spec: &str) -> String {
        // Offer the registry reading only where the text could be a registry reference.
        let registry = if ImageRef::parse(spec).is_ok() {
            format!("; docker://{spec} if you mean a registry image")
        } else {
            String::new()
        };
        match self {
            LocalPath::Dir => format!(
                "{spec:?} names a local directory, not a registry image\n  hint: write oci:{spec} \
                 for the OCI image layout in it (oci:DIR[:TAG]){registry}"
            ),
            LocalPath::File => {
                let zip = if spec.to_ascii_lowercase().ends_with(".zip") {
                    " (a .zip is a Lambda layer, not an image: `layerport image` turns it into one)"
                } else {
                    ""
                };
                format!(
                    "{spec:?} names a local file, not a registry image{zip}\n  hint: write \
                     docker-archive:{spec} for a `docker save` archive (docker-archive:FILE[:NAME]){registry}"
                )
            }
            LocalPath::Missing => format!(
                "{spec:?} looks like a path, and nothing is there\n  hint: {REFERENCE_HINT}"
            ),
        }
    }
}

impl fmt::Display for ImageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (transport, path, tag) = match self {
            ImageSpec::Registry(r) => return write!(f, "{r}"),
            ImageSpec::OciLayout { dir, tag } => ("oci:", dir, tag),
            ImageSpec::DockerArchive { file, name } => ("docker-archive:", file, name),
        };
        write!(f, "{transport}{}", path.display())?;
        if let Some(t) = tag {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        assert_eq!(
            ImageSpec::parse("oci:/no/such/dir:v1").unwrap(),
            ImageSpec::OciLayout {
                dir: "/no/such/dir".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            ImageSpec::parse("docker-archive:/no/img.tar").unwrap(),
            ImageSpec::DockerArchive {
                file: "/no/img.tar".into(),
                name: None
            }
        );
        let python = ImageSpec::parse("public.ecr.aws/lambda/python:3.12").unwrap();
        assert_eq!(python.to_string(), "public.ecr.aws/lambda/python:3.12");
        assert_eq!(
            ImageSpec::parse("docker://alpine:3").unwrap(),
            ImageSpec::Registry(ImageRef::parse("alpine:3").unwrap())
        );
        assert_eq!(
            ImageSpec::parse("oci:out/x:v1").unwrap().to_string(),
            "oci:out/x:v1"
        );
    }

    #[test]
    fn docker_hub_short_names() {
        let r = ImageRef::parse("python:3.12").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/python");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(ImageRef::parse("user/app").unwrap().repository, "user/app");
        assert_eq!(ImageRef::parse("busybox").unwrap().reference(), "latest");
    }

    #[test]
    fn hosts_ports_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("localhost:5000/team/fn:v1@{d}")).unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "team/fn");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.reference(), d);
        let e = ImageRef::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/fn:v2").unwrap();
        assert_eq!(e.registry, "123456789012.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(
            ImageRef::parse("public.ecr.aws/lambda/python:3.12")
                .unwrap()
                .repository,
            "lambda/python"
        );
    }

    #[test]
    fn local_paths_are_never_registry_references() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        std::fs::create_dir(&layout).unwrap();
        let archive = dir.path().join("img.tar");
        std::fs::write(&archive, b"tar").unwrap();
        let layout = layout.display().to_string();
        for spec in [layout.clone(), format!("{layout}:v1")] {
            let err = ImageSpec::parse(&spec).unwrap_err();
            assert!(err.contains(&format!("hint: write oci:{spec}")), "{err}");
        }
        let archive = archive.display().to_string();
        let err = ImageSpec::parse(&archive).unwrap_err();
        assert!(err.contains(&format!("docker-archive:{archive}")), "{err}");
        let err = ImageSpec::parse("/no/such/layout:v1").unwrap_err();
        assert!(
            err.contains("looks like a path") && err.contains("oci:DIR"),
            "{err}"
        );
        // With the transport, or as an explicit registry reference, the same names are fine.
        assert!(ImageSpec::parse(&format!("oci:{layout}:v1")).is_ok());
        assert!(ImageSpec::parse("docker://alpine:3").is_ok());
    }

    #[test]
    fn refuses_bad_references() {
        assert!(ImageRef::parse("Upper/Case").is_err());
        assert!(ImageRef::parse("x@sha256:abc").is_err());
        assert!(ImageRef::parse("x:bad tag").is_err());
        assert!(ImageRef::parse("").is_err());
    }
}
