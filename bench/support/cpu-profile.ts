import { Session } from 'node:inspector/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time of this process's JavaScript, grouped by where the code lives. */
export interface CpuBreakdown {
  readonly totalMs: number;
  readonly byArea: ReadonlyArray<{ area: string; ms: number; share: number }>;
  readonly topFunctions: ReadonlyArray<{ fn: string; area: string; ms: number; share: number }>;
}

/** Which part of the stack a script URL belongs to. */
function areaOf(url: string): string {
  if (url === '') return 'native (socket writes, timers)';
  if (url.startsWith('node:')) return 'node: internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  if (url.includes('/lib/')) return 'nestjs-pg-transport lib/';
  if (url.includes('/bench/')) return 'bench harness';
  return url;
}

/** Samples this process's CPU while `fn` runs, with the V8 sampling profiler. */
export async function profileCpu<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; breakdown: CpuBreakdown }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  let profile: Profile;
  let result: T;
  try {
    result = await fn();
  } finally {
    ({ profile } = (await session.post('Profiler.stop')) as unknown as { profile: Profile });
    session.disconnect();
  }
  return { result, breakdown: summarize(profile) };
}

function summarize(profile: Profile): CpuBreakdown {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) =>
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)),
  );
  const areas = new Map<string, number>();
  const functions = new Map<string, { area: string; us: number }>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const { functionName, url } = node.callFrame;
    if (functionName === '(idle)' || functionName === '(program)') continue;
    total += us;
    const area = functionName === '(garbage collector)' ? '(garbage collector)' : areaOf(url);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const key = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}`;
    const entry = functions.get(key) ?? { area, us: 0 };
    entry.us += us;
    functions.set(key, entry);
  }
  const share = (us: number) => (total > 0 ? us / total : 0);
  return {
    totalMs: total / 1000,
    byArea: [...areas]
      .map(([area, us]) => ({ area, ms: us / 1000, share: share(us) }))
      .sort((a, b) => b.ms - a.ms),
    topFunctions: [...functions]
      .map(([fn, { area, us }]) => ({ fn, area, ms: us / 1000, share: share(us) }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 15),
  };
}
