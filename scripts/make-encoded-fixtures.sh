#!/usr/bin/env bash
# make-encoded-fixtures.sh - regenerate test/fixtures/encoded/ from a real kernel.
#
# For each btrfs compression algorithm (zlib, zstd, lzo) this builds a
# throw-away btrfs filesystem on a sparse loop image mounted with
# compress-force=<algo>, writes a few files whose extents end up compressed
# (aligned and unaligned sizes, full 128 KiB extents, a text/random mix, a file
# overwritten in the middle so that an extent is referenced with a non-zero
# unencoded_offset, a run of zeros), takes a read-only snapshot and records
# `btrfs send --proto 2 --compressed-data`.  The ENCODED_WRITE commands are
# pulled out of the stream with ferry's own decoder (src/stream/decoder.ts,
# transpiled on the fly with @swc/core) and each one's DATA is saved as
# <algo>-<file>-<offset>.bin, with its attributes and the sha256 of the file
# range it must produce (read back from the snapshot) in manifest.json.
#
# Usage:   sudo scripts/make-encoded-fixtures.sh [OUTDIR]
#          (OUTDIR defaults to <repo>/test/fixtures/encoded)
# Needs:   root, loop devices, btrfs-progs, openssl, node (with the repo's
#          node_modules installed: npm ci).
#
# Only OUTDIR is written: its *.bin files, manifest.json and README.md are
# replaced. Everything else happens in a mktemp directory that is unmounted,
# detached and removed on every exit path (trap), including failures.

set -euo pipefail

if [[ ${EUID:-$(id -u)} -ne 0 ]]; then
  echo "make-encoded-fixtures.sh: this script needs root (loop devices, mkfs, mount)." >&2
  echo "Please re-run it with sudo." >&2
  exit 1
fi

umask 022
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$REPO/test/fixtures/encoded}"
ALGOS=(zlib zstd lzo)

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

for tool in btrfs mkfs.btrfs losetup mount umount openssl node sha256sum truncate; do
  have "$tool" || die "required tool '$tool' not found"
done
[[ -d $REPO/node_modules/@swc/core ]] || die "run 'npm ci' in $REPO first (needs @swc/core)"

# Deterministic pseudo-random bytes: AES-128-CTR keystream of zeros.
# detrand SIZE SEED
detrand() {
  local key
  key=$(printf '%032x' "$2")
  head -c "$1" /dev/zero | openssl enc -aes-128-ctr -K "$key" -iv "$key"
}

# Compressible, non-constant text of exactly SIZE bytes.  compressible SIZE TAG
compressible() {
  local lines=$(( $1 / 24 + 1 ))
  { seq -f "$2 %08.0f ferry encoded fixture" "$lines" || true; } | head -c "$1"
}

# --------------------------------------------------------- scratch space --
TMP=$(mktemp -d /tmp/ferry-encoded.XXXXXX)
MNT="$TMP/mnt"
STAGE="$TMP/stage"
LOOP=""
mkdir -p "$MNT" "$STAGE"

unmount_all() {
  if mountpoint -q "$MNT" 2>/dev/null; then
    umount "$MNT" 2>/dev/null || umount -l "$MNT" || true
  fi
  if [[ -n $LOOP ]]; then losetup -d "$LOOP" 2>/dev/null || true; LOOP=""; fi
}

