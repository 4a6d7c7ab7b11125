"""The batch and migrate cases of scripts/bench.py: many layers fetched by ARN and pushed to a real
registry, the way a fleet migration runs. AWS cannot be reached from a benchmark, so a small Lambda
stand-in answers GetLayerVersionByArn and GetFunction over loopback (the JSON shapes of the real
API; signatures are not checked) and serves the zips at their Content/Code Location, counting every
download. The registry is a real docker-registry on loopback, with fresh storage for each cold run.
"""
import base64
import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

ACCOUNT = "123456789012"
REGION = "us-east-1"


class FakeLambda:
    """GetLayerVersionByArn, GetFunction and the downloads they point at, on a loopback port."""

    def __init__(self) -> None:
        self.layers: dict[str, str] = {}  # layer version ARN -> zip path
        self.functions: dict[str, dict] = {}  # name -> {"zip", "layers", "runtime", "handler"}
        self.downloads = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                if url.path == "/2018-10-31/layers" and query.get("find") == ["LayerVersion"]:
                    fake.answer_layer(self, query["Arn"][0])
                elif url.path.startswith("/2015-03-31/functions/"):
                    fake.answer_function(self, urllib.parse.unquote(url.path.split("/")[3]))
                elif url.path.startswith("/files/"):
                    fake.send_file(self, urllib.parse.unquote(url.path[len("/files/"):]))
                else:
                    fake.send_json(self, 404, {"Type": "User", "message": f"no route {url.path}"},
                                   "ResourceNotFoundException")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()

    def add_layer(self, name: str, zip_path: str) -> str:
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}:1"
        self.layers[arn] = zip_path
        return arn

    def add_function(self, name: str, zip_path: str, layer_arns: list[str]) -> None:
        self.functions[name] = {"zip": zip_path, "layers": layer_arns}

    @functools.cache
    def content(self, path: str) -> tuple[str, int]:
        """CodeSha256 and CodeSize, computed once: Lambda answers from its records, not by hashing."""
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return base64.b64encode(digest.digest()).decode(), os.path.getsize(path)

    def location(self, path: str) -> str:
        return f"{self.endpoint}/files/{urllib.parse.quote(path, safe='')}?X-Amz-Signature=bench"

    def answer_layer(self, req, arn: str) -> None:
        if arn not in self.layers:
            return self.send_json(req, 404, {"Type": "User", "message": "layer not found"}, "ResourceNotFoundException")
        sha, size = self.content(self.layers[arn])
        self.send_json(req, 200, {
            "Content": {"Location": self.location(self.layers[arn]), "CodeSha256": sha, "CodeSize": size},
            "LayerArn": arn.rsplit(":", 1)[0], "LayerVersionArn": arn, "Version": 1,
            "CreatedDate": "2026-01-01T00:00:00.000+0000", "CompatibleRuntimes": ["python3.12"],
            "CompatibleArchitectures": ["x86_64"],
        })

    def answer_function(self, req, name: str) -> None:
        if name not in self.functions:
            return self.send_json(req, 404, {"Type": "User", "message": "Function not found"}, "ResourceNotFoundException")
        f = self.functions[name]
        sha, size = self.content(f["zip"])
        config = {
            "FunctionName": name, "FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "Runtime": "python3.12", "Handler": "app.handler", "Role": f"arn:aws:iam::{ACCOUNT}:role/bench",
            "CodeSize": size, "CodeSha256": sha, "Version": "$LATEST", "Timeout": 30, "MemorySize": 512,
            "PackageType": "Zip", "Architectures": ["x86_64"], "State": "Active", "LastUpdateStatus": "Successful",
            "TracingConfig": {"Mode": "PassThrough"}, "RevisionId": "1", "LastModified": "2026-01-01T00:00:00.000+0000",
            "Layers": [{"Arn": a, "CodeSize": os.path.getsize(self.layers[a])} for a in f["layers"]],
        }
        self.send_json(req, 200, {"Configuration": config,
                                  "Code": {"RepositoryType": "S3", "Location": self.location(f["zip"])}})

    def send_file(self, req, path: str) -> None:
        with self.lock:
            self.downloads += 1
        req.send_response(200)
        req.send_header("Content-Length", str(os.path.getsize(path)))
        req.end_headers()
        with open(path, "rb") as f:
            shutil.copyfileobj(f, req.wfile, 1 << 20)

    @staticmethod
    def send_json(req, status: int, body: dict, error_type: str | None = None) -> None:
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        if error_type:
            req.send_header("X-Amzn-ErrorType", error_type)
        req.end_headers()
        req.wfile.write(data)


