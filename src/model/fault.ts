/**
 * Fault injection for crash tests: `FERRY_FAULT=<point>` makes the process
 * SIGKILL itself when it reaches that named point, exactly as `kill -9` would.
 * Several points may be given, comma-separated. Inert when the variable is
 * unset, which is always the case outside tests.
 */
const armed = new Set((process.env.FERRY_FAULT ?? '').split(',').filter(Boolean));

export function faultPoint(name: string): void {
  if (armed.size && armed.has(name)) process.kill(process.pid, 'SIGKILL');
}
