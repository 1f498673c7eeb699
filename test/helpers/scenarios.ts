/**
 * Incremental-send scenarios as data: the tricky cases of
 * docs/send-stream.md section 7 (taken from fstests, with the kernel fix
 * each one guards) plus ferry's own.
 *
 * Owns: two bash scripts per scenario. `parent` builds the parent state,
 * `child` mutates it into the child state; both run with cwd = the root of
 * the subvolume (btrfs) or volume (ext4/XFS), and the harness takes the
 * snapshots in between. Never: a btrfs-only command unless the scenario says
 * `needs: ['btrfs']`; paths outside cwd; anything that depends on the clock
 * or on inode numbers (the trees are compared against the source snapshot,
 * so no mtimes need fixing). fstests' `cycle_mount` (which lets btrfs reuse
 * freed inode numbers) is replaced by `sync`.
 *
 * Scripts are written for `bash -euo pipefail`. `xfs_io` is used only where
 * it is needed (exact write patterns, falloc, fpunch, reflink); reflink works
 * on btrfs and XFS only, so those scenarios need 'reflink'.
 */

/**
 * Tools or filesystem features a scenario needs: a command on PATH, or
 * 'reflink' (btrfs, XFS) or 'btrfs' (btrfs-only commands, e.g. nested subvolumes).
 */
export type ScenarioNeed = 'xfs_io' | 'setcap' | 'setfattr' | 'mkfifo' | 'mknod' | 'reflink' | 'btrfs';

export interface Scenario {
  id: string;
  title: string;
  /** Where it comes from: the fstests test ('btrfs/030') or 'ferry'. */
  source: string;
  /** bash run with cwd = the subvolume/volume root; builds the parent state. */
  parent: string;
  /** bash run with cwd = the same root after the parent snapshot; mutates into the child state. */
  child: string;
  needs?: ScenarioNeed[];
  /**
   * btrfs only: paths (relative to the root) that are nested subvolumes in
   * the parent or child snapshot. `btrfs send` skips them, while the source
   * snapshot shows an empty placeholder directory there, so a comparison with
   * the source snapshot must ignore them.
   */
  nestedSubvolumes?: { parent: string[]; child: string[] };
}

export interface NotScriptable {
  id: string;
  title: string;
  source: string;
  reason: string;
}

/** Section 7's long path (btrfs/051), > 230 bytes. */
const LONG =
  'x/.config/google-chrome-mysetup/Default/Pepper_Data/Shockwave_Flash/WritableRoot/#SharedObjects/JSHJ4ZKN/s.wsj.net/[[IMPORT]]/players.edgesuite.net/flash/plugins/osmf/advanced-streaming-plugin/v2.7/osmf1.6/Ak#';

/** btrfs/178 verbatim (paths made relative): directories named after their btrfs inode numbers. */
const BTRFS_178_PARENT = `
mkdir 257
mkdir 258
mv 257 258/257
mkdir 259
mkdir 260
mkdir 261
mkdir 262
mkdir 263
mkdir 264
mv 258 264/258
mkdir 265
mkdir 266
mv 259 266/259
mv 260 266/260
mv 264 266/264
mv 265 266/265
mkdir 266/260/267
mkdir 266/268
mkdir 266/269
mv 262 266/269/262
mkdir 266/270
mkdir 271
mv 266 271/266
mkdir 271/266/272
mv 263 271/266/272/263
mkdir 273
mkdir 271/266/274
mv 273 271/266/274/273
mkdir 271/266/272/275
mv 271 261/271
`;

const BTRFS_178_CHILD = `
mv 261/271/266/272/275 275
mv 261/271/266/274 275/274
mv 261/271/266/269/262 275/274/273/262
mv 261/271/266/269 275/274/273/262/269
mv 261/271/266/264/258/257 261/271/266/272
mv 261/271/266/264/258 275/274/273/262/269/258
mv 261/271 275/274/273/262/269/258/271
mv 275/274/273/262/269/258/271/266/268 275/274/273/262/269/258/271/268
mv 275/274/273/262/269/258/271/266/260/267 275/274/273/262/269/258/271/268/267
mv 275/274/273/262/269/258/271/266/270 275/274/273/262/269/258/271/268/267/270
mv 275/274/273/262/269/258/271/266/265 275/274/273/262/269/258/271/266/259/265
mv 275/274/273/262/269/258/271/266/259 275/274/273/262/269/258/271/268/267/270/259
mv 275/274/273/262/269/258/271/266/272/263 275/274/273/262/269/258/271/266/264/263
mv 275/274/273/262/269/258/271/266/272 275/274/273/262/269/258/271/268/267/270/272
mv 275/274/273/262/269/258/271/266/260 275/274/273/262/269/258/271/268/267/270/272/257/260
mv 275/274/273/262/269/258/271/266/264 275/274/273/262/269/258/271/268/267/270/272/257/264
mv 261 275/274/273/262/269/258/271/268/267/270/272/257/264/263/261
mv 275/274/273/262/269/258/271/266 275/274/273/262/269/258/271/268/267/270/272/257/264/263/261/266
`;