class Registry:
    """docker-registry on a free loopback port (no auth), storage under DIR; counts blob uploads."""

    def __init__(self, work: str) -> None:
        if shutil.which("docker-registry") is None:
            sys.exit("docker-registry not found: install it with apt-get install docker-registry")
        self.dir = os.path.join(work, "registry")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.dir}/data\n"
                    f"http:\n  addr: {self.host}\n")
        self.log = open(os.path.join(self.dir, "registry.log"), "w")
        self.process = subprocess.Popen(["docker-registry", "serve", config], stdout=self.log, stderr=self.log)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)  # polling for readiness, not timing anything
        sys.exit(f"docker-registry did not start; see {self.log.name}")

    def blob_uploads(self) -> int:
        with open(self.log.name) as f:
            return sum(1 for line in f if '"PUT /v2/' in line and "/blobs/uploads/" in line)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.log.close()


def layer_variants(work: str, layer_zip: str, count: int) -> list[str]:
    """COUNT distinct layer zips: the benchmark layer, each with one file of its own appended."""
    out = []
    extra = os.path.join(work, "variant")
    for i in range(count):
        os.makedirs(os.path.join(extra, "python"), exist_ok=True)
        with open(os.path.join(extra, "python", "variant.txt"), "w") as f:
            f.write(f"layer variant {i}\n")
        path = os.path.join(work, f"layer-{i:02}.zip")
        shutil.copyfile(layer_zip, path)
        subprocess.run(["zip", "-q", "-X", path, "python/variant.txt"], cwd=extra, check=True)
        out.append(path)
    return out


