import { CommandError, bash, commandErrorOf, q, run, shellJoin } from '../../../bench/lib/exec';

describe('exec', () => {
  it('quotes words for bash so they come back unchanged', async () => {
    const words = ['plain', 'two words', "it's", '$HOME', 'a;b', '*', ''];
    expect(q('a/b-c.d')).toBe('a/b-c.d');
    const r = await bash(`printf '%s\\n' ${shellJoin(words)}`);
    expect(r.stdout).toBe(words.map((w) => `${w}\n`).join(''));
  });

  it('captures stdout and turns a failure into a CommandError naming the tool', async () => {
    expect((await run(['sh', '-c', 'echo out; echo err >&2'])).stdout).toBe('out\n');
    const e = await run(['sh', '-c', 'echo nope >&2; exit 3'], { tool: 'ferry' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CommandError);
    expect((e as CommandError).summary).toBe('ferry failed (exit 3): nope');
    expect(commandErrorOf(new Error('wrapped', { cause: e }))).toBe(e);
    expect((await run(['sh', '-c', 'exit 3'], { okCodes: [0, 3] })).code).toBe(3);
  });

  it('fails a pipeline when any part of it fails (pipefail)', async () => {
    await expect(bash('false | cat')).rejects.toBeInstanceOf(CommandError);
  });
});