/** Section 7 cases 1-40 (27 is in notScriptable). */
const SECTION_7: Scenario[] = [
  {
    id: 's7-01',
    title: 'parent/child inversion of directories',
    source: 'btrfs/030',
    parent: 'mkdir -p a/b/c/d a/b/c2; echo hello > a/b/c/file.txt',
    child: 'mv a/b/c/d a/b/c2/d2; mv a/b/c a/b/c2/d2/cc',
  },
  {
    id: 's7-02',
    title: 'rename child and parent dirs, child had lower inode',
    source: 'btrfs/039',
    parent: 'mkdir -p a/b; mkdir d; mkdir a/b/c; mv d a/b/c',
    child: 'mv a/b/c a/b/x; mv a/b/x/d a/b/x/y',
  },
  {
    id: 's7-03',
    title: 'rmdir sent once per hard link',
    source: 'btrfs/040',
    parent: 'mkdir -p a/b/c; echo x > a/b/c/foo.txt; echo y > a/b/c/hel.txt; ln a/b/c/foo.txt a/b/c/bar.txt; ln a/b/c/foo.txt a/b/baz.txt',
    child: 'rm a/b/c/foo.txt a/b/c/bar.txt a/b/c/hel.txt; rmdir a/b/c',
  },
  {
    id: 's7-04',
    title: 'rmdir of a not-yet-empty orphan dir',
    source: 'btrfs/043',
    parent: 'mkdir -p a/b; mkdir 0; mkdir a/b/c; mv 0 a/b/c; echo x > a/b/c/foo.txt; mkdir a/b/c/x a/b/y',
    child: 'rm a/b/c/foo.txt; mv a/b/y a/b/YY; mv a/b/c/x a/b/YY; mv a/b/c/0 a/b/YY/00; rmdir a/b/c',
  },
  {
    id: 's7-05',
    title: 'outdated paths for utimes/chown/chmod of a delayed dir',
    source: 'btrfs/044',
    parent: 'mkdir -p a/b/c/d/e a/b/c/f; echo ola > a/b/c/d/e/file.txt; chmod 0777 a/b/c/d/e',
    child:
      'echo mundo >> a/b/c/d/e/file.txt; mv a/b/c/d/e/file.txt a/b/c/d/e/file2.txt; ' +
      'mv a/b/c/f a/b/f2; mv a/b/c/d/e a/b/f2/e2; mv a/b/c a/b/c2; mv a/b/c2/d a/b/c2/d2; chmod 0700 a/b/f2/e2',
  },
  {
    id: 's7-06',
    title: 'directory replaced by a subvolume and vice versa',
    source: 'btrfs/054',
    parent: 'mkdir testdir; btrfs subvolume create first_subvol >/dev/null',
    child: 'rmdir testdir; btrfs subvolume create testdir >/dev/null; btrfs subvolume delete first_subvol >/dev/null; mkdir first_subvol',
    needs: ['btrfs'],
    nestedSubvolumes: { parent: ['first_subvol'], child: ['testdir'] },
  },
  {
    id: 's7-07',
    title: 'dir moved under a new dir that takes its old name',
    source: 'btrfs/077',
    parent: 'mkdir -p merlin/RC/OSD/Source',
    child: 'mkdir OSD; mv merlin/RC/OSD OSD/OSD-Plane_788; mv OSD merlin/RC',
  },
  {
    id: 's7-08',
    title: "chain of renames into each other's old names",
    source: 'btrfs/083',
    parent: 'mkdir a b c d e f; touch a/file e/file2',
    child: 'mv c x; mv a x/y; mv b a; mv f f2; mv e f2/e2; mv d e',
  },
  {
    id: 's7-09',
    title: 'swapped subtree roots at the same path',
    source: 'btrfs/084',
    parent: 'mkdir -p data/n1/n2/p1/p2 data/n4 data/p1/p2',
    child:
      'mv data/p1/p2 data; mv data/n1/n2/p1/p2 data/p1; mv data/p2 data/n1/n2/p1; ' +
      'mv data/n1/n2 data/p1; mv data/p1 data/n4; mv data/n4/p1/n2/p1 data',
  },
  {
    id: 's7-10',
    title: 'same names, different inodes, inverted ancestry',
    source: 'btrfs/092',
    parent: `
mkdir -p data/n1/n2 data/n4 data/t6/t7
mkdir data/t5 data/t7 data/n4/t2 data/t4 data/t3
mv data/t7 data/n4/t2
mv data/t4 data/n4/t2/t7
mv data/t5 data/n4/t2/t7/t4
mv data/t6 data/n4/t2/t7/t4/t5
mv data/n1/n2 data/n4/t2/t7/t4/t5/t6
mv data/n1 data/n4/t2/t7/t4/t5/t6
mv data/n4/t2/t7/t4/t5/t6/t7 data/n4/t2/t7/t4/t5/t6/n2
mv data/t3 data/n4/t2/t7/t4/t5/t6/n2/t7
`,
    child: `
X=data/n4/n1/t2
mv data/n4/t2/t7/t4/t5/t6/n1 data/n4
mv data/n4/t2 data/n4/n1
mv $X/t7/t4/t5/t6/n2 $X
mv $X/n2/t7/t3 $X
mv $X/t7/t4/t5/t6 $X
mv $X/t7/t4 $X/t6
mv $X/t7 $X/t3
mv $X/n2/t7 $X
`,
  },
  {
    id: 's7-11',
    title: 'file replaced by a new file (same inode number after a remount on btrfs)',
    source: 'btrfs/105',
    parent: 'mkdir foo; xfs_io -f -c "pwrite -S 0xaa 0 64K" foo/bar >/dev/null',
    child: 'rm foo/bar; sync; xfs_io -f -c "pwrite -S 0xbb 0 96K" foo/bar >/dev/null',
    needs: ['xfs_io'],
  },
  {
    id: 's7-12',
    title: 'deleted tree, inode number reused',
    source: 'btrfs/227',
    parent: 'mkdir dir; touch dir/file1 dir/file2 dir/file3',
    child: 'rm -rf dir; sync; touch newfile',
  },
  {
    id: 's7-13',
    title: 'children moved out of a deleted dir',
    source: 'btrfs/128',
    parent: 'mkdir a tmp del; mv tmp del; mkdir a/c del/x del/y',
    child: 'mv a/c .; mv del/x a; mv del/y a; mv del/tmp c; rmdir del',
  },
  {
    id: 's7-14',
    title: 'new parent reuses the number of a deleted dir',
    source: 'btrfs/134',
    parent: 'mkdir dir257 dir258 dir259; mv dir257 dir258/dir257',
    child: 'mv dir258/dir257 dir257; rmdir dir258 dir259; sync; touch file258; mkdir new_dir259; mv dir257 new_dir259/dir257',
  },
  {
    id: 's7-15',
    title: 'rename + new link + rename into old name',
    source: 'btrfs/144',
    parent: 'touch f1 f2 f3',
    child: 'mv f3 f4; ln f2 f5; mv f2 f3; mv f1 f2',
  },
  {
    id: 's7-16',
    title: 'dir renamed, file takes its old name',
    source: 'btrfs/145',
    parent:
      'mkdir -p dir1/dir2; touch dir1/dir2/file1 dir1/dir2/file2 dir1/dir2/file3; ' +
      'mkdir dir1/dir3; mv dir1/dir2/file2 dir1/dir3/file22; mkdir dir1/dir3/dir4',
    child:
      'mv dir1/dir2/file3 dir1/dir3/dir4/file33; mv dir1/dir2/file1 dir1/dir3/dir4/file11; ' +
      'mv dir1/dir3 dir1/file3; mv dir1/file3/file22 dir1/dir3',
  },
  {
    id: 's7-17',
    title: "hard link into a directory that is moved; file takes the dir's name",
    source: 'btrfs/147',
    parent: 'mkdir -p dir1/dir2/dir3/dir4 dir5; touch dir1/dir2/dir3/file1',
    child:
      'mkdir dir1/dir6; mv dir5 dir1/dir2/dir3/dir4/dir55; ln dir1/dir2/dir3/file1 dir1/dir2/dir3/dir4/file11; ' +
      'mv dir1/dir2/dir3/dir4 dir1/dir6/dir44; mv dir1/dir2/dir3/file1 dir1/dir2/dir3/dir4',
  },
  {
    id: 's7-18',
    title: "several hard links renamed, one into another inode's old path",
    source: 'btrfs/155',
    parent:
      'mkdir a; touch a/f1; mkdir -p a/b/c; ln a/f1 a/b/c/f1l1; touch a/b/f2; mkdir d; ' +
      'mv a/b/c/f1l1 d/f1l1_2; ln a/b/f2 a/f2l1; ln a/b/f2 d/f2l2; mv a/f1 d/f1_2',
    child:
      'mv d a/b/d2; mv a/f2l1 d; mkdir a/f2l1; ln a/b/d2/f1_2 a/b/f1l2; mv a/b a/f2l1/b2; ' +
      'mv a/f2l1/b2/d2 a/f2l1/b2/c/d3; mv a/f2l1/b2/c/d3/f2l2 a/f2l1/b2/c/d3/f2l2_2',
  },
  {
    id: 's7-19',
    title: 'multi-level ancestor/descendant inversion',
    source: 'btrfs/178',
    parent: BTRFS_178_PARENT,
    child: BTRFS_178_CHILD,
  },
  {
    id: 's7-20',
    title: 'swap names of a file and a directory, with a hard link',
    source: 'btrfs/221',
    parent: 'touch a b; mkdir testdir; mv a testdir/a',
    child: 'mv testdir/a a2; touch testdir/a; mv b b2; ln a2 b; mv testdir testdir_2; mv a2 testdir',
  },
  {
    id: 's7-21',
    title: "one file's two hard links swapped with two nested dirs",
    source: 'btrfs/222',
    parent: 'touch f1 f2; mkdir d1 d1/d2',
    child: 'ln f2 d1/f2_link; mv f1 d1/d2/f1; mv d1 tmp; mv f2 d1; mv tmp f2; mv f2/d2 tmp; mv f2/f2_link f2/d2; mv tmp f2/f2_link',
  },
  {
    id: 's7-22',
    title: "hard link takes a directory's old name",
    source: 'btrfs/241',
    parent: 'touch file1 file2 file3; mkdir A; ln file3 A/hard_link',
    child: 'mv file1 A/file1; mv A/hard_link tmp; mv file2 A/hard_link; mv A B; ln B/hard_link A',
  },
  {
    id: 's7-23',
    title: 'link command against an existing path (2000 links)',
    source: 'btrfs/272',
    parent: 'touch foo; for i in $(seq 1 2000); do ln foo $i; done',
    // One rm for all 2000 names (same result as the test's loop, 2000 fewer forks).
    child: 'rm $(seq 1 2000); for i in $(seq 1001 2000); do ln foo $i; done',
  },
  {
    id: 's7-24',
    title: 'directories full of extrefs removed',
    source: 'btrfs/338',
    parent: 'mkdir a b; touch a/foo; for i in $(seq 1 1000); do ln a/foo a/foo.$i; ln a/foo b/foo.$i; done',
    child: 'rm -rf a b',
  },
  {
    id: 's7-25',
    title: 'inode with only extended refs',
    source: 'btrfs/050',
    parent: 'mkdir -p h/files; touch h/files/foobar; for i in $(seq 1 300); do ln h/files/foobar h/files/l$i; done',
    child: 'ln h/files/foobar h/files/final_name; rm -f h/files/foobar h/files/l*',
  },
  {
    id: 's7-26',
    title: 'long paths (> 230 bytes)',
    source: 'btrfs/051',
    parent: `LONG='${LONG}'; mkdir -p "$LONG"`,
    child: `LONG='${LONG}'; echo hello > "$LONG/amaiAdvancedStreamingPlugin.txt"; mv x y`,
  },
  {
    id: 's7-28',
    title: 'hole punched in the middle of a file',
    source: 'btrfs/016',
    parent: 'xfs_io -f -c "pwrite -S 0x61 0 10M" foo >/dev/null',
    child: 'xfs_io -c "fpunch 1M 1M" foo',
    needs: ['xfs_io'],
  },
  {
    id: 's7-29',
    title: 'shrinking a file with many prealloc extents',
    source: 'btrfs/034',
    parent: `
xfs_io -f -c "truncate 20M" foo
for i in $(seq 0 200); do
  o=$((32768 + i * 8192))
  xfs_io -c "falloc -k $o $((o + 8192))" -c "pwrite -S 0xf0 $o 4096" foo >/dev/null
done
`,
    child: 'xfs_io -c "truncate 1200000" foo',
    needs: ['xfs_io'],
  },
  {
    id: 's7-30',
    title: 'hole punched into a prealloc extent beyond EOF',
    source: 'btrfs/169',
    parent: 'xfs_io -f -c "falloc -k 0 4M" -c "pwrite -S 0xea 0 1M" foobar >/dev/null',
    child: 'xfs_io -c "fpunch 1M 2M" foobar',
    needs: ['xfs_io'],
  },
  {
    id: 's7-31',
    title: 'punch everything up to EOF with prealloc after EOF',
    source: 'btrfs/188',
    parent: 'xfs_io -f -c "pwrite -S 0xab 0 500K" -c "falloc -k 1200K 800K" foobar >/dev/null',
    child: 'xfs_io -c "fpunch 0 500K" foobar',
    needs: ['xfs_io'],
  },
  {
    id: 's7-32',
    title: 'new extents in a large sparse file',
    source: 'btrfs/137',
    parent: 'xfs_io -f -c "truncate 1G" foobar',
    child: 'xfs_io -c "pwrite -S 0xab -b 64K 0 64K" -c "pwrite -S 0xcd -b 64K 512M 64K" foobar >/dev/null',
    needs: ['xfs_io'],
  },
  {
    id: 's7-33',
    title: 'extent cloned into the same file at lower offsets',
    source: 'btrfs/097',
    parent: 'xfs_io -f -c "pwrite -S 0xaa 128K 64K" foo >/dev/null',
    child: 'xfs_io -c "reflink foo 144K 0 16K" -c "reflink foo 176K 16K 16K" foo >/dev/null',
    needs: ['xfs_io', 'reflink'],
  },
  {
    id: 's7-34',
    title: 'unaligned EOF block cloned into the middle of a file',
    source: 'btrfs/189',
    parent: 'for f in foo bar baz zoo; do xfs_io -f -c "pwrite -S 0x4d 0 2M" $f >/dev/null; done',
    child: 'xfs_io -c "reflink bar 1600K 640K 128K" bar >/dev/null; xfs_io -c "reflink bar 1600K 0 128K" zoo >/dev/null; xfs_io -c "truncate 710K" bar',
    needs: ['xfs_io', 'reflink'],
  },
  {
    id: 's7-35',
    title: 'file shrunk, then becomes a clone destination with unaligned end',
    source: 'btrfs/322',
    // The test writes foo with O_DIRECT (-d) to get two extents; XFS and ext4
    // refuse an unaligned O_DIRECT write, so an fsync between the writes
    // gives the same layout portably: 128K, then 128K + 5 bytes.
    parent:
      'xfs_io -f -c "pwrite -S 0xab -b 128K 0 128K" -c fsync -c "pwrite -S 0xcd -b 131077 128K 131077" -c fsync foo >/dev/null; ' +
      'xfs_io -f -c "pwrite 0 1M" bar >/dev/null',
    child: 'xfs_io -c "truncate 0" -c "reflink foo" bar >/dev/null',
    needs: ['xfs_io', 'reflink'],
  },
  {
    id: 's7-36',
    title: 'file capabilities vs chown',
    source: 'btrfs/214',
    parent: 'touch foo bar baz; setcap cap_net_raw=p foo',
    child: 'touch foo2 bar2 baz2; setcap cap_net_raw=p bar; setcap cap_sys_nice=ep foo2; chgrp 100 foo',
    needs: ['setcap'],
  },
  {
    id: 's7-37',
    title: 'xattrs larger than PATH_MAX',
    source: 'btrfs/053',
    parent: `touch foobar; setfattr -n user.xattr_name_1 -v "$(printf 'A%.0s' $(seq 6000))" foobar`,
    child:
      `setfattr -n user.xattr_name_1 -v "$(printf 'Z%.0s' $(seq 6666))" foobar; ` +
      `setfattr -n user.xattr_name_2 -v "$(printf 'U%.0s' $(seq 5555))" foobar`,
    needs: ['setfattr'],
  },
  {
    id: 's7-38',
    title: 'same name, different file type',
    source: 'section 7',
    parent: 'mkdir d; echo x > f; ln -s f s; mkfifo p; echo y > d/in',
    child: 'rm f; mkdir f; rm -r d; echo z > d; rm s; ln -s d s; rm p; mknod p c 1 3',
    needs: ['mkfifo', 'mknod'],
  },
  {
    id: 's7-39',
    title: 'metadata-only changes',
    source: 'section 7',
    parent: 'mkdir d; echo x > d/f; ln -s f d/l; setfattr -n user.a -v 1 d/f; setfattr -n user.b -v 2 d/f',
    child:
      "chmod 0640 d/f; chown 1234:5678 d/f; chown -h 42:43 d/l; touch -d '2001-02-03 04:05:06.789' d/f; " +
      'setfattr -x user.a d/f; setfattr -n user.b -v 22 d/f',
    needs: ['setfattr'],
  },
  {
    id: 's7-40',
    title: 'whole tree with cross-directory hard links removed',
    source: 'section 7',
    parent: 'mkdir -p t/a/b/c t/x; for i in 1 2 3; do echo $i > t/a/b/c/f$i; ln t/a/b/c/f$i t/x/l$i; done; ln -s ../x t/a/sym',
    child: 'rm -rf t',
  },
];

