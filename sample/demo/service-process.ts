import { fork, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** One sample service running in its own Node process, as it would in production. */
export class ServiceProcess {
  private constructor(
    readonly label: string,
    readonly child: ChildProcess,
    readonly ready: { url?: string },
  ) {}

  /** Starts `dist/sample/<service>/main.js` and resolves once it reports ready. */
  static start(
    service: string,
    label: string,
    env: Record<string, string>,
  ): Promise<ServiceProcess> {
    const entry = fileURLToPath(new URL(`../${service}/main.js`, import.meta.url));
    const child = fork(entry, [], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    for (const stream of [child.stdout, child.stderr]) {
      if (stream)
        createInterface({ input: stream }).on('line', (line) =>
          console.log(`  [${label}] ${line}`),
        );
    }
    return new Promise((resolve, reject) => {
      child.once('exit', (code) =>
        reject(new Error(`${label} exited with ${code} before it was ready`)),
      );
      child.on('message', (message: { ready?: string; url?: string }) => {
        if (message.ready) resolve(new ServiceProcess(label, child, { url: message.url }));
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** SIGKILL: no shutdown hook runs, in-flight transactions die with the connection. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** SIGTERM: Nest's shutdown hooks close the transport gracefully. */
  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  private signal(signal: NodeJS.Signals): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill(signal);
    return exited;
  }
}
