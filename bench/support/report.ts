import type { RunSummary } from './stats.js';

/** A results table, rendered as Markdown. */
export interface Table {
  readonly title: string;
  readonly head: readonly string[];
  readonly rows: ReadonlyArray<readonly string[]>;
}

/** One target of the issue, checked against what was measured in this run. */
export interface TargetCheck {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean;
}

/** What a scenario hands back: tables and method for people, `data` for the smoke test. */
export interface ScenarioResult<D = unknown> {
  readonly scenario: string;
  readonly title: string;
  readonly method: readonly string[];
  readonly tables: readonly Table[];
  readonly targets: readonly TargetCheck[];
  readonly notes: readonly string[];
  readonly data: D;
}

export type BenchScale = 'tiny' | 'full';

export interface BenchContext {
  /** URL of the server; every run creates its own database on it. */
  readonly serverUrl: string;
  readonly scale: BenchScale;
  /** Runs per measurement; medians and spreads are over these. */
  readonly runs: number;
  readonly log: (message: string) => void;
}

export interface Scenario<D = unknown> {
  /** The name used on the command line: `node dist/bench/run-all.js <name>`. */
  readonly name: string;
  readonly title: string;
  run(context: BenchContext): Promise<ScenarioResult<D>>;
}

export function renderTable(table: Table): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [
    `**${table.title}**`,
    '',
    line(table.head),
    line(table.head.map(() => '---')),
    ...table.rows.map(line),
  ].join('\n');
}

export function renderResult(result: ScenarioResult): string {
  const parts = [
    `## ${result.title}`,
    '',
    '**Method.**',
    '',
    ...result.method.map((m) => `- ${m}`),
  ];
  for (const table of result.tables) parts.push('', renderTable(table));
  if (result.targets.length > 0) {
    parts.push(
      '',
      renderTable({
        title: 'Targets',
        head: ['Target', 'Measured', 'Result'],
        rows: result.targets.map((t) => [t.target, t.measured, t.met ? 'met' : 'missed']),
      }),
    );
  }
  if (result.notes.length > 0) parts.push('', ...result.notes.map((n) => `- ${n}`));
  return parts.join('\n');
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** 12345.6 → "12,346". */
export function formatCount(value: number): string {
  return Number.isFinite(value) ? integer.format(value) : 'n/a';
}

/** Milliseconds with two decimals below 10 ms, one below 100 ms, none above. */
export function formatMs(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (value < 10) return value.toFixed(2);
  if (value < 100) return value.toFixed(1);
  return integer.format(value);
}

/** "4,512 (4,380–4,601, ±5%)": median, range of the runs, and spread relative to the median. */
export function formatRuns(summary: RunSummary, format: (value: number) => string): string {
  if (summary.runs.length === 1) return format(summary.median);
  const spread = Math.round((summary.spread * 100) / 2);
  return `${format(summary.median)} (${format(summary.min)}–${format(summary.max)}, ±${spread}%)`;
}

export function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : 'n/a';
}
