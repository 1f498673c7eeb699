#!/usr/bin/env bash
# make-stream-fixtures.sh - regenerate test/fixtures/streams/ from a real kernel.
#
# Builds a throw-away btrfs filesystem on a sparse loop image (mounted with
# compress=zstd), fills a subvolume "vol" with a small but varied tree, takes
# read-only snapshots snap1 (initial state) and snap2 (after many changes) and
# records `btrfs send` streams in several flavours (proto 1/2, full/incremental,
# --compressed-data, --no-data, multi-subvolume with and without -e), each with
# its `btrfs receive --dump` output (TZ=UTC).  Every stream is then received
# back with the real `btrfs receive` and the result is compared with the
# source snapshot, so the script fails loudly if btrfs rejects its own output.
#
# Usage:   sudo scripts/make-stream-fixtures.sh [OUTDIR]
#          (OUTDIR defaults to <repo>/test/fixtures/streams)
# Needs:   root, loop devices, btrfs-progs, attr, acl, openssl, sha256sum;
#          optional: xfs_io, python3 (unix socket), setcap (libcap2-bin).
#
# The fixtures are regenerated from scratch: uuids, transids and inode
# generations change on every run; tests only compare a stream with its own
# dump.  Only the files of OUTDIR listed in VARIANTS (+ README.md and
# manifest.json) are replaced; nothing else in the repo is touched.

set -euo pipefail

if [[ ${EUID:-$(id -u)} -ne 0 ]]; then
  echo "make-stream-fixtures.sh: this script needs root (loop devices, mkfs, mount," >&2
  echo "mknod, chown). Please re-run it with sudo." >&2
  exit 1
fi

umask 022   # deterministic default modes for created files
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$REPO/test/fixtures/streams}"

