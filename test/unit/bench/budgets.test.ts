import { BUDGETS, budgetRows, renderBudgetLines } from '../../../bench/lib/budgets';
import { SuiteOutcome, evaluate } from '../../../bench/lib/report';

const LE = (value: number) => ({ op: '<=' as const, value, source: 's' });

describe('budgetRows', () => {
  const suites: SuiteOutcome[] = [
    {
      suite: 'full',
      title: 'full',
      status: 'ok',
      seconds: 1,
      cases: [
        evaluate({ name: 'index', value: 1.1, unit: 'ratio', budget: LE(1.25), budgetId: 'full-send' }),
        evaluate({ name: 'reflink', value: 1.4, unit: 'ratio', budget: LE(1.25), budgetId: 'full-send' }),
        evaluate({ name: 'receive', value: 1.2, unit: 'ratio', budget: LE(1.25), budgetId: 'full-receive', invalid: 'received tree differs' }),
      ],
    },
    {
      suite: 'incremental',
      title: 'incremental',
      status: 'ok',
      seconds: 1,
      cases: [
        evaluate({ name: '1 behind', value: 0.2, unit: 'ratio', budget: LE(1 / 3), budgetId: 'incremental-time' }),
        evaluate({ name: 'bytes', value: NaN, unit: 'ratio', budget: LE(1.1), budgetId: 'incremental-bytes', unavailable: 'no kernel stream' }),
      ],
    },
    { suite: 'image', title: 'image', status: 'skipped', kind: 'environment', reason: 'needs root' },
    { suite: 'scale', title: 'scale', status: 'crashed', seconds: 1, error: 'Error: boom\n  at x' },
  ];
  const rows = budgetRows({ suites, requested: ['full', 'incremental', 'image', 'scale'] });
  const row = (id: string) => rows.find((r) => r.id === id)!;

  it('lists every budget exactly once', () => {
    expect(rows.map((r) => r.id)).toEqual(BUDGETS.map((b) => b.id));
    expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);
  });

  it('misses a budget when any case claiming it misses, and shows every value', () => {
    expect(row('full-send')).toMatchObject({ verdict: 'miss', measured: '1.10× (index); 1.40× (reflink)' });
    expect(row('full-receive').verdict).toBe('miss');
    expect(row('full-receive').measured).toContain('INVALID (received tree differs)');
    expect(row('incremental-time')).toMatchObject({ verdict: 'pass', measured: '0.20× (1 behind)' });
  });

  it('says why a budget was not measured', () => {
    expect(row('incremental-bytes')).toMatchObject({ verdict: 'not measured', measured: 'not measured: no kernel stream' });
    expect(row('image-bytes').measured).toBe('not measured: image skipped: needs root');
    expect(row('scale-rss').measured).toBe('not measured: scale crashed: Error: boom');
    expect(row('ssh-throughput').measured).toBe('not measured: suite ssh was not run');
    expect(row('incremental-receive').measured).toBe('not measured: incremental reported no case for it');
    expect(row('resume-overhead').measured).toMatch(/^not measured: /);
  });

  it('renders one terminal line per budget', () => {
    const text = renderBudgetLines(rows);
    expect(text.trimEnd().split('\n')).toHaveLength(BUDGETS.length);
    expect(text).toContain('miss          full-send: 1.10× (index); 1.40× (reflink)');
  });
});
