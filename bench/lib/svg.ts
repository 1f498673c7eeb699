/**
 * The results chart (bench/report.svg), written by hand: one horizontal bar
 * per measured case. A case with a budget is drawn against that budget, so
 * every budget line sits at the same place and a reader sees at a glance
 * how far each result is from its promise, whatever the unit: the bar's
 * length is value / budget, and it reaches the right end at 3× the budget
 * (an arrow marks a bar that goes further). An informational ratio is drawn
 * the same way against 1× (ferry = peer, a dashed line); informational
 * rates share a scale per unit; informational sizes and times are listed as
 * text. Bars are green when the budget is met, red when missed, grey when
 * informational.
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

const W = 1200;
const LABEL_W = 470;
const LABEL_CHARS = 75;
const BAR_X = LABEL_W + 10;
const BAR_W = 390;
const VALUE_X = BAR_X + BAR_W + 12;
const ROW_H = 30;
const BAR_H = 16;
const TOP = 80;
/** A budgeted bar reaches the right end at this multiple of its budget; the budget line sits at 1/REACH. */
const REACH = 3;
const LINE_X = BAR_X + BAR_W / REACH;

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
  /**
   * budget: drawn relative to its budget (line at 1/REACH of the width);
   * ratio: an informational ratio, relative to 1× (ferry = peer);
   * unit: an informational rate on the shared scale of its unit; text: no bar.
   */
  scale: 'budget' | 'ratio' | 'unit' | 'text';
}

function clipLabel(s: string): string {
  return s.length > LABEL_CHARS ? `${s.slice(0, LABEL_CHARS - 1)}…` : s;
}

function barsOf(suites: SuiteOutcome[]): Bar[] {
  const bars: Bar[] = [];
  for (const s of suites) {
    if (s.status !== 'ok') continue;
    for (const c of s.cases) {
      if (c.verdict === 'unavailable' || !Number.isFinite(c.value)) continue;
      const budget = c.budget ? `  (budget ${formatBudget(c)})` : '';
      const scale: Bar['scale'] = c.budget && c.budget.value > 0 ? 'budget' : c.unit === 'ratio' ? 'ratio' : c.unit === 'GB/s' ? 'unit' : 'text';
      bars.push({
        label: clipLabel(`${s.suite} · ${c.name}`),
        value: c.value,
        unit: c.unit,
        budget: c.budget?.value,
        verdict: c.verdict,
        text: `${formatValue(c.value, c.unit)} ${c.verdict === 'info' ? '' : c.verdict}${budget}`.replace(/ +/g, ' ').trim(),
        scale,
      });
    }
  }
  return bars;
}

/** Axis maximum per unit for informational rates: the largest value, plus headroom. */
function scales(bars: Bar[]): Map<Unit, number> {
  const max = new Map<Unit, number>();
  for (const b of bars) if (b.scale === 'unit') max.set(b.unit, Math.max(max.get(b.unit) ?? 0, b.value));
  for (const [u, m] of max) max.set(u, m > 0 ? m * 1.1 : 1);
  return max;
}

/** Width of a bar in pixels, and whether it ran off the scale. */
function barWidth(b: Bar, unitMax: Map<Unit, number>): { w: number; over: boolean } {
  const rel = b.scale === 'budget' ? b.value / b.budget! / REACH : b.scale === 'ratio' ? b.value / REACH : b.value / unitMax.get(b.unit)!;
  return { w: Math.max(1, Math.min(1, Math.max(0, rel)) * BAR_W), over: rel > 1 };
}

function fmt(n: number): string {
  return (Math.round(n * 10) / 10).toString();
}

export function renderSvg(report: Pick<Report, 'suites' | 'finishedAt' | 'mode'>): string {
  const bars = barsOf(report.suites);
  const skipped = report.suites.filter((s) => s.status !== 'ok');
  const unitMax = scales(bars);
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
    `<text x="12" y="42" fill="#555">Each bar is drawn against its own budget: the black line is the budget, and the bar reaches the right end at ${REACH}× it (an arrow: further).</text>`,
  );
  out.push(
    `<text x="12" y="58" fill="#555">Ratios without a budget: the dashed line is 1× (ferry = peer). ` +
      `<tspan fill="${COLORS.pass}">green pass</tspan>, <tspan fill="${COLORS.miss}">red miss</tspan>, <tspan fill="${COLORS.info}">grey info</tspan>.</text>`,
  );
  bars.forEach((b, i) => {
    const y = TOP + i * ROW_H;
    out.push(`<g class="row">`);
    out.push(`<text x="${LABEL_W}" y="${fmt(y + 13)}" text-anchor="end">${escapeXml(b.label)}</text>`);
    if (b.scale === 'text') {
      out.push(`<text x="${BAR_X}" y="${fmt(y + 13)}" fill="#555">${escapeXml(b.text)}</text>`);
      out.push(`</g>`);
      return;
    }
    const { w, over } = barWidth(b, unitMax);
    out.push(`<rect x="${BAR_X}" y="${y}" width="${BAR_W}" height="${BAR_H}" fill="#f2f2f2"/>`);
    out.push(`<rect class="bar ${b.verdict}" x="${BAR_X}" y="${y}" width="${fmt(w)}" height="${BAR_H}" fill="${COLORS[b.verdict]}"/>`);
    if (over) {
      const x = BAR_X + BAR_W;
      out.push(`<polygon class="over" points="${x},${y - 2} ${x + 8},${y + BAR_H / 2} ${x},${y + BAR_H + 2}" fill="${COLORS[b.verdict]}"/>`);
    }
    if (b.scale === 'budget') {
      out.push(`<line class="budget" x1="${fmt(LINE_X)}" y1="${y - 4}" x2="${fmt(LINE_X)}" y2="${y + BAR_H + 4}" stroke="#000" stroke-width="2"/>`);
    } else if (b.scale === 'ratio') {
      out.push(`<line class="parity" x1="${fmt(LINE_X)}" y1="${y - 2}" x2="${fmt(LINE_X)}" y2="${y + BAR_H + 2}" stroke="#555" stroke-width="1" stroke-dasharray="3,2"/>`);
    }
    out.push(`<text x="${VALUE_X + (over ? 10 : 0)}" y="${fmt(y + 13)}">${escapeXml(b.text)}</text>`);
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
