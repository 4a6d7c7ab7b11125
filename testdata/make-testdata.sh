#!/usr/bin/env bash
# Regenerates the layerport test-data zips in testdata/good and testdata/bad,
# plus testdata/SHA256SUMS. See testdata/README.md for what each file is for.
#
# Requirements: Info-ZIP zip 3.0 (with bzip2 support) and unzip, python3 (stdlib only).
# Deterministic: fixed mtimes (touch -d), TZ=UTC, sorted inputs, fixed ZipInfo.date_time,
# no random bytes. Rerunning gives byte-identical zips with the same tool versions, run as
# the same uid/gid (Info-ZIP stores the owner in its 0x7875 "ux" extra field; run as root,
# which is what the committed files were made with, to get uid/gid 0).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STAMP='2024-01-02 03:04:05 UTC'   # odd second on purpose: DOS time cannot hold it (see README)
export TZ=UTC LC_ALL=C
umask 022

for tool in zip unzip python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
SRC="$T/src"
OUT="$T/out"
mkdir -p "$SRC" "$OUT/good/sample" "$OUT/bad"

# stamp_and_zip OUT.zip [zip options...] < NAMES: run in the tree's root. Gives every listed entry
# (files, directories, symlinks themselves) the fixed mtime/atime, then zips exactly those names.
# Nothing may read the tree between the touch and zip: relatime would bump the atime that Info-ZIP
# stores in its local 0x5455 extra field (listing a directory counts as reading it).
stamp_and_zip() {
    local out="$1"
    shift
    cat > "$T/names"
    xargs -d '\n' touch -h -d "$STAMP" < "$T/names"
    zip -q -y "$@" -@ "$out" < "$T/names"
}

# izip OUT.zip DIR [zip options...]: Info-ZIP, entries in sorted order, directories as entries,
# symlinks stored as symlinks (-y). Equivalent to `zip -r -y` but with a sorted, explicit name
# list fed through -@ so the entry order does not depend on the filesystem's readdir order.
izip() {
    local out="$1" dir="$2"
    shift 2
    (cd "$dir" && find . -mindepth 1 | sed 's|^\./||' | sort | stamp_and_zip "$out" "$@")
}

# ---------------------------------------------------------------------------------------------
# Info-ZIP made good zips
# ---------------------------------------------------------------------------------------------

# good/infozip-symlinks.zip ------------------------------------------------------------------
d="$SRC/infozip-symlinks"
mkdir -p "$d/python/mod" "$d/lib" "$d/bin" "$d/share"
printf '"""Sample module."""\nVALUE = 42\n' > "$d/python/mod/__init__.py"
printf 'some data\n' > "$d/python/mod/data.txt"
ln -s __init__.py "$d/python/mod/link.py"
python3 - "$d/lib/libfoo.so.1" <<'PY'
import sys
# 320 bytes of "binary-ish" content: ELF magic then a fixed byte pattern.
data = b"\x7fELF\x02\x01\x01\x00" + bytes((i * 37 + 11) % 256 for i in range(312))
open(sys.argv[1], "wb").write(data)
PY
ln -s libfoo.so.1 "$d/lib/libfoo.so"
printf '#!/bin/sh\necho tool\n' > "$d/bin/tool"
printf '#!/bin/sh\necho suid\n' > "$d/bin/suid"
printf 'readable only by owner in the zip\n' > "$d/share/readonly.txt"
ln -s ../../etc/passwd "$d/share/escape"
find "$d" -type d -exec chmod 0755 {} +
chmod 0644 "$d/python/mod/__init__.py" "$d/python/mod/data.txt" "$d/lib/libfoo.so.1"
chmod 0700 "$d/bin/tool"
chmod 4755 "$d/bin/suid"
chmod 0600 "$d/share/readonly.txt"
izip "$OUT/good/infozip-symlinks.zip" "$d"

# good/stored.zip (zip -0: method 0, no compression) -----------------------------------------
d="$SRC/stored"
mkdir -p "$d/python/pkg"
printf 'print("stored")\n' > "$d/python/pkg/__init__.py"
printf 'stored, not deflated\n' > "$d/python/pkg/notes.txt"
izip "$OUT/good/stored.zip" "$d" -0

