import { Report, SuiteOutcome, evaluate, reportNotes, reportRows } from '../../../bench/lib/report';
import { renderResultsMd } from '../../../bench/lib/results-md';
import { renderSvg } from '../../../bench/lib/svg';
import { renderMarkdownTable, renderTextTable } from '../../../bench/lib/table';

const suites: SuiteOutcome[] = [
  {
    suite: 'codec',
    title: 'codec',
    status: 'ok',
    seconds: 3,
    cases: [
      evaluate({ name: 'decode', ferry: { median: 0.5, samples: [0.5] }, value: 1.7, unit: 'GB/s', budget: { op: '>=', value: 1, source: 'issue' } }),
      evaluate({ name: 'encode <fast> & "x"', value: 0.8, unit: 'GB/s', budget: { op: '>=', value: 1, source: 'issue' } }),
      evaluate({ name: 'crc js', value: 1.1, unit: 'GB/s', note: 'a note' }),
      evaluate({ name: 'crc native', value: NaN, unit: 'GB/s', unavailable: 'module missing' }),
      evaluate({ name: 'rss', value: 12.5, unit: 'MB' }),
    ],
  },
  {
    suite: 'full',
    title: 'full',
    status: 'ok',
    seconds: 9,
    cases: [
      evaluate({
        name: 'usr | index',
        ferry: { median: 12, samples: [11, 12, 13] },
        peer: { median: 10, samples: [10, 10, 10], tool: 'btrfs send | btrfs receive' },
        value: 1.2,
        unit: 'ratio',
        budget: { op: '<=', value: 1.25, source: 'DESIGN.md' },
      }),
    ],
  },
  { suite: 'ssh', title: 'ssh', status: 'skipped', kind: 'not-implemented', reason: 'not implemented yet (needs ferry send/receive)' },
  { suite: 'scale', title: 'scale', status: 'crashed', seconds: 1, error: 'Error: boom\n    at x (y.ts:1:1)' },
];

const report: Report = {
  format: 'ferry-bench-report',
  version: 1,
  startedAt: '2025-01-01T00:00:00.000Z',
  finishedAt: '2025-01-01T00:01:00.000Z',
  mode: 'full',
  reps: 3,
  seed: 1,
  requested: ['codec', 'full', 'ssh', 'scale'],
  machine: {
    cpuModel: 'Test CPU',
    cpus: 2,
    totalMemBytes: 24 * 2 ** 30,
    uname: 'Linux 6.1 x86_64',
    btrfsProgs: 'btrfs-progs v6.2',
    node: 'v20.0.0',
    hostname: 'h',
    loadAvg: [0.1, 0.1, 0.1],
    cpuIdle: 0.99,
  },
  suites,
};

describe('verdicts and rows', () => {
  it('passes, misses, informs and skips as the budget says', () => {
    const ok = suites[0].status === 'ok' ? suites[0].cases : [];
    expect(ok.map((c) => c.verdict)).toEqual(['pass', 'miss', 'info', 'unavailable', 'info']);
    const rows = reportRows(report);
    expect(rows.map((r) => r.result)).toEqual([
      'pass',
      'miss',
      'info',
      'skipped: module missing',
      'info',
      'pass',
      'skipped: not implemented yet (needs ferry send/receive)',
      'CRASHED: Error: boom',
    ]);
    expect(rows[0]).toMatchObject({ ferry: '500.0 ms', peer: '—', value: '1.70 GB/s', budget: '≥ 1.00 GB/s' });
    expect(rows[5]).toMatchObject({ ferry: '12.0 s', peer: '10.0 s (btrfs send | btrfs receive)', value: '1.20×', budget: '≤ 1.25×' });
  });

  it('misses an invalid case whatever its value, with the reason short in the table and whole in the notes', () => {
    const why = `received tree differs from the source (${'x'.repeat(200)})`;
    const c = evaluate({ name: 'bad', value: 0.5, unit: 'ratio', budget: { op: '<=', value: 1, source: 's' }, invalid: why });
    expect(c.verdict).toBe('miss');
    const one: SuiteOutcome[] = [{ suite: 'full', title: 'f', status: 'ok', seconds: 1, cases: [c] }];
    expect(reportRows({ suites: one })[0].result.length).toBeLessThanOrEqual(96);
    expect(reportNotes({ suites: one })).toEqual([`full/bad: INVALID: ${why}`]);
    expect(evaluate({ name: 'p', value: 5, unit: '%', budget: { op: '<=', value: 1, source: 's' } })).toMatchObject({ verdict: 'miss' });
    expect(reportRows({ suites: [{ suite: 'i', title: 'i', status: 'ok', seconds: 1, cases: [evaluate({ name: 'p', value: 0.25, unit: '%' })] }] })[0].value).toBe('0.25%');
  });

  it('never passes a non-finite value against a budget', () => {
    expect(evaluate({ name: 'x', value: NaN, unit: 'ratio', budget: { op: '<=', value: 1, source: 's' } }).verdict).toBe('miss');
  });
});

