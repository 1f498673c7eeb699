/**
 * Warms the inode and dentry caches for a tree walk from a second thread.
 *
 * A cold walk waits on one inode read at a time and spends as long again on
 * the CPU; a worker that does only readdir and a plain lstat over the same
 * tree, in the order the real walk will visit it, gets just ahead of it, so
 * the two overlap on two cores. The worker keeps nothing and writes nothing.
 *
 * Owns: the worker's program and its life. Never: changes the tree, throws
 * (where worker threads are unavailable the walk runs unhelped), or keeps
 * the process alive.
 */
import { Worker } from 'node:worker_threads';

export interface TreePrefetchOptions {
  /** A name to skip at the root (a volume's .ferry). */
  skip?: Buffer;
  /**
   * The order of the walk being helped:
   * - 'stack': directories are pushed as found and the last pushed is
   *   listed next (the snapshot walker);
   * - 'preorder': each subdirectory is descended into as soon as it is
   *   met, in readdir order (a recursive copy, like the receiver's seed).
   */
  order: 'stack' | 'preorder';
  /** Tests: called with every directory listed, in order, once the worker is done. */
  onListed?: (dirs: Buffer[]) => void;
}

const SOURCE = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const root = Buffer.from(workerData.root, 'latin1');
const skip = workerData.skip === null ? null : Buffer.from(workerData.skip, 'latin1');
const slash = Buffer.from('/');
const dev = fs.lstatSync(root).dev;
const listed = workerData.trace ? [] : null;
const list = (dir) => {
  if (listed !== null) listed.push(dir.toString('latin1'));
  try {
    return fs.readdirSync(dir, { encoding: 'buffer' });
  } catch {
    return [];
  }
};
/** The path of a subdirectory on the same filesystem, else null. */
const subdir = (dir, name) => {
  if (dir === root && skip !== null && name.equals(skip)) return null;
  const p = Buffer.concat([dir, slash, name]);
  try {
    const st = fs.lstatSync(p);
    return st.isDirectory() && st.dev === dev ? p : null;
  } catch {
    return null;
  }
};
if (workerData.order === 'preorder') {
  // One frame per open directory: its listing and how far it has been read.
  const frames = [{ dir: root, names: list(root), i: 0 }];
  while (frames.length) {
    const f = frames[frames.length - 1];
    if (f.i >= f.names.length) {
      frames.pop();
      continue;
    }
    const p = subdir(f.dir, f.names[f.i++]);
    if (p !== null) frames.push({ dir: p, names: list(p), i: 0 });
  }
} else {
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop();
    for (const name of list(dir)) {
      const p = subdir(dir, name);
      if (p !== null) stack.push(p);
    }
  }
}
if (listed !== null) require('node:worker_threads').parentPort.postMessage(listed);
`;

/** Start warming `root`'s caches; returns the function that stops it. */
export function startTreePrefetch(root: Buffer, opts: TreePrefetchOptions): () => void {
  let w: Worker;
  try {
    w = new Worker(SOURCE, {
      eval: true,
      workerData: { root: root.toString('latin1'), skip: opts.skip ? opts.skip.toString('latin1') : null, order: opts.order, trace: !!opts.onListed },
    });
  } catch {
    return () => undefined;
  }
  const onListed = opts.onListed;
  if (onListed) w.once('message', (dirs: string[]) => onListed(dirs.map((d) => Buffer.from(d, 'latin1'))));
  else w.unref();
  w.on('error', () => undefined);
  return () => void w.terminate().catch(() => undefined);
}