/** Ferry's own cases: things the section 7 list does not stress. */
const FERRY: Scenario[] = [
  {
    id: 'f-rotate',
    title: 'deep directory tree rotation a/b/c -> c/b/a, each keeping its files',
    source: 'ferry',
    parent: 'mkdir -p a/b/c; echo A > a/fa; echo B > a/b/fb; echo C > a/b/c/fc; mkdir a/b/c/leaf',
    child: 'mv a/b/c c.tmp; mv a/b b.tmp; mv a a.tmp; mv b.tmp c.tmp/b; mv a.tmp c.tmp/b/a; mv c.tmp c',
  },
  {
    id: 'f-swap-dirs',
    title: 'swap of two directories with contents',
    source: 'ferry',
    parent: 'mkdir -p d1/sub d2/sub; echo one > d1/f; echo one-sub > d1/sub/g; echo two > d2/f; echo two-sub > d2/sub/h',
    child: 'mv d1 tmp; mv d2 d1; mv tmp d2; echo changed >> d1/f',
  },
  {
    id: 'f-file-to-symlink',
    title: 'file replaced by a symlink of the same name, and a symlink by a file',
    source: 'ferry',
    parent: 'echo data > f; echo target > t; ln -s t s',
    child: 'rm f; ln -s t f; rm s; echo now-a-file > s',
  },
  {
    id: 'f-chmod-1000',
    title: 'chmod (and chown) only, of 1000 files',
    source: 'ferry',
    parent: 'mkdir d; for i in $(seq 1 1000); do echo $i > d/f$i; done',
    child: 'chmod 0600 d/*; chown 1000:1000 d/f1*',
  },
  {
    id: 'f-sparse-scattered',
    title: 'sparse 256 MiB file: scattered and unaligned writes, a hole punched into a parent extent, a write ending at EOF',
    source: 'ferry',
    parent: 'xfs_io -f -c "truncate 256M" -c "pwrite -S 0x11 20M 4K" -c "pwrite -S 0x12 140M 256K" s >/dev/null',
    // The write just before the punched extent keeps v1's zero writes small:
    // for a changed extent the kernel writes zeros over the whole gap to the
    // previous extent whenever the parent had data anywhere in that gap.
    child:
      'xfs_io -c "pwrite -S 0x22 0 4K" -c "pwrite -S 0x55 5000 3000" -c "pwrite -S 0x33 60M 64K" ' +
      '-c "pwrite -S 0x66 139M 64K" -c "fpunch 140M 128K" -c "pwrite -S 0x44 268427264 8K" s >/dev/null',
    needs: ['xfs_io'],
  },
  {
    id: 'f-truncate-regrow',
    title: 'a file truncated to 0 and regrown (with a leading hole), another shrunk and extended',
    source: 'ferry',
    parent: 'xfs_io -f -c "pwrite -S 0x55 0 300K" t >/dev/null; xfs_io -f -c "pwrite -S 0x56 0 200K" u >/dev/null',
    child: 'xfs_io -c "truncate 0" -c "pwrite -S 0x66 64K 100K" t >/dev/null; xfs_io -c "truncate 10000" -c "truncate 500K" u',
    needs: ['xfs_io'],
  },
  {
    id: 'f-xattr-dir-symlink',
    title: 'xattrs on the root, a directory and a symlink (trusted.* and security.*)',
    source: 'ferry',
    parent:
      'mkdir d; ln -s nowhere l; setfattr -n user.root -v r1 .; setfattr -n user.dx -v 1 d; ' +
      'setfattr -h -n trusted.sx -v 2 l',
    child:
      'setfattr -n user.root -v r2 .; setfattr -n user.dx -v 11 d; setfattr -n user.dy -v 3 d; ' +
      'setfattr -h -n trusted.sx -v 22 l; setfattr -h -n security.sy -v 4 l; ' +
      'ln -s elsewhere l2; setfattr -h -n trusted.new -v 5 l2',
    needs: ['setfattr'],
  },
  {
    id: 'f-rename-deep-new',
    title: 'rename into a newly created deep directory',
    source: 'ferry',
    parent: 'echo x > f; mkdir old; echo y > old/g; ln -s f sl',
    child: 'mkdir -p n1/n2/n3/n4/n5; mv f n1/n2/n3/n4/n5/f; mv old n1/n2/old; mv sl n1/n2/n3/sl',
  },
  {
    id: 'f-empty-swap',
    title: 'empty file and empty dir swap names',
    source: 'ferry',
    parent: 'touch e; mkdir d',
    child: 'mv e tmp; mv d e; mv tmp d',
  },
  {
    id: 'f-unicode-names',
    title: 'unicode, newline, space, quote and backslash names',
    source: 'ferry',
    parent:
      `touch "$(printf 'new\\nline')" 'ünïcödé' '日本語.txt' "it's" 'back\\slash'; mkdir 'dir with spaces'; ` +
      `echo 1 > 'dir with spaces/€uro'`,
    child:
      `mv "$(printf 'new\\nline')" "$(printf 'still\\nnew\\nline')"; mv 'ünïcödé' 'dir with spaces/ÜNÏCÖDÉ'; ` +
      `mv 'dir with spaces' "$(printf 'tab\\there')"; echo 2 > 'emoji 🎉'; ln '日本語.txt' "$(printf 'ctrl\\001char')"`,
  },
  {
    id: 'f-setid-chown',
    title: 'setuid/setgid kept across chown (chown before chmod)',
    source: 'ferry',
    parent: 'echo x > s; chmod 4755 s; mkdir g; chmod 2775 g; echo y > sg; chmod 6750 sg',
    child: 'chown 1000:1000 s; chmod 4755 s; chown 1000:1000 g; chmod 2775 g; chgrp 100 sg; chmod 6750 sg',
  },
  {
    id: 'f-utimes-many-dirs',
    title: 'changes in 100 directories (overflows the kernel UTIMES cache)',
    source: 'ferry',
    parent: 'for i in $(seq 1 100); do mkdir d$i; echo $i > d$i/f; done',
    child: 'for i in $(seq 1 100); do echo more >> d$i/f; touch d$i/new; done; for i in $(seq 1 50); do mv d$i/new d$((i + 50))/moved$i; done',
  },
  {
    id: 'f-recreate-same-names',
    title: 'files deleted and recreated under the same names (new inodes), and hard links regrouped',
    source: 'ferry',
    parent: 'mkdir d; for i in 1 2 3 4 5; do echo old$i > d/f$i; done; ln d/f1 d/l1; ln d/f2 l2',
    child: 'rm d/f1 d/f2 d/f3; for i in 1 2 3; do echo new$i > d/f$i; done; ln d/f4 d/f4b; rm d/f4; ln d/l1 d/f1b',
  },
  {
    id: 'f-overwrite-middle',
    title: 'big file overwritten in the middle and appended to',
    source: 'ferry',
    parent: 'xfs_io -f -c "pwrite -S 0x01 0 3M" big >/dev/null',
    child: 'xfs_io -c "pwrite -S 0x02 1000000 70000" -c "pwrite -S 0x03 3M 100001" big >/dev/null',
    needs: ['xfs_io'],
  },
  {
    id: 'f-appends',
    title: 'appends to files of every size class (inside a block, past a block, after an edit of the old bytes)',
    source: 'ferry',
    parent:
      'head -c 100 /dev/urandom > tiny; head -c 5000 /dev/urandom > small; head -c 70001 /dev/urandom > mid; ' +
      'head -c 131172 /dev/urandom > twoblocks; head -c 9000 /dev/urandom > edited; head -c 130000 /dev/urandom > crosses',
    child:
      'for f in tiny small mid twoblocks; do head -c 3000 /dev/urandom >> $f; done; ' +
      'printf X | dd of=edited bs=1 seek=10 conv=notrunc status=none; head -c 3000 /dev/urandom >> edited; ' +
      'head -c 200000 /dev/urandom >> crosses',
  },
  {
    id: 'f-scattered-4k',
    title: 'scattered 4 KiB writes into a big file: across a block boundary, at the unaligned tail, past EOF',
    source: 'ferry',
    parent: 'head -c 2500000 /dev/urandom > img',
    child:
      'for o in 4096 135168 1048576 1052672 131072; do head -c 4096 /dev/urandom | dd of=img bs=4096 seek=$((o / 4096)) conv=notrunc status=none; done; ' +
      'head -c 6000 /dev/urandom | dd of=img bs=1 seek=260000 conv=notrunc status=none; ' +
      'head -c 3000 /dev/urandom | dd of=img bs=1 seek=2498000 conv=notrunc status=none',
  },
  {
    id: 'f-cp-large',
    title: 'cp of a large file (unaligned size) beside it, into a new directory, and over a bigger file',
    source: 'ferry',
    parent: 'head -c 3146728 /dev/urandom > big; head -c 4000000 /dev/urandom > over; mkdir d',
    child: 'cp big big.copy; cp big d/again; cp big over',
  },
  {
    id: 'f-dup-in-tree',
    title: 'files duplicated within the tree, in the full and the incremental stream (clone sources earlier in the same stream)',
    source: 'ferry',
    parent: 'echo x > keep; head -c 700000 /dev/urandom > p1; mkdir pd; cp p1 pd/p2; head -c 3000 /dev/urandom > tiny; cp tiny tiny2',
    child: 'mkdir -p a b; head -c 1200000 /dev/urandom > a/x; cp a/x b/y; cat a/x a/x > b/twice; ln b/y a/hard',
  },
  {
    id: 'f-repeated-blocks',
    title: 'a new file made of one 128 KiB block repeated (in-file clones must not overlap their source)',
    source: 'ferry',
    parent: 'echo x > x',
    child: 'head -c 131072 /dev/urandom > a; for i in 1 2 3 4 5 6 7 8 9 10 11 12; do cat a; done > rep; head -c 5000 /dev/urandom >> rep',
  },
  {
    id: 'f-block-moved',
    title: 'blocks moved within a file: whole 128 KiB blocks, and a 4 KiB-aligned run',
    source: 'ferry',
    parent: 'head -c 2097152 /dev/urandom > f; head -c 1048576 /dev/urandom > g',
    child:
      'dd if=f of=f bs=128K skip=2 seek=9 count=3 conv=notrunc status=none; ' +
      'dd if=g of=g bs=4K skip=5 seek=200 count=7 conv=notrunc status=none',
  },
];

export const SCENARIOS: Scenario[] = [...SECTION_7, ...FERRY];

/** Section 7 cases that cannot be written as parent/child scripts, each with the reason. */
export const notScriptable: NotScriptable[] = [
  {
    id: 's7-27',
    title: 'open-but-deleted (nlink 0) inodes in a snapshot',
    source: 'btrfs/168, btrfs/278',
    reason:
      'needs an inode with nlink 0 inside the sent snapshot. `btrfs subvolume snapshot` runs orphan cleanup on ' +
      'the new snapshot (verified on 6.18: a file unlinked while a helper held it open is simply absent from the ' +
      'snapshot and the stream is a plain unlink), so it can only be made by flipping the snapshot itself to ' +
      'read-write, unlinking with fds held open, and flipping it back to read-only before and during the send. ' +
      'The harness, not a script, takes the snapshots, so this cannot be expressed as parent/child scripts; ' +
      'kernel-scenarios.test.ts runs it as a separate btrfs-only test that holds the fds in the test process.',
  },
];

