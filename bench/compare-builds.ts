// Measures this build of the library against another, side by side in one process, alternating
// which goes first from round to round. The other is a checkout of an earlier commit, built:
//   git worktree add /tmp/before <commit>
//   ln -s "$PWD/node_modules" /tmp/before/node_modules
//   (cd /tmp/before && npx tsc -p tsconfig.build.json)
//   npm run build && node dist/bench/compare-builds.js /tmp/before [publish] [drain] [isolated-drain]
// BENCH_ROUNDS (default 4), BENCH_SECONDS per publish workload (default 4), BENCH_ROWS per
// drained backlog (default 10,000), DATABASE_URL (default: a throwaway PostgreSQL). Progress goes
// to stderr, the table to stdout.
import { quietNestLogs } from './support/bench-logger.js';
import { compareBuilds, renderComparison, WORKLOADS, type Workload } from './support/compare.js';
import { acquireServer } from './support/database.js';

const [otherRoot, ...names] = process.argv.slice(2);
if (!otherRoot) {
  console.error('Give the root of the other, built checkout: compare-builds.js <root> [workload…]');
  process.exit(2);
}
const unknown = names.filter((name) => !WORKLOADS.includes(name as Workload));
if (unknown.length > 0) {
  console.error(`Unknown workload ${unknown.join(', ')}; choose from ${WORKLOADS.join(', ')}`);
  process.exit(2);
}
const positive = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback);
  if (!(value > 0)) {
    console.error(`${name} must be a positive number`);
    process.exit(2);
  }
  return value;
};

quietNestLogs();
const server = await acquireServer();
try {
  const compared = await compareBuilds({
    serverUrl: server.url,
    otherRoot,
    workloads: names.length > 0 ? (names as Workload[]) : WORKLOADS,
    rounds: Math.round(positive('BENCH_ROUNDS', 4)),
    seconds: positive('BENCH_SECONDS', 4),
    rows: Math.round(positive('BENCH_ROWS', 10_000)),
    log: (message) => console.error(message),
  });
  console.log(`Node.js ${process.version}\n`);
  console.log(renderComparison(compared, otherRoot));
} finally {
  await server.release();
}
process.exit(0);
