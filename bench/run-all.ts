// Runs the benchmark scenarios and prints their method and results as Markdown.
//   node dist/bench/run-all.js                 every scenario
//   node dist/bench/run-all.js latency scale   only these
// BENCH_SCALE=tiny|full (default full), BENCH_RUNS (default 3), DATABASE_URL (default: a
// throwaway PostgreSQL). Progress goes to stderr, results to stdout.
import { loadavg } from 'node:os';
import { atomicPublishScenario } from './scenarios/atomic-publish.js';
import { backlogDrainScenario } from './scenarios/backlog-drain.js';
import { endToEndScenario } from './scenarios/end-to-end.js';
import { fanOutScenario } from './scenarios/fan-out.js';
import { latencyScenario } from './scenarios/latency.js';
import { scaleScenario } from './scenarios/scale.js';
import { quietNestLogs } from './support/bench-logger.js';
import { acquireServer } from './support/database.js';
import { describeEnvironment } from './support/environment.js';
import { renderResult, type BenchScale, type Scenario } from './support/report.js';

export const SCENARIOS: Scenario[] = [
  endToEndScenario,
  backlogDrainScenario,
  latencyScenario,
  atomicPublishScenario,
  fanOutScenario,
  scaleScenario,
];

const names = process.argv.slice(2);
const unknown = names.filter((name) => !SCENARIOS.some((s) => s.name === name));
if (unknown.length > 0) {
  console.error(
    `Unknown scenario ${unknown.join(', ')}; choose from ${SCENARIOS.map((s) => s.name).join(', ')}`,
  );
  process.exit(2);
}
const scale = process.env.BENCH_SCALE ?? 'full';
if (scale !== 'tiny' && scale !== 'full') {
  console.error('BENCH_SCALE must be tiny or full');
  process.exit(2);
}
const runs = Number(process.env.BENCH_RUNS ?? 3);
if (!Number.isInteger(runs) || runs < 1) {
  console.error('BENCH_RUNS must be a positive integer');
  process.exit(2);
}

quietNestLogs();
const server = await acquireServer();
try {
  console.log(`# Benchmark results (${scale} scale, ${runs} run${runs > 1 ? 's' : ''})\n`);
  console.log(await describeEnvironment(server.url, server.throwaway));
  for (const scenario of SCENARIOS.filter((s) => names.length === 0 || names.includes(s.name))) {
    const started = Date.now();
    const result = await scenario.run({
      serverUrl: server.url,
      scale: scale as BenchScale,
      runs,
      log: (message) => console.error(message),
    });
    const load = loadavg()
      .map((l) => l.toFixed(2))
      .join(', ');
    console.log(`\n${renderResult(result)}`);
    console.log(
      `\n_Took ${Math.round((Date.now() - started) / 1000)} s; load average after: ${load}._`,
    );
  }
} finally {
  await server.release();
}
