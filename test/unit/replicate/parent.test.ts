/** Parent choice is pure: matched by uuid and received uuid, never by name; typed outcomes. */
import { chooseParent, findResumable, planTransfer, sameSnapshot, SourceSnapshot, transferError } from '../../../src/replicate/parent';
import type { RemoteSnapshot } from '../../../src/replicate/destination';

const U = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const D = (n: number) => `dddddddd-0000-4000-8000-${String(n).padStart(12, '0')}`;

/** Source snapshot n: uuid U(n), transid n. */
const src = (n: number, name = `s${n}`): SourceSnapshot => ({ name, uuid: U(n), transid: String(n) });
/** Destination copy of source snapshot n, received at minute `at`. */
const dst = (n: number, at = n, name = `s${n}`, parent: number | null = null): RemoteSnapshot => ({
  name,
  uuid: D(n),
  receivedUuid: U(n),
  parentUuid: parent === null ? null : U(parent),
  ctransid: String(n),
  receivedAt: `2026-01-01T00:${String(at).padStart(2, '0')}:00.000Z`,
});
/** A destination snapshot from elsewhere (unknown uuid). */
const foreign = (k: number, at: number, name = `x${k}`, ctransid = String(k)): RemoteSnapshot => ({
  name,
  uuid: D(900 + k),
  receivedUuid: `ffffffff-0000-4000-8000-${String(k).padStart(12, '0')}`,
  parentUuid: null,
  ctransid,
  receivedAt: `2026-01-01T00:${String(at).padStart(2, '0')}:00.000Z`,
});

describe('chooseParent', () => {
  test('empty destination: no parent, nothing diverged', () => {
    expect(chooseParent([src(1), src(2)], [])).toEqual({ parent: null, common: null, diverged: [], unknown: [] });
  });

  test('newest snapshot both sides have, whatever the list order', () => {
    const r = chooseParent([src(3), src(1), src(2)], [dst(2), dst(1)]);
    expect(r.parent?.name).toBe('s2');
    expect(r.common?.dest.name).toBe('s2');
    expect(r.diverged).toEqual([]);
  });

  test('matched by received uuid, never by name', () => {
    // Same names, other uuids: not common.
    const impostor = { ...foreign(1, 5), name: 's2' };
    expect(chooseParent([src(1), src(2)], [impostor]).parent).toBeNull();
    // Other name, same received uuid: common.
    expect(chooseParent([src(1), src(2)], [dst(2, 2, 'renamed-at-target')]).parent?.name).toBe('s2');
  });

  test('matched by the destination uuid too, and by a source snapshot\'s own received uuid', () => {
    const d: RemoteSnapshot = { ...foreign(1, 1), uuid: U(4) };
    expect(sameSnapshot(src(4), d)).toBe(true);
    const relayed: SourceSnapshot = { ...src(7), receivedUuid: 'ffffffff-0000-4000-8000-000000000001' };
    expect(chooseParent([relayed], [foreign(1, 1)]).parent).toBe(relayed);
  });

  test('older unknown snapshots (pruned at the source) are not divergence', () => {
    const r = chooseParent([src(3), src(4)], [dst(1), dst(2), dst(3)]);
    expect(r.parent?.name).toBe('s3');
    expect(r.diverged).toEqual([]);
    expect(r.unknown.map((d) => d.name)).toEqual(['s1', 's2']);
  });

  test('an unknown snapshot received after the common one is divergence', () => {
    // s4 was sent, then removed at the source.
    const r = chooseParent([src(1), src(2), src(3)], [dst(1), dst(2), dst(4)]);
    expect(r.parent?.name).toBe('s2');
    expect(r.diverged.map((d) => d.name)).toEqual(['s4']);
    // A foreign snapshot received after the common one, whatever its ctransid.
    const f = chooseParent([src(1), src(2)], [dst(1, 1), dst(2, 2), foreign(1, 9, 'other', '1')]);
    expect(f.diverged.map((d) => d.name)).toEqual(['other']);
  });

  test('no common snapshot: full, and unknown snapshots are listed but not divergence', () => {
    const r = chooseParent([src(1)], [foreign(1, 1), foreign(2, 2)]);
    expect(r.parent).toBeNull();
    expect(r.diverged).toEqual([]);
    expect(r.unknown).toHaveLength(2);
  });
});

