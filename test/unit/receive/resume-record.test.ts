/**
 * The files of a kept partial (src/receive/resume-record.ts): the journal's
 * two slots survive a torn write of either, and judgePartial decides from the
 * files alone which partials may be resumed and from where.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  JOURNAL_FILE,
  Journal,
  ResumeRecord,
  appendWarnings,
  judgePartial,
  readJournal,
  readRecord,
  readWarnings,
  writeRecord,
} from '../../../src/receive/resume-record';
import { resumableSha256 } from '../../../src/receive/sha256-state';

const ID = '0f0e0d0c-0b0a-4998-8776-655443322110';
let dir: string;

beforeEach(() => {
  dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-rr-')), ID);
  fs.mkdirSync(dir);
});
afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

function stateAt(n: number) {
  const h = resumableSha256();
  h.update(Buffer.alloc(n, 1));
  return h.state();
}

function record(over: Partial<ResumeRecord> = {}): ResumeRecord {
  const appliedBytes = over.appliedBytes ?? 100;
  return {
    format: 1,
    id: ID,
    name: 'snap',
    receivedUuid: 'c696eaca-5641-f84b-b357-89ce1f87e1e1',
    ctransid: '8',
    parentUuid: null,
    parentCtransid: null,
    parentLocalUuid: null,
    method: 'full',
    policy: { allowDevices: false, allowSetuid: false },
    version: 1,
    appliedBytes,
    commands: 3,
    hash: stateAt(appliedBytes),
    prefixSha256: 'x',
    seq: 4,
    bootId: 'boot-a',
    final: false,
    uncertain: false,
    fixups: [],
    createdAt: '',
    updatedAt: '',
    ...over,
  };
}

const entry = (pos: number, seq = 4, bootId = 'boot-a') => ({ seq, bootId, pos, commands: 9, hash: stateAt(pos), uncertain: true, fixups: [] });

describe('journal', () => {
  it('the newest intact slot wins', () => {
    const j = new Journal(dir);
    j.write(entry(200));
    j.write(entry(300));
    j.write(entry(400));
    j.close();
    expect(readJournal(dir)).toMatchObject({ j: 3, pos: 400 });
  });

  it('a torn newest slot falls back to the other one', () => {
    const j = new Journal(dir);
    j.write(entry(200));
    j.write(entry(300)); // slot 0
    j.close();
    const f = path.join(dir, JOURNAL_FILE);
    const b = fs.readFileSync(f);
    b[40] ^= 0xff; // inside slot 0's JSON
    fs.writeFileSync(f, b);
    expect(readJournal(dir)).toMatchObject({ j: 1, pos: 200 });
  });

  it('continues numbering after an earlier writer (a resumed run)', () => {
    const a = new Journal(dir);
    for (let i = 0; i < 5; i++) a.write(entry(100 + i));
    a.close();
    const b = new Journal(dir, readJournal(dir)!.j);
    b.write(entry(500, 5));
    b.close();
    expect(readJournal(dir)).toMatchObject({ j: 6, pos: 500, seq: 5 });
  });

  it('no journal, or garbage, reads as none', () => {
    expect(readJournal(dir)).toBeUndefined();
    fs.writeFileSync(path.join(dir, JOURNAL_FILE), 'garbage\n{}');
    expect(readJournal(dir)).toBeUndefined();
  });
});

describe('judgePartial', () => {
  it('no record or an unreadable one: stale', () => {
    expect(judgePartial(dir, 'boot-a').kind).toBe('stale');
    fs.writeFileSync(path.join(dir, 'resume.json'), '{"format":1');
    expect(judgePartial(dir, 'boot-a').kind).toBe('stale');
    writeRecord(dir, { ...record(), hash: stateAt(99) }); // hash does not cover appliedBytes
    expect(readRecord(dir)).toBeUndefined();
  });

  it('a record naming another partial: stale', () => {
    writeRecord(dir, record({ id: 'ffffffff-0b0a-4998-8776-655443322110' }));
    expect(judgePartial(dir, 'boot-a').kind).toBe('stale');
  });

  it('another boot: only a final record is resumable, and its journal is ignored', () => {
    writeRecord(dir, record({ final: false }));
    expect(judgePartial(dir, 'boot-b')).toMatchObject({ kind: 'stale' });
    writeRecord(dir, record({ final: true }));
    const j = new Journal(dir);
    j.write(entry(500));
    j.close();
    expect(judgePartial(dir, 'boot-b')).toMatchObject({ kind: 'ready' });
  });

  it('same boot: a journal of the same seq that got further is used', () => {
    writeRecord(dir, record());
    const j = new Journal(dir);
    j.write(entry(500));
    j.close();
    const v = judgePartial(dir, 'boot-a');
    expect(v).toMatchObject({ kind: 'recover', journal: { pos: 500 } });
  });

  it('same boot: a journal of an older record or another boot is not used', () => {
    writeRecord(dir, record());
    for (const e of [entry(500, 3), entry(500, 4, 'boot-z'), entry(50)]) {
      fs.rmSync(path.join(dir, JOURNAL_FILE), { force: true });
      const j = new Journal(dir);
      j.write(e);
      j.close();
      const v = judgePartial(dir, 'boot-a');
      expect(v.kind).toBe('recover');
      expect(v.kind === 'recover' && v.journal).toBeFalsy();
    }
  });

  it('same boot, final record: ready as it is', () => {
    writeRecord(dir, record({ final: true }));
    expect(judgePartial(dir, 'boot-a').kind).toBe('ready');
  });
});

describe('warnings log', () => {
  it('keeps warnings of commands before the resume point, and survives a cut line', () => {
    appendWarnings(dir, 10, ['a']);
    appendWarnings(dir, 20, ['b', 'c']);
    appendWarnings(dir, 30, ['d']);
    fs.appendFileSync(path.join(dir, 'warnings.log'), '{"at":40,"w":"cu');
    expect(readWarnings(dir, 30).map((x) => x.w)).toEqual(['a', 'b', 'c']);
    expect(readWarnings(dir, 1000).map((x) => x.w)).toEqual(['a', 'b', 'c', 'd']);
  });
});