# good/longpath.zip --------------------------------------------------------------------------
d="$SRC/longpath"
# ~150-byte path made of ordinary-length components.
long1_dir="python/deeply_nested_directory_level_one/deeply_nested_directory_level_two/deeply_nested_directory_level_three"
long1="$long1_dir/module_with_a_rather_long_file_name.py"
# ~250-byte path whose last component alone is > 100 bytes (cannot be split into ustar prefix/name).
long2_dir="python/another_directory_with_a_long_name/and_a_second_level_directory_name/third_level/fourth_level_directory_to_reach_250"
long2="$long2_dir/$(printf 'x%.0s' $(seq 1 72))_file_name_longer_than_one_hundred_bytes_by_itself.txt"
mkdir -p "$d/$long1_dir" "$d/$long2_dir"
printf 'LONG = 1\n' > "$d/$long1"
printf 'long name\n' > "$d/$long2"
# Symlink in python/ whose (relative) target is > 100 bytes and points at $long1.
ln -s "${long1#python/}" "$d/python/link_to_long_module.py"
for p in "$long1" "$long2" "${long1#python/}"; do
    [ "${#p}" -gt 100 ] || { echo "longpath: '$p' is not > 100 bytes" >&2; exit 1; }
done
long2_base="$(basename "$long2")"
link_target="${long1#python/}"
echo "longpath.zip: path lengths ${#long1} and ${#long2} (last component ${#long2_base}), symlink target ${#link_target}"
izip "$OUT/good/longpath.zip" "$d"

# good/extensions-layer.zip ------------------------------------------------------------------
elf_stub() { # elf_stub FILE: a small file starting with ELF magic (not a runnable program)
    python3 -c 'import sys; open(sys.argv[1],"wb").write(b"\x7fELF\x02\x01\x01\x00" + bytes(range(8)) * 16 + b"helper stub\n")' "$1"
}
d="$SRC/extensions-layer"
mkdir -p "$d/extensions" "$d/my-extension/bin"
cat > "$d/extensions/my-extension" <<'EOF'
#!/bin/sh
set -eu
exec /opt/my-extension/bin/helper "$@"
EOF
elf_stub "$d/my-extension/bin/helper"
printf '{"log_level": "info", "buffer_ms": 100}\n' > "$d/my-extension/config.json"
chmod 0755 "$d/extensions/my-extension" "$d/my-extension/bin/helper"
chmod 0644 "$d/my-extension/config.json"
izip "$OUT/good/extensions-layer.zip" "$d"

# good/sample/deps.zip and good/sample/ext.zip (README quick start) --------------------------
d="$SRC/sample-deps"
mkdir -p "$d/python/requests" "$d/python/requests-2.31.0.dist-info" "$d/python/urllib3"
printf '"""Tiny stand-in for the requests package (test data)."""\nfrom .api import get\n__version__ = "2.31.0"\n' > "$d/python/requests/__init__.py"
printf 'def get(url, **kwargs):\n    """Pretend to fetch url."""\n    return {"url": url, "status": 200}\n' > "$d/python/requests/api.py"
printf 'class Response:\n    status_code = 200\n' > "$d/python/requests/models.py"
printf 'Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n' > "$d/python/requests-2.31.0.dist-info/METADATA"
printf 'requests\n' > "$d/python/requests-2.31.0.dist-info/top_level.txt"
printf '"""Tiny stand-in for urllib3 (test data)."""\n__version__ = "2.0.7"\n' > "$d/python/urllib3/__init__.py"
izip "$OUT/good/sample/deps.zip" "$d"

d="$SRC/sample-ext"
mkdir -p "$d/extensions" "$d/log-forwarder"
cat > "$d/extensions/log-forwarder" <<'EOF'
#!/bin/sh
# Minimal Lambda extension stand-in (test data).
echo "log-forwarder starting, config /opt/log-forwarder/config.yaml"
EOF
printf 'endpoint: https://logs.example.com/ingest\nbatch: 100\n' > "$d/log-forwarder/config.yaml"
chmod 0755 "$d/extensions/log-forwarder"
izip "$OUT/good/sample/ext.zip" "$d"

# good/sample/base (an OCI layout standing in for a Lambda Python base) and good/sample/plan.toml
python3 "$HERE/make-sample-base.py" "$OUT/good/sample/base"
cat > "$OUT/good/sample/plan.toml" <<'EOF'
# A sample batch plan over the bundled zips (README's quick start): three images on the stand-in
# base and a zip back from one of them, all written under out/. Paths are relative to where
# layerport runs.
[defaults]
base = "oci:testdata/good/sample/base:python3.12"

