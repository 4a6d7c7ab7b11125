#!/usr/bin/env python3
"""Times `layerport image` against the shell pipelines users would otherwise write (unzip + tar + gzip -6,
and the same with pigz), on one deterministic, realistic layer, in the same run. Prints medians, ratios,
output sizes and peak RSS.

The layer is synthetic but shaped like a numpy+pandas+requests layer: many small .py text files, large
.so-like binaries (mixed compressibility) and already-compressed files. SIZE_MB sets its unzipped size.
"""
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE_MB = int(os.environ.get("SIZE_MB", "110"))
RUNS = int(os.environ.get("RUNS", "3"))


def make_tree(dest: str) -> None:
    rng = random.Random(20261121)
    target = SIZE_MB * 1024 * 1024
    words = [
        "import", "def", "return", "self", "numpy", "array", "dtype", "if", "else", "for", "in", "range",
        "pandas", "frame", "series", "index", "value", "None", "True", "False", "class", "yield", "with",
    ]
    written = 0
    n = 0
    while written < target:
        n += 1
        pkg = ("numpy", "pandas", "requests", "urllib3", "dateutil")[n % 5]
        kind = rng.random()
        sub = os.path.join(dest, "python", pkg, f"mod{n % 37}")
        os.makedirs(sub, exist_ok=True)
        if kind < 0.55:  # Python source: compressible text
            lines = []
            for _ in range(rng.randint(20, 600)):
                lines.append("    " * rng.randint(0, 3) + " ".join(rng.choice(words) for _ in range(rng.randint(2, 12))))
            data = ("\n".join(lines) + "\n").encode()
            name = f"f{n}.py"
        elif kind < 0.9:  # shared objects: code-like bytes, partly compressible
            size = rng.randint(200_000, 4_000_000)
            block = bytes(rng.getrandbits(8) for _ in range(4096))
            reps = []
            while sum(map(len, reps)) < size:
                reps.append(block if rng.random() < 0.6 else rng.randbytes(4096))
            data = b"\x7fELF" + b"".join(reps)[:size]
            name = f"_lib{n}.cpython-312-x86_64-linux-gnu.so"
        else:  # already compressed (wheels' data files, .npz, images)
            data = rng.randbytes(rng.randint(50_000, 1_500_000))
            name = f"data{n}.npz"
        with open(os.path.join(sub, name), "wb") as f:
            f.write(data)
        written += len(data)
    for dirpath, dirnames, filenames in os.walk(dest):
        for x in dirnames + filenames:
            os.utime(os.path.join(dirpath, x), (1704164645, 1704164645))


def run(cmd: str, cwd: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a shell command, the largest of its processes.

    GNU time measures it: a child forked straight from this Python process would carry Python's own
    resident size into its high-water mark, which is what an earlier version of this script reported.
    """
    with tempfile.NamedTemporaryFile("r") as rss_file:
        start = time.perf_counter()
        status = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", rss_file.name, "bash", "-c", cmd], cwd=cwd)
        elapsed = time.perf_counter() - start
        if status != 0:
            sys.exit(f"benchmark command failed ({status}): {cmd}")
        return elapsed, int(rss_file.read().strip().splitlines()[-1])


def main() -> None:
    binary = os.path.join(ROOT, "target", "release", "layerport")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    for tool, package in (("zip", "zip"), ("unzip", "unzip"), ("tar", "tar"), ("gzip", "gzip"), ("pigz", "pigz"), ("/usr/bin/time", "time")):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: install it with apt-get install {package}")
    work = tempfile.mkdtemp(prefix="layerport-bench-")
    try:
        tree = os.path.join(work, "tree")
        make_tree(tree)
        subprocess.run(f"cd {tree} && zip -q -r -X ../layer.zip .", shell=True, check=True)
        zip_size = os.path.getsize(os.path.join(work, "layer.zip"))
        unzipped = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tree) for f in fs)
        shutil.rmtree(tree)
        cases = {
            "layerport image": f"rm -rf out && {binary} -q image layer.zip --oci-layout out:bench >/dev/null",
            "unzip+tar+gzip -6": "rm -rf x l.tgz && mkdir -p x/opt && unzip -q layer.zip -d x/opt && tar -C x -cf - opt | gzip -6 > l.tgz",
            "unzip+tar+pigz -6": "rm -rf x l.tgz && mkdir -p x/opt && unzip -q layer.zip -d x/opt && tar -C x -cf - opt | pigz -6 > l.tgz",
        }
        results = {}
        for name, cmd in cases.items():
            times, rss = [], 0
            for _ in range(RUNS):
                t, r = run(cmd, work)
                times.append(t)
                rss = max(rss, r)
            if name == "layerport image":
                blobs = os.path.join(work, "out", "blobs", "sha256")
                size = max(os.path.getsize(os.path.join(blobs, b)) for b in os.listdir(blobs))
            else:
                size = os.path.getsize(os.path.join(work, "l.tgz"))
            results[name] = (statistics.median(times), rss, size)
        base = results["layerport image"][0]
        print(f"layer: {unzipped / 1e6:.1f} MB unzipped, zip {zip_size / 1e6:.1f} MB; {RUNS} runs each; {os.cpu_count()} cores")
        print(f"{'case':22} {'median s':>9} {'vs layerport':>13} {'output MB':>10} {'out/zip':>8} {'peak RSS MB':>12}")
        for name, (t, rss, size) in results.items():
            print(f"{name:22} {t:9.2f} {t / base:12.2f}x {size / 1e6:10.1f} {size / zip_size:8.3f} {rss / 1024:12.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