# ---------------------------------------------------------------- helpers --
log()  { printf '\n== %s\n' "$*" >&2; }
note() { printf '   note: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

for tool in btrfs mkfs.btrfs losetup mount umount setfattr getfattr setfacl \
            openssl sha256sum truncate fallocate mkfifo mknod; do
  have "$tool" || die "required tool '$tool' not found (apt-get install btrfs-progs attr acl openssl)"
done

# Deterministic pseudo-random bytes: AES-128-CTR keystream of zeros.
# detrand SIZE SEED
detrand() {
  local key
  key=$(printf '%032x' "$2")
  head -c "$1" /dev/zero | openssl enc -aes-128-ctr -K "$key" -iv "$key"
}

# Highly compressible but not constant text of at least SIZE bytes, cut to SIZE.
# compressible SIZE TAG
compressible() {
  local lines=$(( $1 / 32 + 1 ))
  { seq -f "$2 line %010.0f of ferry fixture" "$lines" || true; } | head -c "$1"
}

# pwrite_pattern FILE OFFSET LEN BYTE  (xfs_io if present, else dd)
pwrite_pattern() {
  local file=$1 off=$2 len=$3 byte=$4
  if have xfs_io; then
    xfs_io -f -c "pwrite -q -S $byte $off $len" "$file"
  else
    head -c "$len" /dev/zero | tr '\0' "\\$(printf '%03o' "$byte")" |
      dd of="$file" bs=4096 seek=$(( off / 4096 )) conv=notrunc status=none
  fi
}

# Listing of a tree used to compare a snapshot with its received copy:
# type, mode, owner, size, link count, mtime (ns), name, symlink target,
# sha256 of regular files, then all xattrs (hex). The root's mtime is left
# out (the kernel does not always send it in incremental streams).
tree_listing() {
  (
    cd "$1"
    find . -mindepth 1 -printf '%y %m %U:%G %s %n %T@ %p -> %l\n' | LC_ALL=C sort
    find . -maxdepth 0 -printf 'ROOT %y %m %U:%G\n'
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
    getfattr -R -h -d -m - -e hex . 2>/dev/null
  )
}

compare_trees() { # compare_trees SRC DST LABEL
  if ! diff <(tree_listing "$1") <(tree_listing "$2") >"$TMP/diff.txt"; then
    cat "$TMP/diff.txt" >&2
    die "self-check $3: received tree $2 differs from $1"
  fi
  echo "   ok: $3 ($2 == $1)" >&2
}

# ------------------------------------------------------- scratch filesystem --
TMP=$(mktemp -d /tmp/ferry-fixtures.XXXXXX)
IMG="$TMP/btrfs.img"
MNT="$TMP/mnt"
LOOP=""

cleanup() {
  local rc=$?
  cd /
  if mountpoint -q "$MNT" 2>/dev/null; then
    umount "$MNT" 2>/dev/null || umount -l "$MNT" || true
  fi
  if [[ -n $LOOP ]]; then losetup -d "$LOOP" 2>/dev/null || true; fi
  rm -rf "$TMP"
  if [[ $rc -ne 0 ]]; then echo "make-stream-fixtures.sh: FAILED (exit $rc)" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "scratch filesystem in $TMP"
truncate -s 300M "$IMG"
mkfs.btrfs -q -f "$IMG" >/dev/null
LOOP=$(losetup --find --show "$IMG")
mkdir -p "$MNT"
# noatime: reads between the snapshots must not change inodes.
mount -o compress=zstd,noatime "$LOOP" "$MNT"

cd "$MNT"
btrfs -q subvolume create vol
V="$MNT/vol"

# -------------------------------------------------------- initial content --
log "populating vol"
T1='2021-03-04 05:06:07.123456789 UTC'
T2='2022-07-08 09:10:11.5 UTC'

cd "$V"
: > empty.txt
printf 'hello\n' > hello.txt                         # 6 bytes, inline extent
printf 'a file that will be renamed\n' > a.txt
printf 'x content\n' > x.txt
printf 'y content, longer than x\n' > y.txt
printf 'delete me\n' > del-me.txt
printf 'I will become a directory\n' > replace-me
printf 'this file will be truncated shorter\n' > shrink.txt
detrand $((100 * 1024)) 1 > rand.bin                # incompressible 100 KiB
# ~261 KiB of text: two full 128 KiB zstd extents plus an unaligned tail
# (kept below 300 KiB so that the folder stays under 3 MB)
compressible $((256 * 1024 + 5000)) big > big.bin
sync
cp --reflink=always big.bin bigclone.bin            # CLONE in the full stream

# sparse file: 1 MiB with an 8 KiB and a 16 KiB data island
truncate -s 1M sparse.bin
pwrite_pattern sparse.bin $((256 * 1024)) $((8 * 1024)) 171    # 0xab
pwrite_pattern sparse.bin $((640 * 1024)) $((16 * 1024)) 205   # 0xcd

# directories, nesting, hard links across directories
mkdir -p dir1 dir2 dir3/sub a/b/c deldir/inner
printf 'deep\n' > a/b/c/deep.txt
printf 'in dir3\n' > dir3/sub/f.txt
printf 'bye\n' > deldir/inner/gone.txt
printf 'hard linked\n' > dir1/hl.txt
ln dir1/hl.txt dir2/hl-link.txt

# symlinks: relative, absolute, dangling
ln -s ../hello.txt dir1/rel-link
ln -s /etc/hostname abs-link
ln -s does/not/exist dangling-link

# names that need escaping in --dump
printf 'space\n' > 'with space.txt'
printf 'newline\n' > $'new\nline.txt'
printf 'backslash\n' > 'back\slash.txt'
printf 'utf8\n' > 'café.txt'

# special files
mkfifo fifo
mknod null-dev c 1 3
if have python3; then
  python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' sock
else
  note "python3 not found: no unix socket in the tree (no mksock in streams)"
fi

# modes and owners (chown before chmod: chown clears setuid)
printf 'secret\n' > mode600.txt;  chmod 0600 mode600.txt
printf '#!/bin/sh\n' > exec.sh;   chmod 0755 exec.sh
printf 'suid\n' > suid.bin;       chown 1234:5678 suid.bin; chmod 04755 suid.bin
mkdir sticky;                     chmod 01777 sticky
printf 'owned\n' > owned.txt;     chown 1234:5678 owned.txt
chown 1234:5678 dir2

# xattrs: binary value with NUL and newline, name with a space, one to remove
printf 'xattrs\n' > xattr.txt
setfattr -n user.bin -v 0x61620063640a6566 xattr.txt   # "ab\0cd\nef"
setfattr -n 'user.with space' -v 'spaced value' xattr.txt
setfattr -n user.gone -v 'to be removed' xattr.txt
setfattr -n user.dir -v 'on a directory' dir1

# POSIX ACLs (access ACL on a file, default ACL on a directory)
printf 'acl\n' > acl.txt
setfacl -m u:1234:rw,g:5678:r acl.txt
mkdir acldir
setfacl -d -m u:1234:rwx acldir

# file capability (must survive the chown done by receive)
if have setcap; then
  printf 'cap\n' > cap.bin; chmod 0755 cap.bin
  setcap cap_net_raw+ep cap.bin
else
  note "setcap not found: no security.capability xattr"
fi

# fixed timestamps everywhere (also on symlinks and special files)
find "$V" -depth -exec touch -h -d "$T1" {} +
cd "$MNT"
sync
btrfs -q subvolume snapshot -r vol snap1

# ----------------------------------------------------------------- changes --
log "changing vol"
STAMP="$TMP/stamp"; : > "$STAMP"; sleep 0.05
cd "$V"
mv a.txt renamed.txt                                  # rename
mv x.txt swap.tmp; mv y.txt x.txt; mv swap.tmp y.txt  # swap two names
mv dir3 dir1/                                         # move dir under another
mv 'with space.txt' 'with space é.txt'                # rename with escapes
detrand 8192 2 | dd of=rand.bin bs=4096 seek=10 conv=notrunc status=none  # overwrite middle
printf 'appended\n' >> hello.txt                      # append
truncate -s 10 shrink.txt                             # shrink
rm del-me.txt                                         # delete a file
rm -r deldir                                          # delete a dir tree
printf 'brand new\n' > new.txt                        # new files
mkdir -p newdir; printf 'inner\n' > newdir/inner.txt
compressible $((32 * 1024)) newcomp > newcomp.bin     # new compressed extent
chmod 0640 mode600.txt                                # chmod / chown
chmod 0700 exec.sh
chown 4321:8765 owned.txt
chmod 0755 sticky
setfattr -n user.bin -v 0x6e6577000a76616c7565 xattr.txt  # change value
setfattr -x user.gone xattr.txt                       # remove xattr
setfattr -n user.added -v 'new xattr' hello.txt       # add xattr
# punch a hole inside the second island.  (The whole hole between two extents
# is resent - v1: zero WRITEs, v2 on kernel >= 6.17: FALLOCATE - so punching
# out a complete island would resend ~750 KiB of zeros in incr-v1.)
fallocate -p -o $((644 * 1024)) -l $((4 * 1024)) sparse.bin
cp --reflink=always "$MNT/snap1/rand.bin" fromsnap.bin # clone from parent snap
if have xfs_io; then                                  # partial clone
  xfs_io -f -c "reflink $MNT/snap1/big.bin $((128 * 1024)) 0 $((64 * 1024))" partial.bin >/dev/null
else
  note "xfs_io not found: no partial reflink"
fi
ln renamed.txt dir2/new-hard-link                     # new hard link
rm replace-me; mkdir replace-me                       # file -> dir, same name
printf 'inside\n' > replace-me/inside.txt
find "$V" -depth -cnewer "$STAMP" -exec touch -h -d "$T2" {} +
cd "$MNT"
sync
btrfs -q subvolume snapshot -r vol snap2

# ----------------------------------------------------------------- streams --
# name | proto | kind | subvolumes | stream headers | send arguments
VARIANTS=(
  "full-v1|1|full|1|1|--proto 1 snap1"
  "incr-v1|1|incremental|1|1|--proto 1 -p snap1 snap2"
  "full-v2|2|full|1|1|--proto 2 snap1"
  "incr-v2|2|incremental|1|1|--proto 2 -p snap1 snap2"
  "full-v2c|2|full|1|1|--proto 2 --compressed-data snap1"
  "incr-v2c|2|incremental|1|1|--proto 2 --compressed-data -p snap1 snap2"
  "full-nodata-v1|1|full|1|1|--proto 1 --no-data snap1"
  "multi-v1|1|full|2|2|--proto 1 snap1 snap2"
  "multi-e-v1|1|full|2|1|-e --proto 1 snap1 snap2"
)

STAGE="$TMP/out"
mkdir -p "$STAGE"
log "sending"
for v in "${VARIANTS[@]}"; do
  IFS='|' read -r name proto kind nsub nhdr args <<<"$v"
  # shellcheck disable=SC2086
  btrfs -q send $args -f "$STAGE/$name.stream"
  TZ=UTC btrfs receive --dump -f "$STAGE/$name.stream" > "$STAGE/$name.dump"
  [[ -s $STAGE/$name.dump ]] || die "$name: empty dump"
  printf '   %-16s %8d bytes  %5d dump lines\n' "$name" \
    "$(stat -c %s "$STAGE/$name.stream")" "$(wc -l < "$STAGE/$name.dump")" >&2
done

# ------------------------------------------------------------ self-checks --
log "checking dumps"
grep -q '^encoded_write ' "$STAGE/full-v2c.dump" || die "full-v2c.dump has no encoded_write line"
for cmd in clone mknod mkfifo symlink link set_xattr remove_xattr truncate chown chmod utimes rename unlink rmdir; do
  grep -lq "^$cmd " "$STAGE"/*.dump || die "no '$cmd' line in any dump"
done
if have python3; then
  grep -q '^mksock ' "$STAGE/full-v1.dump" || die "full-v1.dump has no mksock line"
fi
if grep -q '^fallocate ' "$STAGE"/*.dump; then
  FALLOC_NOTE="present (in: $(grep -l '^fallocate ' "$STAGE"/*.dump | xargs -n1 basename | paste -sd' '))"
else
  FALLOC_NOTE="absent (kernel < 6.17 sends zero WRITEs instead of FALLOCATE)"
  note "no fallocate line in any dump: $FALLOC_NOTE"
fi
for s in "$STAGE"/*.stream; do
  [[ $(head -c 12 "$s") == btrfs-stream ]] || die "$s: bad magic"
done

log "receiving every stream with the real btrfs receive"
R="$MNT/recv"
mkdir -p "$R"
delete_received() { btrfs -q subvolume delete "$@" >/dev/null; }
for pair in v1:full-v1:incr-v1 v2:full-v2:incr-v2 v2c:full-v2c:incr-v2c; do
  IFS=: read -r tag full incr <<<"$pair"
  mkdir -p "$R/$tag"
  btrfs -q receive -f "$STAGE/$full.stream" "$R/$tag"
  compare_trees "$MNT/snap1" "$R/$tag/snap1" "$full"
  btrfs -q receive -f "$STAGE/$incr.stream" "$R/$tag"
  compare_trees "$MNT/snap2" "$R/$tag/snap2" "$incr"
  delete_received "$R/$tag/snap1" "$R/$tag/snap2"
done
# --no-data: files get no data and (as writes "reach" i_size) no TRUNCATE, so
# they stay empty on the receiver and a CLONE from them fails with EINVAL.
# Such a stream is only meant for --dump-like consumers; just record the result.
mkdir -p "$R/nodata"
if btrfs -q receive -f "$STAGE/full-nodata-v1.stream" "$R/nodata" 2>"$TMP/nodata.err"; then
  NODATA_NOTE="accepted by btrfs receive (files are empty or sparse)"
else
  NODATA_NOTE="rejected by btrfs receive: $(head -n1 "$TMP/nodata.err")"
fi
note "full-nodata-v1: $NODATA_NOTE"
[[ -d $R/nodata/snap1 ]] && delete_received "$R/nodata/snap1"
mkdir -p "$R/multi" "$R/multi-e"
btrfs -q receive -f "$STAGE/multi-v1.stream" "$R/multi"
compare_trees "$MNT/snap1" "$R/multi/snap1" "multi-v1 (1st)"
compare_trees "$MNT/snap2" "$R/multi/snap2" "multi-v1 (2nd)"
delete_received "$R/multi/snap1" "$R/multi/snap2"
btrfs -q receive -e -f "$STAGE/multi-e-v1.stream" "$R/multi-e"
compare_trees "$MNT/snap1" "$R/multi-e/snap1" "multi-e-v1 (1st)"
compare_trees "$MNT/snap2" "$R/multi-e/snap2" "multi-e-v1 (2nd)"
delete_received "$R/multi-e/snap1" "$R/multi-e/snap2"

# --------------------------------------------------- manifest, README, copy --
log "writing manifest.json and README.md"
KERNEL=$(uname -r)
PROGS=$(btrfs --version | head -n1)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
SSV=$(cat /sys/fs/btrfs/features/send_stream_version 2>/dev/null || echo unknown)

{
  printf '{\n'
  printf '  "generator": "scripts/make-stream-fixtures.sh",\n'
  printf '  "kernel": "%s",\n  "btrfsProgs": "%s",\n  "date": "%s",\n' "$KERNEL" "$PROGS" "$DATE"
  printf '  "variants": [\n'
  i=0
  for v in "${VARIANTS[@]}"; do
    IFS='|' read -r name proto kind nsub nhdr args <<<"$v"
    f="$STAGE/$name.stream"
    [[ $i -gt 0 ]] && printf ',\n'
    printf '    {"name": "%s", "file": "%s.stream", "dump": "%s.dump", "proto": %s, "kind": "%s", "subvolumes": %s, ' \
      "$name" "$name" "$name" "$proto" "$kind" "$nsub"
    printf '"streamHeaders": %s, "sendArgs": "%s", "bytes": %s, "sha256": "%s"}' \
      "$nhdr" "$args" \
      "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -d' ' -f1)"
    i=$((i + 1))
  done
  printf '\n  ]\n}\n'
} > "$STAGE/manifest.json"

{
  cat <<EOF
# btrfs send stream fixtures

Real streams produced by the Linux kernel's \`btrfs send\`, each with the
output of \`btrfs receive --dump\` for the same file. Generated by
\`scripts/make-stream-fixtures.sh\`; do not edit by hand.

- generated: $DATE
- kernel (\`uname -r\`): $KERNEL (send_stream_version = $SSV)
- btrfs-progs (\`btrfs --version\`): $PROGS
- hole punching as FALLOCATE: $FALLOC_NOTE
- full-nodata-v1 received back: $NODATA_NOTE

## Regenerate

    sudo scripts/make-stream-fixtures.sh        # from the repo root

Needs root, loop devices, btrfs-progs, attr, acl, openssl (python3, xfs_io
and setcap optional). Every run produces new uuids/transids, so all files
change; tests must only compare a stream with its own \`.dump\` (and the
facts in \`manifest.json\`). The script receives every stream back with the
real \`btrfs receive\` and compares the trees before it writes anything here.

## How they were made

A 300 MB sparse loop image is formatted with \`mkfs.btrfs\` and mounted with
\`-o compress=zstd,noatime\`. Subvolume \`vol\` gets: empty, 6-byte and small
text files; \`rand.bin\` (100 KiB deterministic AES-CTR bytes, incompressible);
\`big.bin\` (~261 KiB compressible text: two zstd extents + unaligned tail)
and its reflink copy \`bigclone.bin\`; \`sparse.bin\` (1 MiB with an 8 KiB and
a 16 KiB data island); a hard-link pair across \`dir1\`/\`dir2\`; relative,
absolute and dangling symlinks; names with a space, a newline, a backslash
and \`é\`; a fifo, a char device (1,3) and a unix socket; a 3-level nested
dir; modes 0600, 0755, 04755, 01777; owner 1234:5678; user xattrs (binary value \`ab\\0cd\\nef\`, a name with a
space); an access ACL and a default ACL; a \`security.capability\` xattr; all
timestamps fixed at $T1.
Snapshot \`snap1\` (read-only).

Then: rename, swap of two names via a temp name, move of a dir into another,
rename to a name with a space and \`é\`, 8 KiB overwritten in the middle of
\`rand.bin\`, append, truncate shorter, deletion of a file and a dir tree, new
files (one compressible), chmod/chown, xattr change/add/remove, a 4 KiB hole
punched in the middle of the second island of \`sparse.bin\`, a reflink of
\`snap1/rand.bin\` and a partial reflink of \`snap1/big.bin\`, a new hard
link, a file replaced by a directory of the same name; changed inodes get
timestamp $T2. Snapshot \`snap2\` (read-only).

Dumps: \`TZ=UTC btrfs receive --dump -f <variant>.stream > <variant>.dump\`.
\`--dump\` stops at the first END, so \`multi-v1.dump\` only shows \`snap1\`
(the stream itself holds two complete streams); \`multi-e-v1.dump\` shows both.

| variant | btrfs send arguments | proto | kind | subvolumes |
|---|---|---|---|---|
EOF
  for v in "${VARIANTS[@]}"; do
    IFS='|' read -r name proto kind nsub nhdr args <<<"$v"
    printf '| `%s` | `%s` | %s | %s | %s |\n' "$name" "$args" "$proto" "$kind" "$nsub"
  done
  cat <<'EOF'

## Caveats of this btrfs-progs version's dump format

- `set_xattr` prints the name and the value raw (not escaped) and cuts the
  value at its first NUL byte (`data=ab len=8`); binary ACL and capability
  values therefore put raw control bytes into the dump. btrfs-progs >= 6.9.1
  escapes both and drops the `data=` label.
- `utimes` times are local time (hence `TZ=UTC`), seconds only.
- `clone` prints `from=./<current subvol>/<CLONE_PATH>` even when the
  source lives in the parent snapshot (incr-*: `from=./snap2/rand.bin`).
- `encoded_write` `len` is the on-disk (sector-padded) size: the DATA is
  one zstd frame followed by zero padding up to 4096 bytes; the frame may
  decompress to less than `unencoded_len` (big.bin tail: 5000 of 8192).
- Holes that replace data are resent for the whole gap between the
  neighbouring extents (v1: zero WRITEs, v2: FALLOCATE mode=3).
- `full-nodata-v1` cannot be received: files get no data and no TRUNCATE,
  so the CLONE from the (empty) big.bin fails with EINVAL.
EOF
} > "$STAGE/README.md"

mkdir -p "$OUT"
for v in "${VARIANTS[@]}"; do
  name=${v%%|*}
  install -m 0644 "$STAGE/$name.stream" "$STAGE/$name.dump" "$OUT/"
done
install -m 0644 "$STAGE/manifest.json" "$STAGE/README.md" "$OUT/"
log "done: $(du -sh "$OUT" | cut -f1) in $OUT"
