/**
 * Units in ferry.yaml: durations (`keep_min: 1d`, hook `timeout: 5m`) and
 * rates (`bwlimit: 50M`).
 *
 * Owns: the grammar of those values. Pure: no I/O, no clock. Never throws;
 * a value it cannot read comes back as `{ error }` so the loader can report
 * every problem at once.
 *
 * Durations: one or more `<number><unit>` parts, e.g. `1d`, `12h`, `2w`,
 * `1d12h`, `90s`, `30min`. Units: s, min, h, d (24 h), w (7 d), mo (30 d),
 * y (365 d). A bare `m` is refused as ambiguous (btrbk reads it as months,
 * most people as minutes).
 * Rates: bytes per second with an optional binary suffix K, M, G, T
 * (powers of 1024, as pv and btrbk's rate_limit), an optional `B`/`iB`, and
 * an optional `/s`: `50M`, `1.5G`, `800KiB/s`, `1048576`.
 */

export const UNIT_MS: Record<string, number> = {
  s: 1000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  mo: 30 * 86_400_000,
  y: 365 * 86_400_000,
};

export type Parsed<T> = { value: T } | { error: string };

/** Parse a duration like `1d12h` into milliseconds. */
export function parseDuration(text: string): Parsed<number> {
  const s = text.trim().toLowerCase();
  if (s === '') return { error: 'is empty; expected a duration like 1d, 12h or 2w' };
  const part = /(\d+(?:\.\d+)?)\s*([a-z]+)/gy;
  let ms = 0;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = part.exec(s)) !== null) {
    const unit = m[2];
    if (unit === 'm') return { error: `"${text}" is ambiguous: write min for minutes or mo for months` };
    const f = UNIT_MS[unit];
    if (f === undefined) return { error: `"${text}" has an unknown unit "${unit}"; use s, min, h, d, w, mo or y` };
    ms += Number(m[1]) * f;
    pos = part.lastIndex;
    while (s[pos] === ' ') pos++;
    part.lastIndex = pos;
  }
  if (pos !== s.length) return { error: `"${text}" is not a duration; expected something like 1d, 12h, 2w or 1d12h` };
  if (!Number.isFinite(ms) || ms <= 0) return { error: `"${text}" must be longer than zero` };
  return { value: Math.round(ms) };
}

/** Milliseconds as the shortest exact duration text (`1d`, `36h`, `90s`). */
export function formatDuration(ms: number): string {
  for (const u of ['y', 'w', 'd', 'h', 'min', 's']) {
    const f = UNIT_MS[u];
    if (ms >= f && ms % f === 0) return `${ms / f}${u}`;
  }
  return `${ms}ms`;
}

const RATE_SUFFIX: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Parse a rate like `50M` into bytes per second (a whole number, at least 1). */
export function parseRate(text: string | number): Parsed<number> {
  if (typeof text === 'number') {
    if (!Number.isFinite(text) || text < 1) return { error: `must be at least 1 byte per second, got ${text}` };
    return { value: Math.floor(text) };
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?(?:\/s)?\s*$/i.exec(text);
  if (!m) return { error: `"${text}" is not a rate; expected bytes per second like 50M, 1.5G or 800K` };
  const v = Math.floor(Number(m[1]) * RATE_SUFFIX[m[2].toLowerCase()]);
  if (v < 1) return { error: `"${text}" must be at least 1 byte per second` };
  return { value: v };
}