cleanup() {
  local rc=$?
  cd /
  unmount_all
  rm -rf "$TMP"
  if [[ $rc -ne 0 ]]; then echo "make-encoded-fixtures.sh: FAILED (exit $rc)" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Extracts ENCODED_WRITE commands: node EXTRACT STREAM SNAPDIR ALGO STAGEDIR
# Prints one JSON object per line (manifest entries).
cat > "$TMP/extract.js" <<'JS'
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const [repo, streamFile, snapDir, algo, stageDir] = process.argv.slice(2);
const swc = require(path.join(repo, 'node_modules/@swc/core'));
require.extensions['.ts'] = (m, filename) => {
  const src = fs.readFileSync(filename, 'utf8');
  const out = swc.transformSync(src, {
    filename,
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
  });
  m._compile(out.code, filename);
};
const { StreamDecoder } = require(path.join(repo, 'src/stream/decoder.ts'));
const dec = new StreamDecoder();
const items = dec.push(fs.readFileSync(streamFile));
dec.end();
const seen = new Map(); // sha256 of DATA -> file name (an extent sent twice is stored once)
let padFound = false;

// Number of times btrfs' LZO framing skipped 1..3 bytes of padding at the
// end of a sector because the next segment header would not fit.
function lzoPadSkips(b, sector) {
  const total = b.readUInt32LE(0);
  let p = 4;
  let skips = 0;
  while (p + 4 <= total) {
    p += 4 + b.readUInt32LE(p);
    const left = sector - (p % sector);
    if (left < 4) { p += left; skips++; }
  }
  return skips;
}
for (const it of items) {
  if (it.kind !== 'command' || it.cmd !== 25) continue;
  const a = it.attrs;
  const rel = a.path.toString('utf8');
  if (rel.startsWith('pad-')) {
    // Candidates for the padding case: keep the first extent that has it.
    if (padFound || lzoPadSkips(a.data, 4096 << (a.compression - 3)) === 0) continue;
    padFound = true;
  }
  const fileOffset = Number(a.fileOffset);
  const fileLen = Number(a.unencodedFileLen);
  const dataSum = crypto.createHash('sha256').update(a.data).digest('hex');
  let name = seen.get(dataSum);
  if (name === undefined) {
    name = `${algo}-${rel.replace(/[^A-Za-z0-9._-]/g, '_')}-${fileOffset}.bin`;
    fs.writeFileSync(path.join(stageDir, name), a.data);
    seen.set(dataSum, name);
  }
  // Ground truth: what the file holds in the range this command writes.
  const fd = fs.openSync(path.join(snapDir, rel), 'r');
  const expect = Buffer.alloc(fileLen);
  const got = fs.readSync(fd, expect, 0, fileLen, fileOffset);
  fs.closeSync(fd);
  if (got !== fileLen) throw new Error(`short read of ${rel} at ${fileOffset}`);
  process.stdout.write(JSON.stringify({
    file: name,
    path: rel,
    algo,
    compression: a.compression ?? 0,
    encryption: a.encryption ?? 0,
    fileOffset,
    unencodedFileLen: fileLen,
    unencodedLen: Number(a.unencodedLen),
    unencodedOffset: Number(a.unencodedOffset),
    dataLen: a.data.length,
    sha256: crypto.createHash('sha256').update(expect).digest('hex'),
  }) + '\n');
}
JS

# ------------------------------------------------------------- per algo --
: > "$STAGE/entries.jsonl"
for algo in "${ALGOS[@]}"; do
  log "$algo: scratch filesystem"
  IMG="$TMP/$algo.img"
  truncate -s 300M "$IMG"
  mkfs.btrfs -q -f "$IMG" >/dev/null
  LOOP=$(losetup --find --show "$IMG")
  mount -o "compress-force=$algo,noatime" "$LOOP" "$MNT"
  btrfs -q subvolume create "$MNT/vol"
  V="$MNT/vol"

  # Files, each fsync'ed so that its extents are final before the next step.
  compressible 150000 big > "$V/big"      # full 128 KiB extent + 18928 B tail (unencoded_len 20480)
  for i in 0 1 2 3; do                                     # 32 KiB: random/text sectors
    detrand 4096 $((i + 1))
    compressible 4096 "mix$i"
  done > "$V/mix-32k"
  head -c $((64 * 1024)) /dev/zero > "$V/zeros-64k"        # long matches, long lengths
  compressible $((128 * 1024)) split > "$V/split"
  if [[ $algo == lzo ]]; then
    # A segment that ends 1..3 bytes before a sector boundary makes btrfs
    # skip to the next sector; it happens about once per thousand segments.
    # Write 32 KiB candidates of half-compressible text with varying line
    # shapes; extract.js keeps the first extent that has such a skip.
    for i in $(seq 1 600); do
      detrand 16384 $((1000 + i)) | od -An -v -tx1 -w$((4 + i % 13)) | tr -d ' ' |
        sed "s/\$/ probe $(printf '%*s' $((i % 41)) '' | tr ' ' y)/" | head -c 32768 > "$V/pad-$i" || true
    done
  fi
  sync
  # Overwrite 8 KiB in the middle: the original extent stays referenced
  # twice, the second time with a non-zero unencoded_offset.
  detrand 8192 9 | dd of="$V/split" bs=4096 seek=16 conv=notrunc status=none
  sync

  btrfs -q subvolume snapshot -r "$V" "$MNT/snap"
  btrfs send -q --proto 2 --compressed-data -f "$TMP/$algo.stream" "$MNT/snap"
  node "$TMP/extract.js" "$REPO" "$TMP/$algo.stream" "$MNT/snap" "$algo" "$STAGE" \
    >> "$STAGE/entries.jsonl"
  n=$(grep -c "\"algo\":\"$algo\"" "$STAGE/entries.jsonl" || true)
  [[ $n -gt 0 ]] || die "$algo: the stream holds no ENCODED_WRITE"
  if [[ $algo == lzo ]] && ! grep -q '"path":"pad-' "$STAGE/entries.jsonl"; then
    echo "   warning: no LZO extent with sector padding among the candidates" >&2
  fi
  echo "   $algo: $n encoded extents" >&2
  unmount_all
  rm -f "$IMG"
done

# --------------------------------------------------------------- output --
KVER=$(uname -r)
PROGS=$(btrfs --version | head -n1)
node -e '
  const fs = require("fs");
  const [entriesFile, kernel, progs, out] = process.argv.slice(1);
  const extents = fs.readFileSync(entriesFile, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const manifest = { generated: new Date().toISOString().replace(/\.\d+Z$/, "Z"), kernel, progs, extents };
  fs.writeFileSync(out, JSON.stringify(manifest, null, 2) + "\n");
' "$STAGE/entries.jsonl" "$KVER" "$PROGS" "$STAGE/manifest.json"

cat > "$STAGE/README.md" <<EOF
# Real btrfs encoded extents

DATA of every ENCODED_WRITE command of \`btrfs send --proto 2
--compressed-data\`, one file per command, for zlib, zstd and lzo
(\`mount -o compress-force=<algo>\`). Generated by
\`scripts/make-encoded-fixtures.sh\`; do not edit by hand.

- kernel (\`uname -r\`): $KVER
- btrfs-progs: $PROGS

\`manifest.json\` lists, per extent, the command's attributes (compression,
file_offset, unencoded_file_len, unencoded_len, unencoded_offset, DATA
length) and the sha256 of the file bytes the command must produce, i.e.
bytes [unencoded_offset, unencoded_offset + unencoded_file_len) of the
decoded extent, read back from the snapshot. The files: \`big\` (150000
bytes: a full 128 KiB extent, then a tail extent whose data decodes to
18928 bytes of an unencoded_len of 20480),
\`mix-32k\` (4 KiB random / 4 KiB text sectors: LZO segments longer than a
sector, so they cross sector boundaries), \`zeros-64k\`, and \`split\` (128 KiB,
then 8 KiB overwritten at 64 KiB, so the old extent is sent twice, once
with a non-zero unencoded_offset; both entries name the same .bin file).
For LZO, \`pad-<n>\` is the first of 600 candidate files whose extent has a
segment ending 1..3 bytes before a sector boundary (btrfs then starts the
next segment header at the next sector).

## Regenerate

    sudo scripts/make-encoded-fixtures.sh        # from the repo root
EOF

mkdir -p "$OUT"
rm -f "$OUT"/*.bin
install -m 0644 "$STAGE"/*.bin "$STAGE/manifest.json" "$STAGE/README.md" "$OUT/"
log "done: $(du -sh "$OUT" | cut -f1) in $OUT"