describe('text and markdown tables', () => {
  it('aligns the text table in columns', () => {
    const lines = renderTextTable(reportRows(report)).trimEnd().split('\n');
    expect(lines).toHaveLength(2 + 8);
    expect(lines[0]).toMatch(/^suite\s+case\s+ferry median\s+peer median\s+ferry\/peer or rate\s+budget\s+result$/);
    const col = lines[0].indexOf('budget');
    for (const l of lines.slice(2)) expect([...l].slice(col - 2, col).join('')).toBe('  ');
  });

  it('writes a markdown table with one cell per column on every line', () => {
    const md = renderMarkdownTable(reportRows(report)).trimEnd().split('\n');
    expect(md).toHaveLength(2 + 8);
    for (const l of md) expect(l.replace(/\\\|/g, '').split('|').length - 2).toBe(7);
    expect(md[1]).toBe('| --- | --- | ---: | ---: | ---: | --- | --- |');
  });

  it('writes RESULTS.md with the machine, the table and the chart', () => {
    const md = renderResultsMd(report);
    expect(md).toContain('# ferry benchmark results');
    expect(md).toContain('CPU: Test CPU, 2 logical CPUs');
    expect(md).toContain('btrfs-progs v6.2');
    expect(md).toContain('| codec | decode |');
    expect(md).toContain('2 passed, 1 missed, 2 informational, 1 suites skipped, 1 crashed.');
    expect(md).toContain('codec/crc js: a note');
    expect(md).toContain('![results chart](report.svg)');
    expect(md).toContain('[ANALYSIS.md](ANALYSIS.md)'); // one budget was missed
    expect(md).not.toContain('Warning: other work was running');
    expect(renderResultsMd({ ...report, machine: { ...report.machine, cpuIdle: 0.4 } })).toContain('Warning: other work was running');
  });
});

/** Check that tags nest: every opened element is closed in order. */
function tagsBalance(svg: string): boolean {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    const [, close, name, selfClose] = m;
    if (selfClose) continue;
    if (close) {
      if (stack.pop() !== name) return false;
    } else stack.push(name);
  }
  return stack.length === 0;
}

describe('SVG chart', () => {
  const svg = renderSvg(report);

  it('is a well-formed standalone SVG document', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(tagsBalance(svg)).toBe(true);
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
    expect(svg).toContain('encode &lt;fast&gt; &amp; &quot;x&quot;');
  });

  it('draws one bar per measured rate or ratio, one budget line per budgeted case, and lists sizes as text', () => {
    expect(svg).toContain('codec · rss</text>');
    expect(svg).toContain('>12.5 MB</text>');
    const bars = [...svg.matchAll(/class="bar (\w+)"[^>]*fill="(#[0-9a-f]{6})"/g)].map((m) => [m[1], m[2]]);
    expect(bars).toEqual([
      ['pass', '#2e7d32'],
      ['miss', '#c62828'],
      ['info', '#9e9e9e'],
      ['pass', '#2e7d32'],
    ]);
    expect(svg.match(/class="budget"/g)).toHaveLength(3);
  });

  it('draws every bar against its own budget, so all budget lines line up', () => {
    const widths = [...svg.matchAll(/class="bar \w+" x="(\d+)" y="\d+" width="([\d.]+)"/g)].map((m) => Number(m[2]));
    const lines = [...svg.matchAll(/class="budget" x1="([\d.]+)"/g)].map((m) => Number(m[1]));
    const x0 = Number(/class="bar \w+" x="(\d+)"/.exec(svg)![1]);
    expect(new Set(lines).size).toBe(1);
    const third = lines[0] - x0; // the budget line sits at 1/3 of the bar area
    // decode 1.7 GB/s against >= 1: 1.7 budget-widths; encode 0.8; usr 1.2 against <= 1.25.
    expect(widths[0]).toBeCloseTo(1.7 * third, 0);
    expect(widths[1]).toBeCloseTo(0.8 * third, 0);
    expect(widths[3]).toBeCloseTo((1.2 / 1.25) * third, 0);
  });

  it('marks a bar that runs off its scale, and draws informational ratios against 1x', () => {
    const big = renderSvg({
      ...report,
      suites: [
        {
          suite: 'x',
          title: 'x',
          status: 'ok',
          seconds: 1,
          cases: [
            evaluate({ name: 'far off', value: 12, unit: 'ratio', budget: { op: '<=', value: 1, source: 's' } }),
            evaluate({ name: 'info ratio', value: 0.5, unit: 'ratio' }),
          ],
        },
      ],
    });
    expect(big.match(/class="over"/g)).toHaveLength(1);
    expect(big.match(/class="parity"/g)).toHaveLength(1);
    expect(tagsBalance(big)).toBe(true);
  });

  it('lists what was not measured', () => {
    expect(svg).toContain('ssh — skipped: not implemented yet (needs ferry send/receive)');
    expect(svg).toContain('scale — CRASHED: Error: boom');
  });
});