describe('planTransfer', () => {
  test('first sync is full', () => {
    expect(planTransfer([src(1)], [], src(1))).toEqual({ kind: 'send', snapshot: src(1), parent: null, common: null });
  });

  test('incremental from the newest common snapshot older than the one sent', () => {
    const p = planTransfer([src(1), src(2), src(3)], [dst(1), dst(2)], src(3));
    expect(p.kind).toBe('send');
    if (p.kind === 'send') expect(p.parent?.name).toBe('s2');
  });

  test('a destination that is ahead gets an older snapshot incrementally from an older common one (not diverged)', () => {
    const p = planTransfer([src(1), src(2), src(3)], [dst(1, 1), dst(3, 2)], src(2));
    expect(p.kind).toBe('send');
    if (p.kind === 'send') expect(p.parent?.name).toBe('s1');
  });

  test('already there: present, nothing to send', () => {
    const p = planTransfer([src(1), src(2)], [dst(1), dst(2)], src(2));
    expect(p).toEqual({ kind: 'present', snapshot: src(2), existing: dst(2) });
  });

  test('diverged is refused with both lists in the error', () => {
    const p = planTransfer([src(1), src(2), src(5)], [dst(1), dst(2), dst(4)], src(5));
    expect(p.kind).toBe('diverged');
    const e = transferError(p, { volume: '/v', dest: '/t' })!;
    expect(e.code).toBe('REPLICATE_DIVERGED');
    expect(e.exitCode).toBe(15);
    expect(e.message).toContain('s4');
    expect(e.message).toContain(U(4));
    expect(e.message).toContain('common snapshot s2');
  });

  test('incremental-only with no common parent: no-parent listing both sides', () => {
    const p = planTransfer([src(1), src(2)], [foreign(1, 1, 'theirs')], src(2), { incrementalOnly: true });
    expect(p.kind).toBe('no-parent');
    const e = transferError(p, { volume: '/v', dest: '/t' })!;
    expect(e.code).toBe('REPLICATE_NO_PARENT');
    expect(e.exitCode).toBe(15);
    expect(e.message).toMatch(/source has: s1 \(.*\); s2 \(/);
    expect(e.message).toMatch(/destination has: theirs \(/);
    // Without the flag the same inputs give a full send.
    expect(planTransfer([src(1), src(2)], [foreign(1, 1)], src(2)).kind).toBe('send');
    // An empty destination says so.
    expect(transferError(planTransfer([src(1)], [], src(1), { incrementalOnly: true }), { volume: '/v', dest: '/t' })!.message).toContain('destination has: none');
  });

  test('the parent is never the snapshot itself or newer', () => {
    // The destination holds only s3; sending s2 must be full.
    const p = planTransfer([src(2), src(3)], [dst(3)], src(2));
    expect(p.kind === 'send' && p.parent).toBe(null);
  });

  test('transferError is undefined for send and present', () => {
    expect(transferError(planTransfer([src(1)], [], src(1)), { volume: 'v', dest: 'd' })).toBeUndefined();
    expect(transferError(planTransfer([src(1)], [dst(1)], src(1)), { volume: 'v', dest: 'd' })).toBeUndefined();
  });
});

describe('findResumable', () => {
  const partial = (n: number, parent: number | null, applied = 1000) => ({
    id: `p${n}`,
    name: `s${n}`,
    receivedUuid: U(n),
    parentUuid: parent === null ? null : U(parent),
    ctransid: String(n),
    appliedBytes: applied,
    prefixSha256: 'ab',
  });

  test('an incremental partial whose parent both sides still have', () => {
    const r = findResumable([src(1), src(2)], [dst(1)], [partial(2, 1)]);
    expect(r?.snapshot.name).toBe('s2');
    expect(r?.parent?.name).toBe('s1');
  });

  test('a full partial', () => {
    expect(findResumable([src(1)], [], [partial(1, null)])?.parent).toBeNull();
  });

  test('not when the source lost the snapshot or the parent, or the destination lost the parent', () => {
    expect(findResumable([src(1)], [dst(1)], [partial(2, 1)])).toBeNull();
    expect(findResumable([src(2)], [dst(1)], [partial(2, 1)])).toBeNull();
    expect(findResumable([src(1), src(2)], [], [partial(2, 1)])).toBeNull();
  });

  test('not when the destination already has the snapshot', () => {
    expect(findResumable([src(1), src(2)], [dst(1), dst(2)], [partial(2, 1)])).toBeNull();
  });

  test('the newest usable partial wins', () => {
    const r = findResumable([src(1), src(2), src(3)], [dst(1)], [partial(2, 1), partial(3, 1), partial(9, 1)]);
    expect(r?.snapshot.name).toBe('s3');
  });
});
