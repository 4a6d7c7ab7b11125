#!/usr/bin/env python3
"""Writes good/sample/base: a tiny OCI image layout standing in for a Lambda Python base image.

It holds only what `layerport check` looks at: an entrypoint, the runtime's path under /var/lang/bin
(a symlink: there is no Python inside, so the image cannot run) and a handler in /var/task. README's
quick start builds on it. Deterministic: fixed mtimes, uid/gid 0, sorted entries, gzip mtime 0.
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

MTIME = 1704164645

ENTRYPOINT = b"""#!/bin/sh
# Stand-in for the AWS base images' entrypoint (sample data): calls the handler named by Cmd once.
exec /var/lang/bin/python3.12 -c 'import importlib, sys
sys.path[:0] = ["/var/task", "/opt/python"]
module, function = sys.argv[1].rsplit(".", 1)
print(getattr(importlib.import_module(module), function)({}, None))' "$1"
"""

APP = b'''"""The sample function: its dependency comes from a layer at /opt/python."""
import requests


def handler(event, context):
    return requests.get("https://example.com")
'''


def entries():
    yield ("lambda-entrypoint.sh", 0o755, ENTRYPOINT)
    yield ("var/", 0o755, None)
    yield ("var/lang/", 0o755, None)
    yield ("var/lang/bin/", 0o755, None)
    yield ("var/lang/bin/python3.12", 0o777, "/usr/bin/python3")
    yield ("var/task/", 0o755, None)
    yield ("var/task/app.py", 0o644, APP)


def layer_tar():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode, content in entries():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode, info.mtime, info.uid, info.gid = mode, MTIME, 0, 0
            info.uname = info.gname = ""
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def write_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def canonical(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def main(layout):
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    tar = layer_tar()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=9) as g:
        g.write(tar)
    layer = write_blob(layout, gz.getvalue())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin", "LAMBDA_TASK_ROOT=/var/task"],
            "Entrypoint": ["/lambda-entrypoint.sh"],
            "Cmd": ["app.handler"],
            "WorkingDir": "/var/task",
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
    }
    config_desc = write_blob(layout, canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **config_desc),
        "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **layer)],
    }
    manifest_desc = write_blob(layout, canonical(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            dict(
                mediaType="application/vnd.oci.image.manifest.v1+json",
                annotations={"org.opencontainers.image.ref.name": "python3.12"},
                **manifest_desc,
            )
        ],
    }
    with open(os.path.join(layout, "index.json"), "wb") as f:
        f.write(canonical(index))
    with open(os.path.join(layout, "oci-layout"), "wb") as f:
        f.write(b'{"imageLayoutVersion":"1.0.0"}')


if __name__ == "__main__":
    main(sys.argv[1])