[[job]]
name = "deps"
kind = "image"
layers = ["testdata/good/sample/deps.zip"]
oci_layout = "out/batch:deps"

[[job]]
name = "deps-and-ext"
kind = "image"
layers = ["testdata/good/sample/deps.zip", "testdata/good/sample/ext.zip"]
oci_layout = "out/batch:deps-and-ext"

[[job]]
name = "ext"
kind = "image"
layers = ["testdata/good/sample/ext.zip"]
oci_layout = "out/batch:ext"

[[job]]
name = "deps-back"
kind = "zip"
image = "oci:out/batch:deps"
output = "out/deps-back.zip"
EOF

# ---------------------------------------------------------------------------------------------
# Info-ZIP made bad zips
# ---------------------------------------------------------------------------------------------

# bad/through-symlink.zip: python/link -> /tmp, then python/link/evil.txt (added by a 2nd zip run
# after the symlink was replaced by a directory; zip appends the new entry after the existing ones).
d="$SRC/through-symlink"
mkdir -p "$d/python"
ln -s /tmp "$d/python/link"
izip "$OUT/bad/through-symlink.zip" "$d"
rm "$d/python/link"
mkdir "$d/python/link"
printf 'written through a symlink\n' > "$d/python/link/evil.txt"
(cd "$d" && printf 'python/link/evil.txt\n' | stamp_and_zip "$OUT/bad/through-symlink.zip")

# bad/unsupported-method.zip: bzip2 (method 12)
d="$SRC/bzip2"
mkdir -p "$d/python"
# Big and repetitive enough that zip does not fall back to "stored" (it stores when compression
# does not shrink the file).
for i in $(seq 1 64); do printf 'line %02d: compressed with bzip2, method 12\n' "$i"; done > "$d/python/bz.txt"

izip "$OUT/bad/unsupported-method.zip" "$d" -Z bzip2
unzip -Z -v "$OUT/bad/unsupported-method.zip" python/bz.txt > "$T/bzinfo"
grep -q 'compression method: *bzipped' "$T/bzinfo" ||
    { echo "unsupported-method.zip: python/bz.txt is not bzip2-compressed" >&2; exit 1; }

# bad/drive-letter.zip: on Unix "C:" is an ordinary directory name, and Info-ZIP stores it as given.
# Names fed in this order so the harmless entry comes first.
d="$SRC/drive-letter"
mkdir -p "$d/python" "$d/C:"
printf 'harmless entry before the bad one\n' > "$d/python/ok.txt"
printf 'evil\n' > "$d/C:/evil.txt"
(cd "$d" && printf 'python\npython/ok.txt\nC:/evil.txt\n' | stamp_and_zip "$OUT/bad/drive-letter.zip")

# bad/crc-mismatch.zip starts as an Info-ZIP stored zip, patched below by Python.
d="$SRC/crc-stored"
mkdir -p "$d/python"
printf 'this entry is fine\n' > "$d/python/a_ok.txt"
printf 'this entry has one byte flipped after zipping\n' > "$d/python/b_corrupt.txt"
izip "$OUT/bad/crc-mismatch.zip" "$d" -0

# ---------------------------------------------------------------------------------------------
# Python zipfile made zips, and byte patches
# ---------------------------------------------------------------------------------------------
python3 - "$OUT" <<'PY'
import hashlib, os, struct, sys, warnings, zipfile, zlib
from zipfile import ZipFile, ZipInfo, ZIP_DEFLATED, ZIP_STORED

OUT = sys.argv[1]
DT = (2024, 1, 2, 3, 4, 5)  # DOS time has 2 s resolution: stored as 03:04:04
GOOD = os.path.join(OUT, "good")
BAD = os.path.join(OUT, "bad")


def unix(name, mode, method=ZIP_DEFLATED):
    zi = ZipInfo(name, DT)
    zi.create_system = 3
    zi.compress_type = method
    zi.external_attr = mode << 16
    return zi


def add_file(zf, name, data, mode=0o100644):
    if isinstance(data, str):
        data = data.encode()
    zf.writestr(unix(name, mode), data)


def add_dir(zf, name, mode=0o040755):
    zi = unix(name, mode, ZIP_STORED)
    zi.external_attr |= 0x10  # MS-DOS directory attribute, as Info-ZIP and Python write it
    zi.file_size = zi.compress_size = zi.CRC = 0
    zf.mkdir(zi)


