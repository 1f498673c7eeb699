/**
 * btrfs subvolumes through btrfs-progs (the `btrfs` method, DESIGN.md
 * "Snapshot methods"): create, snapshot (read-only or writable), delete,
 * show, the read-only property, and the identity a kernel send stream gives
 * a snapshot (its uuid and ctransid).
 *
 * Owns: the `btrfs` command lines and the parsing of their output. A failing
 * command becomes VOLUME_BTRFS_FAILED carrying its stderr.
 *
 * Never: deletes anything but the path it is given; runs a shell.
 *
 * Why the ctransid comes from a send stream: `btrfs subvolume show` prints
 * the generation, not the ctransid, and a read-only snapshot's ctransid is
 * its source's at snapshot time, so the two differ whenever the source was
 * idle across a commit. The SUBVOL command at the very start of
 * `btrfs send --no-data` carries exactly the uuid and ctransid every kernel
 * stream of that snapshot will carry; the send is stopped as soon as that
 * command is decoded.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { FerryError } from '../errors';
import { Cmd } from '../model/command';
import { decodeStream } from '../stream/decoder';
import { formatUuid } from '../stream/dump';

const BTRFS_SUPER_MAGIC = 0x9123683e;
/** Inode number of every subvolume's root directory. */
export const SUBVOL_ROOT_INO = 256n;

function failed(what: string, detail: string, context: Record<string, string> = {}): FerryError {
  return new FerryError('VOLUME_BTRFS_FAILED', `btrfs ${what} failed: ${detail.trim() || 'no message'}`, {
    context,
    hint: 'the btrfs method needs btrfs-progs and root (CAP_SYS_ADMIN)',
  });
}

/** Run `btrfs ARGS`; stdout on success, VOLUME_BTRFS_FAILED otherwise. */
export function btrfs(args: string[]): string {
  const r = spawnSync('btrfs', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw failed(args.slice(0, 2).join(' '), r.error.message);
  if (r.status !== 0) throw failed(args.slice(0, 2).join(' '), r.stderr || r.stdout, { path: args[args.length - 1] });
  return r.stdout;
}

/** Is `p` on btrfs? */
export function onBtrfs(p: string): boolean {
  try {
    return fs.statfsSync(p).type === BTRFS_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/** Is `p` the root of a btrfs subvolume (not following a final symlink)? */
export function isSubvolume(p: string): boolean {
  try {
    return onBtrfs(p) && fs.lstatSync(p, { bigint: true }).ino === SUBVOL_ROOT_INO;
  } catch {
    return false;
  }
}

/** True when btrfs-progs is installed. */
export function haveBtrfsProgs(): boolean {
  const r = spawnSync('btrfs', ['--version'], { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

export function createSubvolume(p: string): void {
  btrfs(['subvolume', 'create', p]);
}

export function snapshotSubvolume(src: string, dst: string, o: { readonly: boolean }): void {
  btrfs(['subvolume', 'snapshot', ...(o.readonly ? ['-r'] : []), src, dst]);
}

/** Delete a subvolume (read-only or not). Fails when it still holds other subvolumes. */
export function deleteSubvolume(p: string): void {
  btrfs(['subvolume', 'delete', p]);
}

export function setReadonly(p: string, on: boolean): void {
  btrfs(['property', 'set', '-ts', p, 'ro', on ? 'true' : 'false']);
}

export interface SubvolumeShow {
  uuid: string;
  parentUuid: string | null;
  receivedUuid: string | null;
  /** Generation (last transaction that changed it). */
  generation: bigint;
  /** Gen at creation (otransid). */
  otransid: bigint;
  readonly: boolean;
}

/** `btrfs subvolume show`, parsed. */
export function showSubvolume(p: string): SubvolumeShow {
  const out = btrfs(['subvolume', 'show', p]);
  const field = (name: string): string | undefined => {
    const m = new RegExp(`^\\s*${name}:\\s*(.*)$`, 'm').exec(out);
    return m?.[1].trim();
  };
  const uuidOrNull = (v: string | undefined) => (v && v !== '-' ? v : null);
  const uuid = uuidOrNull(field('UUID'));
  const generation = field('Generation');
  const otransid = field('Gen at creation');
  if (!uuid || !generation || !/^\d+$/.test(generation) || !otransid || !/^\d+$/.test(otransid)) {
    throw failed('subvolume show', `unexpected output: ${out.slice(0, 200)}`, { path: p });
  }
  return {
    uuid,
    parentUuid: uuidOrNull(field('Parent UUID')),
    receivedUuid: uuidOrNull(field('Received UUID')),
    generation: BigInt(generation),
    otransid: BigInt(otransid),
    readonly: /\breadonly\b/.test(field('Flags') ?? ''),
  };
}

export interface StreamIdentity {
  /** The snapshot's uuid as a send stream carries it (dashed). */
  uuid: string;
  /** Its ctransid as a send stream carries it. */
  ctransid: bigint;
}

/**
 * The uuid and ctransid a kernel send stream of the read-only subvolume `p`
 * carries: read from the SUBVOL command at the start of
 * `btrfs send --no-data`, which is then stopped.
 */
export async function streamIdentity(p: string): Promise<StreamIdentity> {
  const child = spawn('btrfs', ['-q', 'send', '--no-data', p], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (e) => {
      stderr += e.message;
      resolve(-1);
    });
    child.once('close', (code) => resolve(code));
  });
  let found: StreamIdentity | undefined;
  let decodeError: unknown;
  try {
    for await (const item of decodeStream(child.stdout)) {
      if (item.kind !== 'command') continue;
      if (item.cmd === Cmd.SUBVOL && item.attrs.uuid && item.attrs.ctransid !== undefined) {
        found = { uuid: formatUuid(item.attrs.uuid), ctransid: item.attrs.ctransid };
      }
      break;
    }
  } catch (e) {
    decodeError = e;
  } finally {
    // Stop the send: it holds the subvolume busy (no delete) while it runs.
    child.stdout.destroy();
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  const code = await exited;
  if (found) return found;
  throw failed('send', stderr || (decodeError as Error)?.message || `exit ${code}`, { path: p });
}

/** Inode number of the empty directory a snapshot shows where its source had a nested subvolume. */
const EMPTY_SUBVOL_DIR_INO = 2n;

/**
 * True for the walker's "skipped a mount point" warning about a nested
 * subvolume's stub inside a snapshot: like `btrfs send`, a btrfs volume's
 * snapshots never include nested subvolumes, so that is not worth a warning.
 */
export function isNestedSubvolumeStub(warning: string): boolean {
  const m = /^skipped a mount point \(another filesystem\): (.*)$/s.exec(warning);
  if (!m) return false;
  try {
    const st = fs.lstatSync(m[1], { bigint: true });
    return st.isDirectory() && st.ino === EMPTY_SUBVOL_DIR_INO;
  } catch {
    return false;
  }
}
