import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ChildConfig {
  readonly contender: string;
  readonly url: string;
  /** Report the time of the first message handled, then every time this many more are. */
  readonly checkpointEvery?: number;
  readonly rssIntervalMs?: number;
  /**
   * Handled counts at which the child runs a full garbage collection and reports the heap still
   * in use: the memory it retains, free of the garbage that RSS also holds.
   */
  readonly liveHeapAt?: readonly number[];
}

export type ChildReport =
  | { type: 'ready'; pid: number }
  | { type: 'samples'; samples: Array<[number, number]> }
  | { type: 'progress'; handled: number }
  | { type: 'checkpoint'; handled: number; at: number }
  | { type: 'rss'; rss: number; at: number }
  | { type: 'heap'; handled: number; liveHeap: number }
  | { type: 'stopped'; handled: number };

/**
 * The compiled child script. From dist/ it sits next to this module; when this module runs from
 * TypeScript sources (the smoke test), the build in dist/ is used, so run `npm run build` first.
 */
function childScript(): string {
  const here = fileURLToPath(import.meta.url);
  const script = here.endsWith('.ts')
    ? join(dirname(here), '..', '..', 'dist', 'bench', 'support', 'consumer-process.js')
    : join(dirname(here), 'consumer-process.js');
  if (!existsSync(script)) {
    throw new Error(`${script} is missing: run \`npm run build\` before the benchmarks`);
  }
  return script;
}

/** A contender's consumer running in a forked process, reporting what it handles. */
export class ChildConsumer {
  /** [message number, milliseconds from send to handler start]. */
  readonly samples: Array<[number, number]> = [];
  readonly checkpoints: Array<{ handled: number; at: number }> = [];
  readonly rss: Array<{ rss: number; at: number }> = [];
  /** Heap in use right after a full garbage collection, at the handled counts asked for. */
  readonly liveHeap: Array<{ handled: number; liveHeap: number }> = [];
  handled = 0;
  private readonly exited: Promise<void>;
  private waiters: Array<() => void> = [];

  private constructor(private readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.on('message', (report: ChildReport) => this.receive(report));
  }

  static async start(config: ChildConfig): Promise<ChildConsumer> {
    const child = fork(childScript(), [], {
      // Only a child that measures its live heap may call gc(); the others run as users' do.
      execArgv: config.liveHeapAt?.length ? [...process.execArgv, '--expose-gc'] : undefined,
      env: { ...process.env, BENCH_CHILD: JSON.stringify(config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const consumer = new ChildConsumer(child);
    await new Promise<void>((resolve, reject) => {
      child.once('message', (report: ChildReport) =>
        report.type === 'ready' ? resolve() : reject(new Error(`unexpected ${report.type}`)),
      );
      child.once('exit', (code) => reject(new Error(`consumer process exited with ${code}`)));
    });
    return consumer;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolves once the child has reported `count` handled messages. */
  async waitForHandled(count: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.handled < count) {
      if (Date.now() > deadline || this.child.exitCode !== null) {
        throw new Error(`consumer process handled ${this.handled} of ${count}`);
      }
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  /** Stops the consumer cleanly and waits for the process to exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.connected) this.child.send({ type: 'stop' });
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(killer);
  }

  private receive(report: ChildReport): void {
    switch (report.type) {
      case 'samples':
        for (const sample of report.samples) this.samples.push(sample);
        break;
      case 'progress':
      case 'stopped':
        this.handled = Math.max(this.handled, report.handled);
        break;
      case 'checkpoint':
        this.checkpoints.push({ handled: report.handled, at: report.at });
        this.handled = Math.max(this.handled, report.handled);
        break;
      case 'rss':
        this.rss.push({ rss: report.rss, at: report.at });
        break;
      case 'heap':
        this.liveHeap.push({ handled: report.handled, liveHeap: report.liveHeap });
        break;
      default:
        return;
    }
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}
