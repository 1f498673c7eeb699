/**
 * The results chart (bench/report.svg), written by hand: one horizontal bar
 * per measured ratio or rate, and for cases with a budget a vertical budget
 * line across that row (informational sizes and times without a budget are
 * listed as text, since a lone bar on its own scale says nothing). Bars are green when the budget is met, red when missed,
 * grey when informational. Rows sharing a unit share a scale, so every
 * GB/s bar is comparable with every other, and every ratio with every ratio.
 *
 * Pure: takes the report, returns SVG text. No charting dependency.
 */
import { Report, SuiteOutcome, Verdict, formatBudget, formatValue } from './report';
import { Unit } from './suite';

const COLORS: Record<Verdict, string> = {
  pass: '#2e7d32',
  miss: '#c62828',
  info: '#9e9e9e',
  unavailable: '#9e9e9e',
};

const W = 1000;
const LABEL_W = 300;
const BAR_X = LABEL_W + 10;
const BAR_W = 400;
const VALUE_X = BAR_X + BAR_W + 12;
const ROW_H = 30;
const BAR_H = 16;
const TOP = 64;

export function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

interface Bar {
  label: string;
  value: number;
  unit: Unit;
  budget?: number;
  verdict: Verdict;
  text: string;
  /** False for a value listed as text only. */
  drawn: boolean;
}

function barsOf(suites: SuiteOutcome[]): Bar[] {
  const bars: Bar[] = [];
  for (const s of suites) {
    if (s.status !== 'ok') continue;
    for (const c of s.cases) {
      if (c.verdict === 'unavailable' || !Number.isFinite(c.value)) continue;
      const budget = c.budget ? `  (budget ${formatBudget(c)})` : '';
      bars.push({
        label: `${s.suite} · ${c.name}`,
        value: c.value,
        unit: c.unit,
        budget: c.budget?.value,
        verdict: c.verdict,
        text: `${formatValue(c.value, c.unit)} ${c.verdict === 'info' ? '' : c.verdict}${budget}`.replace(/ +/g, ' ').trim(),
        drawn: c.budget !== undefined || c.unit === 'ratio' || c.unit === 'GB/s',
      });
    }
  }
  return bars;
}

/** Axis maximum per unit: the largest value or budget of that unit, plus headroom. */
function scales(bars: Bar[]): Map<Unit, number> {
  const max = new Map<Unit, number>();
  for (const b of bars) {
    if (!b.drawn) continue;
    const m = Math.max(b.value, b.budget ?? 0);
    max.set(b.unit, Math.max(max.get(b.unit) ?? 0, m));
  }
  for (const [u, m] of max) max.set(u, m > 0 ? m * 1.1 : 1);
  return max;
}

function fmt(n: number): string {
  return (Math.round(n * 10) / 10).toString();
}

export function renderSvg(report: Pick<Report, 'suites' | 'finishedAt' | 'mode'>): string {
  const bars = barsOf(report.suites);
  const skipped = report.suites.filter((s) => s.status !== 'ok');
  const scale = scales(bars);
  const height = TOP + bars.length * ROW_H + (skipped.length ? 24 + skipped.length * 18 : 0) + 40;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<title>ferry benchmark results</title>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="12" y="22" font-size="16" font-weight="bold">ferry benchmark — ${escapeXml(report.finishedAt)}${report.mode === 'smoke' ? ' (smoke)' : ''}</text>`,
  );
  out.push(
    `<text x="12" y="42" fill="#555">bar: measured value (rows of one unit share a scale); black line: budget; ` +
      `<tspan fill="${COLORS.pass}">green pass</tspan>, <tspan fill="${COLORS.miss}">red miss</tspan>, <tspan fill="${COLORS.info}">grey info</tspan></text>`,
  );
  bars.forEach((b, i) => {
    const y = TOP + i * ROW_H;
    out.push(`<g class="row">`);
    out.push(`<text x="${LABEL_W}" y="${fmt(y + 13)}" text-anchor="end">${escapeXml(b.label)}</text>`);
    if (!b.drawn) {
      out.push(`<text x="${BAR_X}" y="${fmt(y + 13)}" fill="#555">${escapeXml(b.text)}</text>`);
      out.push(`</g>`);
      return;
    }
    const max = scale.get(b.unit)!;
    const w = Math.max(1, (Math.max(0, b.value) / max) * BAR_W);
    out.push(`<rect x="${BAR_X}" y="${y}" width="${BAR_W}" height="${BAR_H}" fill="#f2f2f2"/>`);
    out.push(`<rect class="bar ${b.verdict}" x="${BAR_X}" y="${y}" width="${fmt(w)}" height="${BAR_H}" fill="${COLORS[b.verdict]}"/>`);
    if (b.budget !== undefined) {
      const bx = BAR_X + (b.budget / max) * BAR_W;
      out.push(`<line class="budget" x1="${fmt(bx)}" y1="${y - 4}" x2="${fmt(bx)}" y2="${y + BAR_H + 4}" stroke="#000" stroke-width="2"/>`);
    }
    out.push(`<text x="${VALUE_X}" y="${fmt(y + 13)}">${escapeXml(b.text)}</text>`);
    out.push(`</g>`);
  });
  if (skipped.length) {
    let y = TOP + bars.length * ROW_H + 20;
    out.push(`<text x="12" y="${y}" font-weight="bold">not measured</text>`);
    for (const s of skipped) {
      y += 18;
      const why = s.status === 'skipped' ? `skipped: ${s.reason}` : `CRASHED: ${s.error.split('\n')[0]}`;
      out.push(`<text x="24" y="${y}" fill="${s.status === 'crashed' ? COLORS.miss : '#555'}">${escapeXml(`${s.suite} — ${why}`)}</text>`);
    }
  }
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}