def text_blob(size, seed=b"layerport"):
    """Semi-random but deterministic text (sha256 counter stream -> words)."""
    words = ["lambda", "layer", "opt", "python", "image", "tar", "zip", "digest", "manifest",
             "config", "symlink", "mode", "deflate", "stored", "extension", "runtime"]
    out, i = [], 0
    total = 0
    while total < size:
        h = hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
        for b in h:
            w = words[b % len(words)] + ("\n" if b % 11 == 0 else " ")
            out.append(w)
            total += len(w)
        i += 1
    return "".join(out)[:size - 1] + "\n"


def eocd(path):
    data = open(path, "rb").read()
    pos = data.rfind(b"PK\x05\x06")
    _, _, _, _, count, cd_size, cd_off, _ = struct.unpack("<4sHHHHIIH", data[pos:pos + 22])
    return data, count, cd_off


def central_headers(path):
    """[(name, central_header_offset, local_header_offset)] for every entry."""
    data, count, off = eocd(path)
    res = []
    for _ in range(count):
        assert data[off:off + 4] == b"PK\x01\x02"
        nlen, xlen, clen = struct.unpack("<HHH", data[off + 28:off + 34])
        lho = struct.unpack("<I", data[off + 42:off + 46])[0]
        name = data[off + 46:off + 46 + nlen].decode()
        res.append((name, off, lho))
        off += 46 + nlen + xlen + clen
    return res


def patch(path, offset, new_bytes, expect=None):
    with open(path, "r+b") as f:
        f.seek(offset)
        if expect is not None:
            assert f.read(len(expect)) == expect, (path, offset)
            f.seek(offset)
        f.write(new_bytes)


LOG = []

# good/python-zipfile.zip -----------------------------------------------------------------
p = os.path.join(GOOD, "python-zipfile.zip")
with ZipFile(p, "w") as zf:
    add_dir(zf, "python/")
    add_file(zf, "python/pkg/__init__.py", 'from .core import answer\n')
    add_file(zf, "python/pkg/core.py", 'def answer():\n    return 42\n')
    add_file(zf, "python/pkg/empty.txt", b"")
    add_file(zf, "python/pkg/big.txt", text_blob(80_000))
    add_file(zf, "python/pkg/run.sh", '#!/bin/sh\necho run\n', 0o100755)

# good/windows-style.zip ------------------------------------------------------------------
def dos(name):
    zi = ZipInfo(name, DT)
    zi.create_system = 0          # MS-DOS / FAT: no unix mode
    zi.compress_type = ZIP_DEFLATED
    zi.external_attr = 0x20       # FILE_ATTRIBUTE_ARCHIVE only
    return zi

p = os.path.join(GOOD, "windows-style.zip")
with ZipFile(p, "w") as zf:
    zf.writestr(dos("python/lib/helper.py"), b"def help():\r\n    return 'help'\r\n")
    zf.writestr(dos("extensions/my-ext"), b"#!/bin/bash\necho my-ext\n")
    zf.writestr(dos("bin/runner"), b"\x7fELF\x02\x01\x01\x00" + bytes(range(24)) + b"runner stub\n")
    zf.writestr(dos("bootstrap"), b"This bootstrap has no shebang line.\n")
    zf.writestr(dos("python/lib/tool.sh"), b"#!/bin/sh\necho tool\n")
    zf.writestr(dos("README.txt"), b"Made to look like a zip from a Windows tool.\r\n")
    zf.writestr(dos("python\\lib\\win.py"), b"WINDOWS = True\r\n")

# good/duplicates.zip ---------------------------------------------------------------------
p = os.path.join(GOOD, "duplicates.zip")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "Duplicate name: 'python/dup.txt'"
    with ZipFile(p, "w") as zf:
        add_file(zf, "python/dup.txt", "first\n")
        add_file(zf, "python/other.txt", "other\n")
        add_file(zf, "python/dup.txt", "second\n")

# good/override-a.zip, good/override-b.zip ------------------------------------------------
with ZipFile(os.path.join(GOOD, "override-a.zip"), "w") as zf:
    add_dir(zf, "python/")
    add_file(zf, "python/only_a.txt", "only in a\n")
    add_file(zf, "python/shared.txt", "from a\n")
    add_dir(zf, "python/thing/")
    add_file(zf, "python/thing/inner.txt", "inside a's directory python/thing\n")
    add_file(zf, "python/was_file", "a regular file in a\n")
