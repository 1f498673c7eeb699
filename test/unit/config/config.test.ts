/**
 * ferry.yaml: every sample in examples/ loads, every invalid fixture fails
 * with exactly the problems in its `# expect:` header, and loading reports
 * every problem at once with its line.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigInvalidError, defaultConfigPaths, loadConfig, parseConfig, SYSTEM_CONFIG } from '../../../src/config/load';
import { checkConfig, DEFAULT_HOOK_TIMEOUT_MS, formatProblem } from '../../../src/config/schema';
import { formatDuration, parseDuration, parseRate } from '../../../src/config/units';
import { Exit, FerryError } from '../../../src/errors';

const ROOT = path.join(__dirname, '..', '..', '..');
const EXAMPLES = path.join(ROOT, 'examples');
const INVALID = path.join(ROOT, 'test', 'fixtures', 'configs', 'invalid');

describe('examples/', () => {
  const files = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));
  test('there are samples for local, ssh and stream-file targets', () => {
    expect(files).toEqual(expect.arrayContaining(['ferry.yaml', 'local.yaml', 'ssh.yaml', 'stream-files.yaml', 'full.yaml']));
    const all = files.flatMap((f) => parseConfig(fs.readFileSync(path.join(EXAMPLES, f), 'utf8'), f).jobs.flatMap((j) => j.targets));
    expect(new Set(all.map((t) => `${t.kind}/${t.format}`))).toEqual(new Set(['local/tree', 'ssh/tree', 'local/stream']));
  });
  test.each(files)('%s loads', (f) => {
    const r = checkConfig(fs.readFileSync(path.join(EXAMPLES, f), 'utf8'), f);
    expect(r.problems.map(formatProblem)).toEqual([]);
    expect(r.config!.jobs.length).toBeGreaterThan(0);
  });

  test("ferry.yaml is the issue's shape, with its values", () => {
    const cfg = parseConfig(fs.readFileSync(path.join(EXAMPLES, 'ferry.yaml'), 'utf8'), 'ferry.yaml');
    const [j] = cfg.jobs;
    expect(j).toMatchObject({ name: 'nightly', volume: '/srv/data', snapshot: 'onchange', hooks: { pre: null, post: null } });
    expect(j.targets.map((t) => [t.path, t.kind, t.compress, t.bwlimit])).toEqual([
      ['/mnt/backup/data', 'local', null, null],
      ['backup@nas:/pool/data', 'ssh', { level: 3 }, 50 * 1024 * 1024],
    ]);
    expect(j.retention.source).toMatchObject({ keepMin: { kind: 'age', ms: 86_400_000 }, daily: 7, weekly: 0 });
    expect(j.targets[1].retention).toMatchObject({ daily: 30, weekly: 8, monthly: 12, yearly: 5, weekStart: 1, dayStart: 0 });
  });

  test('full.yaml: anchors, merge keys, per-target retention, hooks and their timeouts', () => {
    const cfg = parseConfig(fs.readFileSync(path.join(EXAMPLES, 'full.yaml'), 'utf8'), 'full.yaml');
    const [db, home] = cfg.jobs;
    expect(db.hooks.pre).toEqual({ command: "psql -U postgres -c 'CHECKPOINT'", timeoutMs: 300_000 });
    expect(db.hooks.post!.timeoutMs).toBe(30_000);
    expect(db.targets[0].retention).toMatchObject({ keepMin: { kind: 'age', ms: 2 * 86_400_000 }, daily: 60, dayStart: 3 });
    expect(db.targets[1]).toMatchObject({ proto: 2, incrementalOnly: true, ssh: { identity: '/root/.ssh/ferry_ed25519', acceptNew: true } });
    expect(home.retention.source).toMatchObject({ keepMin: { kind: 'latest' }, hourly: 12, daily: 7, dayStart: 3 });
    expect(home.targets[0]).toMatchObject({ path: '/mnt/backup/home', retention: { daily: 30, dayStart: 3 } });
  });
});

describe('test/fixtures/configs/invalid/', () => {
  const files = fs.readdirSync(INVALID).filter((f) => f.endsWith('.yaml'));
  test('there are cases', () => expect(files.length).toBeGreaterThanOrEqual(10));
  test.each(files)('%s fails with exactly its expected problems', (f) => {
    const text = fs.readFileSync(path.join(INVALID, f), 'utf8');
    const expected = text
      .split('\n')
      .filter((l) => l.startsWith('# expect: '))
      .map((l) => l.slice('# expect: '.length));
    expect(expected.length).toBeGreaterThan(0);
    const r = checkConfig(text, f);
    expect(r.config).toBeUndefined();
    expect(r.problems.map(formatProblem)).toEqual(expected);
    // and through the loader: one CONFIG_INVALID (exit 12) listing every one
    let err: unknown;
    try {
      parseConfig(text, `/etc/ferry/${f}`);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigInvalidError);
    const ce = err as ConfigInvalidError;
    expect(ce.code).toBe('CONFIG_INVALID');
    expect(ce.exitCode).toBe(Exit.CONFIG);
    for (const line of expected) expect(ce.message).toContain(`\n  ${line}`);
  });
});

describe('schema details', () => {
  const ok = (yaml: string) => {
    const r = checkConfig(yaml, 't.yaml');
    expect(r.problems.map(formatProblem)).toEqual([]);
    return r.config!;
  };
  const problems = (yaml: string) => checkConfig(yaml, 't.yaml').problems.map(formatProblem);

  test('defaults: snapshot always, keep everything, tree format, proto 1, 10 min hook timeout', () => {
    const c = ok('jobs:\n  - name: a\n    volume: /v/\n    targets: [/t]\n    hooks: { pre: "true" }\n');
    const j = c.jobs[0];
    expect(j.volume).toBe('/v');
    expect(j.snapshot).toBe('always');
    expect(j.retention.source.keepMin).toEqual({ kind: 'all' });
    expect(j.targets[0]).toMatchObject({ path: '/t', kind: 'local', format: 'tree', proto: 1, compress: null, retention: { keepMin: { kind: 'all' } } });
    expect(j.hooks.pre).toEqual({ command: 'true', timeoutMs: DEFAULT_HOOK_TIMEOUT_MS });
  });

  test('a .btrfs-stream path implies format: stream; stream files over ssh are refused', () => {
    expect(ok('jobs:\n  - name: a\n    volume: /v\n    targets: [/t/x.btrfs-stream.zst]\n').jobs[0].targets[0].format).toBe('stream');
    expect(problems('jobs:\n  - name: a\n    volume: /v\n    targets:\n      - path: h:/x\n        format: stream\n')).toEqual([
      'jobs[0].targets[0].format: stream files must be on this host (a local /path); use a ferry target (format: tree) over ssh (line 6)',
    ]);
  });

  test('unknown keys suggest the nearest known key, or nothing when none is close', () => {
    expect(problems('jobs:\n  - name: a\n    volume: /v\n    tragets: [/t]\n')).toEqual([
      'jobs[0].targets: is required (line 2)',
      'jobs[0].tragets: unknown key (did you mean "targets"?) (line 4)',
    ]);
    expect(problems('jobs:\n  - name: a\n    volume: /v\n    targets: [/t]\n    colour: blue\n')).toEqual(['jobs[0].colour: unknown key (line 5)']);
  });

  test('bad ssh destinations carry the ssh parser\'s reason', () => {
    expect(problems('jobs:\n  - name: a\n    volume: /v\n    targets: ["h:99999:/x"]\n')).toEqual([
      'jobs[0].targets[0].path: is not a valid ssh destination: ssh destination invalid: port 99999 is not between 1 and 65535 (line 4)',
    ]);
  });

  test('rates and compression levels', () => {
    const c = ok('jobs:\n  - name: a\n    volume: /v\n    targets:\n      - { path: "h:/x", bwlimit: 1.5G, compress: "zstd:19" }\n      - { path: "h:/y", bwlimit: 800KiB/s, compress: none }\n      - { path: "h:/z", bwlimit: 1000 }\n');
    expect(c.jobs[0].targets.map((t) => [t.bwlimit, t.compress])).toEqual([
      [Math.floor(1.5 * 1024 ** 3), { level: 19 }],
      [800 * 1024, null],
      [1000, null],
    ]);
  });
});

describe('units', () => {
  test('durations', () => {
    expect(parseDuration('1d')).toEqual({ value: 86_400_000 });
    expect(parseDuration('1d12h')).toEqual({ value: 36 * 3_600_000 });
    expect(parseDuration('2W')).toEqual({ value: 14 * 86_400_000 });
    expect(parseDuration('90s')).toEqual({ value: 90_000 });
    expect(parseDuration('10min')).toEqual({ value: 600_000 });
    expect(parseDuration('1mo')).toEqual({ value: 30 * 86_400_000 });
    expect(parseDuration('5m')).toEqual({ error: expect.stringMatching(/ambiguous/) });
    expect(parseDuration('12')).toEqual({ error: expect.stringMatching(/not a duration/) });
    expect(parseDuration('1x')).toEqual({ error: expect.stringMatching(/unknown unit "x"/) });
    expect(parseDuration('0h')).toEqual({ error: expect.stringMatching(/longer than zero/) });
    expect(formatDuration(36 * 3_600_000)).toBe('36h');
    expect(formatDuration(14 * 86_400_000)).toBe('2w');
  });
  test('rates', () => {
    expect(parseRate('50M')).toEqual({ value: 50 * 1024 * 1024 });
    expect(parseRate('50MB/s')).toEqual({ value: 50 * 1024 * 1024 });
    expect(parseRate(4096)).toEqual({ value: 4096 });
    expect(parseRate('fast')).toEqual({ error: expect.stringMatching(/not a rate/) });
    expect(parseRate('0')).toEqual({ error: expect.stringMatching(/at least 1/) });
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cfg-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const good = 'jobs:\n  - name: a\n    volume: /v\n    targets: [/t]\n';

  test('default paths: /etc/ferry/ferry.yaml, then ~/.config/ferry/ferry.yaml (or $XDG_CONFIG_HOME)', () => {
    expect(defaultConfigPaths({ HOME: '/home/u' })).toEqual([SYSTEM_CONFIG, '/home/u/.config/ferry/ferry.yaml']);
    expect(defaultConfigPaths({ HOME: '/home/u', XDG_CONFIG_HOME: '/xdg' })).toEqual([SYSTEM_CONFIG, '/xdg/ferry/ferry.yaml']);
  });

  test('the first candidate that exists wins', () => {
    const a = path.join(dir, 'a.yaml');
    const b = path.join(dir, 'b.yaml');
    fs.writeFileSync(b, good);
    expect(loadConfig(undefined, { candidates: [a, b] }).file).toBe(b);
    fs.writeFileSync(a, good.replace('name: a', 'name: first'));
    expect(loadConfig(undefined, { candidates: [a, b] }).jobs[0].name).toBe('first');
  });

  test('missing files: CONFIG_NOT_FOUND (exit 12), naming where ferry looked', () => {
    const missing = path.join(dir, 'nope.yaml');
    expect(() => loadConfig(missing)).toThrow(expect.objectContaining({ code: 'CONFIG_NOT_FOUND', exitCode: 12 }));
    let e: FerryError | undefined;
    try {
      loadConfig(undefined, { candidates: [missing, path.join(dir, 'also.yaml')] });
    } catch (x) {
      e = x as FerryError;
    }
    expect(e!.message).toBe(`no config file found (looked for ${missing}, ${path.join(dir, 'also.yaml')})`);
    expect(e!.hint).toMatch(/-c FILE/);
  });

  test('CONFIG_INVALID lists every problem at once, and as JSON', () => {
    const f = path.join(dir, 'bad.yaml');
    fs.writeFileSync(f, 'jobs:\n  - name: a\n    volume: v\n    targets: [t]\n');
    let e: ConfigInvalidError | undefined;
    try {
      loadConfig(f);
    } catch (x) {
      e = x as ConfigInvalidError;
    }
    expect(e!.message).toBe(`config ${f} is invalid (2 problems):\n  jobs[0].volume: must be absolute (line 3)\n  jobs[0].targets[0].path: must be absolute (line 4)`);
    expect(e!.toJSON()).toMatchObject({
      error: 'CONFIG_INVALID',
      exitCode: 12,
      file: f,
      problems: [
        { path: 'jobs[0].volume', message: 'must be absolute', line: 3, text: 'jobs[0].volume: must be absolute (line 3)' },
        { path: 'jobs[0].targets[0].path', message: 'must be absolute', line: 4 },
      ],
    });
  });
});
