import { alternate } from '../../../bench/lib/timing';

class ToolFailed extends Error {}

describe('alternate', () => {
  it('runs the sides in the same order every rep, hooks untimed, and records steps', async () => {
    const order: string[] = [];
    const r = await alternate({
      reps: 2,
      beforeRep: (rep) => void order.push(`rep${rep}`),
      sides: [
        {
          name: 'a',
          before: () => void order.push('a<'),
          run: async (clock) => {
            order.push('a');
            await clock.step('one', () => new Promise((res) => setTimeout(res, 15)));
            await clock.step('two', () => undefined);
          },
          after: (clock) => {
            order.push('a>');
            clock.record('flush', 0.5);
          },
        },
        { name: 'b', run: () => void order.push('b') },
      ],
    });
    expect(order.join(' ')).toBe('rep0 a< a a> b rep1 a< a a> b');
    expect(r.a.samples).toHaveLength(2);
    expect(r.a.steps.one.median).toBeGreaterThanOrEqual(0.01);
    expect(r.a.median).toBeGreaterThanOrEqual(r.a.steps.one.median);
    expect(r.a.steps.flush.samples).toEqual([0.5, 0.5]);
    expect(r.a.median).toBeLessThan(0.5); // after() is not in the total
    expect(r.b.error).toBeUndefined();
  });

  it('drops a side that fails with a tool failure and keeps the others going', async () => {
    let runsOfB = 0;
    const failures: string[] = [];
    const r = await alternate({
      reps: 3,
      sideFailure: (e) => e instanceof ToolFailed,
      onFailure: (side, rep) => failures.push(`${side}@${rep}`),
      sides: [
        {
          name: 'a',
          run: (_c, rep) => {
            if (rep === 1) throw new ToolFailed('ferry failed');
          },
        },
        { name: 'b', run: () => void runsOfB++ },
      ],
    });
    expect(failures).toEqual(['a@1']);
    expect(r.a.samples).toHaveLength(1);
    expect(r.a.error).toBeInstanceOf(ToolFailed);
    expect(runsOfB).toBe(3);
  });

  it('rethrows anything else, and refuses bad reps and duplicate names', async () => {
    await expect(alternate({ reps: 1, sides: [{ name: 'a', run: () => { throw new Error('bug'); } }] })).rejects.toThrow('bug');
    await expect(alternate({ reps: 0, sides: [] })).rejects.toThrow(RangeError);
    await expect(alternate({ reps: 1, sides: [{ name: 'a', run: () => undefined }, { name: 'a', run: () => undefined }] })).rejects.toThrow(/duplicate/);
  });
});
