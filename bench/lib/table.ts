/**
 * Text and markdown renderings of the results table (report rows).
 *
 * Pure. The column set is fixed: suite, case, ferry median, peer median,
 * the compared value (ferry/peer ratio or throughput), budget, result.
 */
import { Row } from './report';

const HEADERS: Row = {
  suite: 'suite',
  case: 'case',
  ferry: 'ferry median',
  peer: 'peer median',
  value: 'ferry/peer or rate',
  budget: 'budget',
  result: 'result',
};
const COLUMNS: (keyof Row)[] = ['suite', 'case', 'ferry', 'peer', 'value', 'budget', 'result'];
/** Right-aligned in the text table. */
const NUMERIC = new Set<keyof Row>(['ferry', 'peer', 'value']);

/** Display width: every character the table uses is one cell wide. */
function width(s: string): number {
  return [...s].length;
}

function pad(s: string, w: number, right: boolean): string {
  const fill = ' '.repeat(Math.max(0, w - width(s)));
  return right ? fill + s : s + fill;
}

/** A fixed-width table for the terminal. */
export function renderTextTable(rows: Row[]): string {
  const widths = COLUMNS.map((k) => Math.max(width(HEADERS[k]), ...rows.map((r) => width(r[k]))));
  const line = (r: Row) =>
    COLUMNS.map((k, i) => pad(r[k], widths[i], NUMERIC.has(k)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(HEADERS), rule, ...rows.map(line)].join('\n') + '\n';
}

function mdCell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** A GitHub-flavoured markdown table. */
export function renderMarkdownTable(rows: Row[]): string {
  const head = `| ${COLUMNS.map((k) => HEADERS[k]).join(' | ')} |`;
  const align = `| ${COLUMNS.map((k) => (NUMERIC.has(k) ? '---:' : '---')).join(' | ')} |`;
  const body = rows.map((r) => `| ${COLUMNS.map((k) => mdCell(r[k])).join(' | ')} |`);
  return [head, align, ...body].join('\n') + '\n';
}
