#!/usr/bin/env python3
"""Times layerport against the shell pipelines users would otherwise write, in the same run, on one
deterministic, realistic Lambda layer, and prints the numbers the performance requirement is stated in.

Cases, in RUNS interleaved rounds (default 3; median wall time, worst peak RSS as GNU time sees it):
  layerport image [--recompress]   zip -> OCI layer, splicing the zip's deflate streams (or gzip -6 afresh)
  unzip+tar+gzip -6, +pigz -6      what a user would otherwise run
  unzip alone, tar+gzip/pigz alone those pipelines' parts (the tree unzipped untimed for the latter)
  layerport zip --threads 1, 2     OCI layer -> layer zip; the two zips must be byte-identical
First it checks that the spliced and the recompressed blobs decompress to the same tar; every round
checks that `layerport image` wrote the same blob again, and at the end the zip of the recompressed
image must equal the zip of the spliced one.

  batch    40 image jobs (two layers each) over 10 distinct copies of the layer, fetched by ARN and
           pushed to a local docker-registry: cold (empty cache and registry) and warm (nothing changed,
           which must download and upload nothing and report every job up to date), against the 10
           layers converted and pushed by 10 separate `layerport image` runs
  migrate  a function with three copies of the layer migrated onto the stand-in base
           (testdata/good/sample/base) and pushed, against `layerport image` of the same layers and base
The last two run against a Lambda stand-in on loopback (scripts/bench_fleet.py): AWS is not reached.
Name the cases to run (`python3 scripts/bench.py batch migrate`); all three by default.

The requirement is about a numpy+pandas+requests layer (about 110 MB unzipped, 30 MB zipped), so that
is the layer: the real wheels (CPython 3.12, manylinux x86_64, with dependencies) unpacked into python/
when PyPI answers (cached in ~/.cache/layerport-bench/). Otherwise, or with LAYER=synthetic or a SIZE_MB
other than 110, a seeded synthesis of the same shape and compressibility under zip -6: 41% Python-like
source in ~3000 small .py files (~4.7x), 55% .so-like binaries of instruction-like tokens, symbol strings,
relocation tables and padding (~3.4x), 1% tzdata-like files, 3% already-compressed data. SIZE_MB (default
110) is its unzipped size in MB of 10^6 bytes; at 110 it zips to about 32 MB.
"""
import filecmp
import glob
import gzip
import hashlib
import itertools
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zipfile

import bench_fleet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE_MB = int(os.environ.get("SIZE_MB", "110"))
RUNS = int(os.environ.get("RUNS", "3"))
LAYER = os.environ.get("LAYER", "auto")  # auto, wheels or synthetic
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "layerport-bench", "wheels-cp312-manylinux2014_x86_64")
EPOCH = 1704164645


def fetch_wheels() -> list[str]:
    """The cached wheels, downloaded first if need be (20 s at most); [] if PyPI cannot be reached."""
    if not os.path.exists(os.path.join(CACHE, "complete")):
        partial = CACHE + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
               "--platform", "manylinux2014_x86_64", "--python-version", "3.12", "--implementation", "cp",
               "--timeout", "5", "--retries", "0", "-d", partial, "numpy", "pandas", "requests"]
        try:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20, check=True)
        except (subprocess.SubprocessError, OSError):
            shutil.rmtree(partial, ignore_errors=True)
            print("PyPI unreachable: the layer will be synthetic", file=sys.stderr)
            return []
        shutil.rmtree(CACHE, ignore_errors=True)
        os.rename(partial, CACHE)
        open(os.path.join(CACHE, "complete"), "w").close()
    return sorted(glob.glob(os.path.join(CACHE, "*.whl")))


def unpack_wheels(wheels: list[str], dest: str) -> None:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                path = z.extract(info, os.path.join(dest, "python"))
                if not info.is_dir() and info.external_attr >> 16 & 0o777:
                    os.chmod(path, info.external_attr >> 16 & 0o777)