with ZipFile(os.path.join(GOOD, "override-b.zip"), "w") as zf:
    add_dir(zf, "python/")
    add_file(zf, "python/only_b.txt", "only in b\n")
    add_file(zf, "python/shared.txt", "from b\n")
    add_file(zf, "python/thing", "a regular file in b, replacing a's directory\n")
    add_dir(zf, "python/was_file/")
    add_file(zf, "python/was_file/now_dir.txt", "python/was_file is a directory in b\n")

# bad: path escapes ---------------------------------------------------------------------------
for fname, evil in [("dotdot.zip", "python/../../evil.txt"),
                    ("absolute.zip", "/etc/evil.txt")]:
    with ZipFile(os.path.join(BAD, fname), "w") as zf:
        add_file(zf, "python/ok.txt", "harmless entry before the bad one\n")
        add_file(zf, evil, "evil\n")
    with ZipFile(os.path.join(BAD, fname)) as zf:
        assert zf.namelist()[-1] == evil, zf.namelist()

# bad/bomb.zip: 300,000,000 zero bytes, streamed ---------------------------------------------
BOMB = 300_000_000
CHUNK = b"\0" * (1 << 20)
def write_zeros(path, name, n):
    with ZipFile(path, "w") as zf:
        with zf.open(unix(name, 0o100644), "w") as w:
            left = n
            while left:
                k = min(left, len(CHUNK))
                w.write(CHUNK[:k])
                left -= k

write_zeros(os.path.join(BAD, "bomb.zip"), "python/zeros.bin", BOMB)
write_zeros(os.path.join(BAD, "large-ok.zip"), "python/zeros.bin", 1_000_000)

# bad/bomb-lying-header.zip: same, then both size fields claim 1000 bytes -----------------
p = os.path.join(BAD, "bomb-lying-header.zip")
write_zeros(p, "python/zeros.bin", BOMB)
[(name, cho, lho)] = central_headers(p)
real = struct.pack("<I", BOMB)
patch(p, lho + 22, struct.pack("<I", 1000), real)  # local header: uncompressed size
patch(p, cho + 24, struct.pack("<I", 1000), real)  # central header: uncompressed size
LOG.append(f"bomb-lying-header.zip: uncompressed size 300000000 -> 1000 at local offset {lho + 22} "
           f"and central offset {cho + 24}")

# bad/crc-mismatch.zip (Info-ZIP stored zip made above): flip one data byte of b_corrupt.txt --
p = os.path.join(BAD, "crc-mismatch.zip")
ent = {n: (c, l) for n, c, l in central_headers(p)}
cho, lho = ent["python/b_corrupt.txt"]
data = open(p, "rb").read()
assert struct.unpack("<H", data[lho + 8:lho + 10])[0] == 0  # stored
nlen, xlen = struct.unpack("<HH", data[lho + 26:lho + 30])
off = lho + 30 + nlen + xlen + 5  # 6th data byte: "this " + 'e' of "entry"
assert data[off:off + 1] == b"e"
patch(p, off, b"E", b"e")
LOG.append(f"crc-mismatch.zip: data byte at offset {off} 'e' -> 'E' in python/b_corrupt.txt (stored)")

# bad/crc-mismatch-deflate.zip: deflated entry, CRC field changed in local and central header
p = os.path.join(BAD, "crc-mismatch-deflate.zip")
with ZipFile(p, "w") as zf:
    add_file(zf, "python/a_ok.txt", "this entry is fine\n")
    add_file(zf, "python/b_bad_crc.txt", "the CRC-32 fields of this entry were altered\n" * 4)
ent = {n: (c, l) for n, c, l in central_headers(p)}
cho, lho = ent["python/b_bad_crc.txt"]
data = open(p, "rb").read()
crc = data[lho + 14:lho + 18]
assert data[cho + 16:cho + 20] == crc
bad = struct.pack("<I", struct.unpack("<I", crc)[0] ^ 0xFFFFFFFF)
patch(p, lho + 14, bad, crc)
patch(p, cho + 16, bad, crc)
LOG.append(f"crc-mismatch-deflate.zip: CRC-32 {crc[::-1].hex()} -> {bad[::-1].hex()} at local offset "
           f"{lho + 14} and central offset {cho + 16}")

# bad/encrypted.zip: traditional PKWARE (ZipCrypto) encryption, password "secret" ----------
# Info-ZIP's `zip -P secret` seeds the 12-byte encryption header from time() and the pid, so
# its output is never reproducible; this writes the same format with a fixed header instead.
CRCTAB = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
    CRCTAB.append(c)