def aws_env(fake: FakeLambda, cache: str) -> dict:
    env = dict(os.environ)
    env.update({"AWS_ENDPOINT_URL": fake.endpoint, "AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true", "XDG_CACHE_HOME": cache,
                "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    env.pop("AWS_PROFILE", None)
    return env


def bench_batch(run, binary: str, work: str, layer_zip: str, runs: int) -> list[str]:
    """40 image jobs over 10 distinct layers into a registry, cold and warm, against the 10 layers
    converted and pushed once each by separate `layerport image` runs."""
    fake = FakeLambda()
    arns = [fake.add_layer(f"bench-{i:02}", z) for i, z in enumerate(layer_variants(work, layer_zip, 10))]
    cold, warm, separate, rss = [], [], [], 0
    failures = []
    try:
        for _ in range(runs):
            for case in ("separate", "batch"):
                cache = os.path.join(work, "cache")
                shutil.rmtree(cache, ignore_errors=True)
                registry = Registry(work)
                env = aws_env(fake, cache)
                lp = f"{binary} -q"
                try:
                    if case == "separate":
                        cmd = " && ".join(f"{lp} image {arn} --plain-http {registry.host} "
                                          f"--push {registry.host}/bench/layer{i:02}:v1 >/dev/null"
                                          for i, arn in enumerate(arns))
                        t, _ = run(cmd, work, env)
                        separate.append(t)
                        continue
                    plan = os.path.join(work, "plan.toml")
                    with open(plan, "w") as f:
                        for j in range(40):
                            layers = ", ".join(f'"{arns[k % 10]}"' for k in (j, j + 3))
                            f.write(f'[[job]]\nname = "job{j:02}"\nkind = "image"\nlayers = [{layers}]\n'
                                    f'push = "{registry.host}/bench/job{j:02}:v1"\n\n')
                    downloads = fake.downloads
                    t, r = run(f"{lp} batch plan.toml --plain-http {registry.host} >cold.jsonl", work, env)
                    cold.append(t)
                    rss = max(rss, r)
                    cold_downloads, cold_uploads = fake.downloads - downloads, registry.blob_uploads()
                    downloads = fake.downloads
                    t, r = run(f"{lp} batch plan.toml --plain-http {registry.host} >warm.jsonl", work, env)
                    warm.append(t)
                    rss = max(rss, r)
                    warm_downloads, warm_uploads = fake.downloads - downloads, registry.blob_uploads() - cold_uploads
                    statuses = [json.loads(line).get("status") for line in open(os.path.join(work, "warm.jsonl"))
                                if line.strip().startswith("{")]
                    if warm_downloads or warm_uploads:
                        failures.append(f"warm batch downloaded {warm_downloads} zips, uploaded {warm_uploads} blobs")
                    if cold_downloads != 10:
                        failures.append(f"cold batch downloaded {cold_downloads} zips for 10 distinct layers")
                    if len([s for s in statuses if s == "up-to-date"]) != 40:
                        failures.append(f"warm batch statuses: {sorted(set(map(str, statuses)))}")
                finally:
                    registry.stop()
    finally:
        fake.close()
    c, w, s = statistics.median(cold), statistics.median(warm), statistics.median(separate)
    rss_mb = rss * 1024 / 1e6
    lines = [
        f"batch: 40 image jobs (2 layers each) over 10 distinct layers, by ARN, pushed to docker-registry; median of {runs}",
        f"{'case':40} {'median s':>9}",
        f"{'10 x layerport image --push (separate)':40} {s:9.2f}",
        f"{'layerport batch, cold (empty cache)':40} {c:9.2f}",
        f"{'layerport batch, warm (nothing changed)':40} {w:9.2f}",
        f"cold batch / separate = {c / s:.2f}x (target <= 1.25)",
        f"warm / cold = {100 * w / c:.1f}% (target <= 5%), downloads and uploads on warm runs: "
        f"{'none' if not failures else 'SEE FAILURES'}",
        f"peak RSS batch = {rss_mb:.0f} MB (target <= 200)",
    ]
    if failures:
        sys.exit("FAIL: " + "; ".join(failures))
    return lines


def bench_migrate(run, binary: str, work: str, layer_zip: str, runs: int, root: str) -> list[str]:
    """A function with three benchmark-size layers migrated onto the stand-in base in a registry,
    against `layerport image` of the same three layers onto the same base (both cold)."""
    fake = FakeLambda()
    arns = [fake.add_layer(f"mig-{i}", z) for i, z in enumerate(layer_variants(work, layer_zip, 3))]
    code = os.path.join(work, "function")
    os.makedirs(code, exist_ok=True)
    with open(os.path.join(code, "app.py"), "w") as f:
        f.write("def handler(event, context):\n    return {'ok': True}\n")
    subprocess.run(["zip", "-q", "-X", "../function.zip", "app.py"], cwd=code, check=True)
    fake.add_function("bench-fn", os.path.join(work, "function.zip"), arns)
    base = f"oci:{os.path.join(root, 'testdata', 'good', 'sample', 'base')}:python3.12"
    times = {"image": [], "migrate": []}
    rss = dict.fromkeys(times, 0)
    try:
        for _ in range(runs):
            for case in times:
                cache = os.path.join(work, "cache")
                shutil.rmtree(cache, ignore_errors=True)
                registry = Registry(work)
                env = aws_env(fake, cache)
                target = f"{registry.host}/bench/{case}:v1"
                args = "bench-fn" if case == "migrate" else " ".join(arns)
                cmd = (f"{binary} -q {case} {args} --base {base} --plain-http {registry.host} "
                       f"--push {target} >/dev/null")
                try:
                    t, r = run(cmd, work, env)
                finally:
                    registry.stop()
                times[case].append(t)
                rss[case] = max(rss[case], r)
    finally:
        fake.close()
    med = {case: statistics.median(t) for case, t in times.items()}
    return [
        f"migrate: a function with 3 layers of the benchmark layer, by ARN, onto the stand-in base, pushed; median of {runs}",
        f"{'case':40} {'median s':>9} {'peak RSS MB':>12}",
        *(f"{'layerport ' + case:40} {med[case]:9.2f} {rss[case] * 1024 / 1e6:12.1f}" for case in times),
        f"migrate / image = {med['migrate'] / med['image']:.2f}x (target <= 1.3)",
    ]