def synth_tree(dest: str) -> None:
    rng = random.Random(20261121)
    syl = ("ar ray d type in dex val ue get set ser ies fra me col umn re quest ses sion url lib pars er date time "
           "zone buf fer str ide shape re size trans form mask nan sum mean axis block hash key item iter chunk read "
           "write open path conn pool head meth od to from na fill group by merge join cat loc arg sort").split()
    ids = sorted({"_".join("".join(rng.choices(syl, k=rng.randint(1, 3))) for _ in range(rng.randint(1, 2))) for _ in range(4000)})
    words = ("the of a to is and in that for it be with as on not this are by from or if an which return array value "
             "values index data must will when given default object type see also parameters returns raises axis "
             "length shape only each should otherwise dtype optional int bool str list tuple new copy whether").split()
    # instruction-like byte sequences (opcodes, registers, zero-heavy immediates), used with Zipf frequencies
    tokens = [bytes(b if rng.random() < 0.7 else 0 for b in rng.randbytes(rng.randint(1, 7))) for _ in range(4096)]
    cum = list(itertools.accumulate(1 / (i + 1) ** 1.5 for i in range(4096)))

    prose = lambda k: " ".join(rng.choices(words, k=k))  # noqa: E731
    lognormal = lambda median, sigma, lo, hi: int(min(hi, max(lo, rng.lognormvariate(0, sigma) * median)))  # noqa: E731

    def py_source(size: int) -> bytes:
        names, mods = rng.sample(ids, 14), rng.sample(ids, 8)
        n = lambda: rng.choice(names)  # noqa: E731
        body = (lambda i: f"{i}{n()} = {n()}.{n()}({n()}, axis={rng.randint(0, 2)})\n",
                lambda i: f"{i}if {n()} is None:\n{i}    return {n()}[{rng.randint(0, 99)}]\n",
                lambda i: f"{i}for {n()} in range(len({n()})):\n{i}    {n()} += {n()}.{n()}\n",
                lambda i: f"{i}# {prose(rng.randint(4, 12))}\n",
                lambda i: f'{i}raise ValueError(f"{prose(rng.randint(2, 6))} {{{n()}!r}}")\n',
                lambda i: f"{i}{n()}.{n()} = {n()}({n()}, {n()}={n()})\n")
        out = [f'"""{prose(8).capitalize()}.\n\n{prose(30)}\n"""\n']
        out += [f"from {rng.choice(mods)}.{n()} import {n()}, {n()}\n" for _ in range(rng.randint(2, 12))]
        total = sum(map(len, out))
        while total < size:
            i = "    " if rng.random() < 0.7 else ""
            part = [f"\n\nclass {n().title().replace('_', '')}({n().title().replace('_', '')}):\n"] if i and rng.random() < 0.1 else []
            part.append(f'\n{i}def {n()}(self, {n()}, {n()}=None, **kwargs):\n{i}    """{prose(rng.randint(4, 14)).capitalize()}.\n\n')
            part += [f"{i}    {n()} : {rng.choice(('int', 'bool', 'str', 'array_like', 'dtype, optional'))}\n"
                     f"{i}        {prose(rng.randint(5, 16))}.\n" for _ in range(rng.randint(0, 4))]
            part += [f'{i}    """\n'] + [rng.choice(body)(i + "    ") for _ in range(rng.randint(2, 15))]
            out += part
            total += sum(map(len, part))
        return "".join(out).encode()[:size]

    def so_binary(size: int) -> bytes:
        parts, total = [b"\x7fELF\x02\x01\x01" + bytes(57)], 64
        while total < size:
            r = rng.random()  # sections of tens of KB, so each deflate block sees one kind, as in a real .so
            if r < 0.30:  # .text
                part = b"".join(rng.choices(tokens, cum_weights=cum, k=rng.randint(1600, 12000)))
            elif r < 0.63:  # .dynstr / .strtab
                syms = rng.choices(ids, k=rng.randint(400, 3200))
                part = "\0".join(rng.choice(("PyArray_", "_ZN6pandas", "npy_", "")) + x for x in syms).encode()
            elif r < 0.93:  # .rela.dyn: mostly R_X86_64_RELATIVE, sorted offsets
                base = rng.randrange(1 << 20)
                part = b"".join(struct.pack("<QQq", base + 8 * k, rng.choice((8, 8, 8, 6, 7 | rng.randrange(64) << 32)),
                                            base + 16 * k + 8 * rng.randrange(4)) for k in range(rng.randint(320, 2000)))
            elif r < 0.97:  # alignment padding
                part = bytes(rng.randint(256, 8192))
            else:  # .rodata: constants, lookup tables
                part = rng.randbytes(rng.randint(2048, 32768))
            parts.append(part)
            total += len(part)
        return b"".join(parts)[:size]

    def tzif(size: int) -> bytes:  # sorted transition times, type indices, abbreviations
        times = b"".join(struct.pack(">qB", 15778800 * k + 3600 * rng.randrange(3), rng.randrange(4)) for k in range(size // 5))
        return (b"TZif2" + bytes(39) + times + b"LMT\0EST\0EDT\0")[:size]

    pkgs = ("numpy", "pandas", "requests", "urllib3", "dateutil", "charset_normalizer", "idna", "certifi")
    dirs = [os.path.join(rng.choice(pkgs), *rng.sample(ids, rng.randint(0, 2))) for _ in range(150)]  # packages
    plan = [  # share of bytes, size draw, name, contents
        (0.41, lambda: lognormal(5500, 1.4, 100, 400_000), lambda n: f"{rng.choice(ids)}_{n}.py", py_source),
        (0.55, lambda: lognormal(250_000, 1.3, 16_000, 3_000_000), lambda n: f"_{rng.choice(ids)}_{n}.cpython-312-x86_64-linux-gnu.so",
         so_binary),
        (0.01, lambda: rng.randint(800, 3000), lambda n: f"zoneinfo/{rng.choice(ids).title()}{n}", tzif),
        (0.03, lambda: lognormal(200_000, 1.0, 20_000, 1_500_000), lambda n: f"{rng.choice(ids)}_{n}.{rng.choice(('npz', 'png', 'gz'))}",
         rng.randbytes)]
    files = [(1, int(0.2 * 0.55 * SIZE_MB * 1e6))]  # one libopenblas-sized .so, as numpy.libs has
    for kind, (share, draw, _, _) in enumerate(plan):
        budget = share * SIZE_MB * 1e6 - sum(size for k, size in files if k == kind)
        while budget > 0:
            files.append((kind, max(100, min(draw(), int(budget)))))
            budget -= files[-1][1]
    for n, (kind, size) in enumerate(files):
        path = os.path.join(dest, "python", rng.choice(dirs), plan[kind][2](n))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(plan[kind][3](size))


def run(cmd: str, cwd: str, env: dict | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a shell command, the largest of its processes. GNU time measures
    it: a child forked from this Python process would carry Python's own resident size into its high-water mark."""
    with tempfile.NamedTemporaryFile("r") as rss_file:
        start = time.perf_counter()
        status = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", rss_file.name, "bash", "-c", cmd], cwd=cwd, env=env)
        elapsed = time.perf_counter() - start
        if status != 0:
            sys.exit(f"benchmark command failed ({status}): {cmd}")
        return elapsed, int(rss_file.read().strip().splitlines()[-1])


def layer_blob(layout: str) -> str:
    """The path of the (last) layer blob of the image in an OCI layout."""
    blob = lambda digest: os.path.join(layout, "blobs", *digest.split(":"))  # noqa: E731
    with open(os.path.join(layout, "index.json")) as f:
        manifest = json.load(f)["manifests"][0]["digest"]
    with open(blob(manifest)) as f:
        return blob(json.load(f)["layers"][-1]["digest"])


def tar_sha256(blob: str) -> str:
    digest = hashlib.sha256()
    with gzip.open(blob, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown CPU")


def make_layer(work: str) -> tuple[str, str, int, int, int]:
    """The benchmark layer zip in WORK: (path, where it came from, unzipped bytes, files, zip bytes)."""
    tree = os.path.join(work, "tree")
    wheels = fetch_wheels() if LAYER == "wheels" or (LAYER == "auto" and SIZE_MB == 110) else []
    if wheels:
        unpack_wheels(wheels, tree)
        top = [f"{n[0]} {n[1]}" for n in (os.path.basename(w).split("-") for w in wheels) if n[0] in ("numpy", "pandas", "requests")]
        source = f"PyPI wheels ({', '.join(top)} + {len(wheels) - len(top)} dependencies)"
    elif LAYER == "wheels":
        sys.exit("LAYER=wheels: could not download the wheels from PyPI")
    else:
        synth_tree(tree)
        source = "synthetic (seeded)"
    files = unzipped = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        files += len(filenames)
        unzipped += sum(os.path.getsize(os.path.join(dirpath, f)) for f in filenames)
        for x in dirnames + filenames:
            os.utime(os.path.join(dirpath, x), (EPOCH, EPOCH))
    # zip -r -X, given the entries in sorted order so that the zip does not depend on directory order
    subprocess.run("find . -mindepth 1 | LC_ALL=C sort | zip -q -X -@ ../layer.zip", shell=True, cwd=tree, check=True)
    shutil.rmtree(tree)
    path = os.path.join(work, "layer.zip")
    return path, source, unzipped, files, os.path.getsize(path)


CASES = ("image", "batch", "migrate")


def main() -> None:
    chosen = sys.argv[1:] or list(CASES)
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        sys.exit(f"unknown case {', '.join(unknown)}: the cases are {', '.join(CASES)}")
    binary = os.path.join(ROOT, "target", "release", "layerport")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    for tool, package in (("zip", "zip"), ("unzip", "unzip"), ("tar", "tar"), ("gzip", "gzip"), ("pigz", "pigz"), ("/usr/bin/time", "time")):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: install it with apt-get install {package}")
    work = tempfile.mkdtemp(prefix="layerport-bench-")
    try:
        layer_zip, source, unzipped, files, zip_size = make_layer(work)
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores")
        print(f"layer: {unzipped / 1e6:.1f} MB unzipped, {zip_size / 1e6:.1f} MB zip ({unzipped / zip_size:.2f}x), "
              f"{files} files, {source}; median of {RUNS} runs")
        if "image" in chosen:
            bench_image(binary, work, zip_size)
        if "batch" in chosen:
            print("\n".join(bench_fleet.bench_batch(run, binary, work, layer_zip, RUNS)))
        if "migrate" in chosen:
            print("\n".join(bench_fleet.bench_migrate(run, binary, work, layer_zip, RUNS, ROOT)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_image(binary: str, work: str, zip_size: int) -> None:
    """layerport image and zip against the shell pipelines, on layer.zip in WORK."""
    lp = f"{binary} -q"
    cases = {  # name: (untimed preparation, timed command, output file or OCI layout)
        "layerport image": ("rm -rf out", f"{lp} image layer.zip --oci-layout out:bench >/dev/null", "out"),
        "layerport image --recompress": ("rm -rf out2", f"{lp} image layer.zip --recompress --oci-layout out2:bench >/dev/null", "out2"),
        "unzip+tar+gzip -6": ("rm -rf x l.tgz && mkdir -p x/opt", "unzip -q layer.zip -d x/opt && tar -C x -cf - opt | gzip -6 > l.tgz", "l.tgz"),
        "unzip+tar+pigz -6": ("rm -rf x l2.tgz && mkdir -p x/opt", "unzip -q layer.zip -d x/opt && tar -C x -cf - opt | pigz -6 > l2.tgz", "l2.tgz"),
        # The pipelines' parts alone, the tree unzipped beforehand (untimed) for the last two.
        "unzip alone": ("rm -rf x && mkdir -p x/opt", "unzip -q layer.zip -d x/opt", None),
        "tar+gzip -6 alone": ("rm -rf x l3.tgz && mkdir -p x/opt && unzip -q layer.zip -d x/opt", "tar -C x -cf - opt | gzip -6 > l3.tgz", "l3.tgz"),
        "tar+pigz -6 alone": ("rm -rf x l4.tgz && mkdir -p x/opt && unzip -q layer.zip -d x/opt", "tar -C x -cf - opt | pigz -6 > l4.tgz", "l4.tgz"),
        "layerport zip --threads 1": ("rm -f back1.zip", f"{lp} zip oci:out:bench -o back1.zip --threads 1 >/dev/null", "back1.zip"),
        "layerport zip --threads 2": ("rm -f back2.zip", f"{lp} zip oci:out:bench -o back2.zip --threads 2 >/dev/null", "back2.zip"),
    }

    def path(name: str) -> str:
        output = os.path.join(work, cases[name][2])
        return layer_blob(output) if name.startswith("layerport image") else output

    def timed(name: str) -> tuple[float, int]:
        subprocess.run(cases[name][0], shell=True, cwd=work, check=True)
        return run(cases[name][1], work)

    # Correctness first (doubling as a warm-up): both image modes must carry the very same tar.
    for name in (n for n in cases if n.startswith("layerport")):
        timed(name)
    spliced, recompressed = tar_sha256(path("layerport image")), tar_sha256(path("layerport image --recompress"))
    if spliced != recompressed:
        sys.exit(f"FAIL: the spliced and the recompressed layers hold different tars ({spliced} != {recompressed})")

    first_blob = layer_blob(os.path.join(work, "out"))
    times, rss = {name: [] for name in cases}, dict.fromkeys(cases, 0)
    for _ in range(RUNS):  # rounds, so that any drift of the machine hits every case alike
        for name in cases:
            t, r = timed(name)
            times[name].append(t)
            rss[name] = max(rss[name], r * 1024 / 1e6)
        if not filecmp.cmp(path("layerport zip --threads 1"), path("layerport zip --threads 2"), shallow=False):
            sys.exit("FAIL: layerport zip wrote different zips with --threads 1 and --threads 2")
        if layer_blob(os.path.join(work, "out")) != first_blob:
            sys.exit("FAIL: layerport image wrote a different layer blob in another round")
    # The recompressed layer holds the same tar, so it must give the very same zip.
    run(f"{lp} zip oci:out2:bench -o back3.zip >/dev/null", work)
    if not filecmp.cmp(path("layerport zip --threads 1"), os.path.join(work, "back3.zip"), shallow=False):
        sys.exit("FAIL: the zips of the spliced and of the recompressed image differ")
    med = {name: statistics.median(t) for name, t in times.items()}
    size = {name: os.path.getsize(path(name)) for name in cases if cases[name][2]}
    base = med["layerport image"]
    print(f"{'case':30} {'median s':>9} {'vs image':>9} {'output MB':>10} {'out/zip':>8} {'peak RSS MB':>12}")
    for name in cases:
        out = f"{size[name] / 1e6:10.1f} {size[name] / zip_size:8.3f}" if name in size else f"{'-':>10} {'-':>8}"
        print(f"{name:30} {med[name]:9.2f} {med[name] / base:8.2f}x {out} {rss[name]:12.1f}")
    print(f"gzip pipeline / layerport image = {med['unzip+tar+gzip -6'] / base:.2f}x (target >= 8)")
    print(f"pigz pipeline / layerport image = {med['unzip+tar+pigz -6'] / base:.2f}x (target >= 4)")
    print(f"tar+gzip -6 alone / layerport image = {med['tar+gzip -6 alone'] / base:.2f}x, "
          f"tar+pigz -6 alone / layerport image = {med['tar+pigz -6 alone'] / base:.2f}x")
    print(f"layer / zip = {size['layerport image'] / zip_size:.3f} (target <= 1.02)")
    print(f"peak RSS layerport image = {rss['layerport image']:.0f} MB (target < 100)")
    print(f"zip --threads 1 / --threads 2 = {med['layerport zip --threads 1'] / med['layerport zip --threads 2']:.2f}x (target >= 1.8)")


if __name__ == "__main__":
    main()