def zipcrypto(plain, password):
    k = [0x12345678, 0x23456789, 0x34567890]
    def upd(b):
        k[0] = (k[0] >> 8) ^ CRCTAB[(k[0] ^ b) & 0xFF]
        k[1] = ((k[1] + (k[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k[2] = (k[2] >> 8) ^ CRCTAB[(k[2] ^ (k[1] >> 24)) & 0xFF]
    for b in password:
        upd(b)
    out = bytearray()
    for b in plain:
        t = (k[2] | 2) & 0xFFFF
        out.append(b ^ (((t * (t ^ 1)) >> 8) & 0xFF))
        upd(b)
    return bytes(out)

def dos_datetime(dt):
    y, mo, d, h, mi, s = dt
    return (h << 11) | (mi << 5) | (s // 2), ((y - 1980) << 9) | (mo << 5) | d

def raw_zip(path, entries):
    """entries: [(name, method, flags, crc, comp_bytes, size, unix_mode)]; no extra fields."""
    t, d = dos_datetime(DT)
    local, central = bytearray(), bytearray()
    for name, method, flags, crc, comp, size, mode in entries:
        nb = name.encode()
        off = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, t, d, crc,
                             len(comp), size, len(nb), 0) + nb + comp
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 20, 20, flags, method,
                               t, d, crc, len(comp), size, len(nb), 0, 0, 0, 0, mode << 16, off) + nb
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central),
                      len(local), 0)
    open(path, "wb").write(bytes(local + central + end))

plain = b"this entry is encrypted with password 'secret'\n" * 3
crc = zlib.crc32(plain)
co = zlib.compressobj(9, zlib.DEFLATED, -15)
comp = co.compress(plain) + co.flush()
header = hashlib.sha256(b"layerport encrypted.zip header").digest()[:11] + bytes([crc >> 24])
enc = zipcrypto(header + comp, b"secret")
raw_zip(os.path.join(BAD, "encrypted.zip"),
        [("python/secret.txt", 8, 0x1, crc, enc, len(plain), 0o100644)])

# bad/empty.zip: valid, zero entries (just the 22-byte end of central directory record) -----
with ZipFile(os.path.join(BAD, "empty.zip"), "w"):
    pass

for line in LOG:
    print(line)
PY

# bad/truncated.zip: first half of good/python-zipfile.zip (no central directory) -----------
src_zip="$OUT/good/python-zipfile.zip"
size=$(stat -c %s "$src_zip")
head -c $((size / 2)) "$src_zip" > "$OUT/bad/truncated.zip"
echo "truncated.zip: first $((size / 2)) of $size bytes of good/python-zipfile.zip"

# bad/not-a-zip.zip -------------------------------------------------------------------------
printf 'This is a plain text file with a .zip name; it is not a zip archive.\n' > "$OUT/bad/not-a-zip.zip"

# ---------------------------------------------------------------------------------------------
# Self-check, then install into testdata/
# ---------------------------------------------------------------------------------------------
for z in "$OUT"/good/*.zip "$OUT"/good/sample/*.zip "$OUT/bad/large-ok.zip"; do
    rc=0
    unzip -tqq "$z" >/dev/null 2>&1 || rc=$?
    # windows-style.zip: unzip exits 1 (warning) for the backslash-separated name.
    if [ "$rc" -ne 0 ] && ! { [ "$rc" -eq 1 ] && [ "$(basename "$z")" = windows-style.zip ]; }; then
        echo "self-check: unzip -t failed ($rc) for $z" >&2; exit 1
    fi
done
unzip -P secret -tqq "$OUT/bad/encrypted.zip" >/dev/null || { echo "self-check: encrypted.zip does not decrypt" >&2; exit 1; }
for z in truncated crc-mismatch crc-mismatch-deflate not-a-zip; do
    if unzip -tqq "$OUT/bad/$z.zip" >/dev/null 2>&1; then
        echo "self-check: unzip -t unexpectedly passed for bad/$z.zip" >&2; exit 1
    fi
done

rm -rf "$HERE/good" "$HERE/bad"
mv "$OUT/good" "$OUT/bad" "$HERE/"
(cd "$HERE" && find good bad -type f | sort | xargs sha256sum > SHA256SUMS)
echo
echo "== $HERE/SHA256SUMS"
cat "$HERE/SHA256SUMS"
