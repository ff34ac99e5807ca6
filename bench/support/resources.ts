import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { query } from './database.js';
import { sleep } from './harness.js';
import { nowMs } from './stats.js';

/** Clock ticks per second of /proc/<pid>/stat times; 100 on every Linux this runs on. */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  readonly ppid: number;
  readonly comm: string;
  /** utime + stime, in ticks. */
  readonly own: number;
  /** cutime + cstime: time of children already reaped, in ticks. */
  readonly reaped: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const fields = text.slice(close + 2).split(' ');
    // fields[0] is state (field 3); utime is field 14, so fields[11].
    return {
      ppid: Number(fields[1]),
      comm,
      own: Number(fields[11]) + Number(fields[12]),
      reaped: Number(fields[13]) + Number(fields[14]),
    };
  } catch {
    return undefined;
  }
}

/**
 * CPU used so far by a PostgreSQL server running on this machine, in milliseconds: the
 * postmaster, every live child, and the children it has already reaped.
 */
function postgresCpuMs(postmaster: number): number {
  const root = readStat(postmaster);
  if (!root) return Number.NaN;
  let ticks = root.own + root.reaped;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat?.ppid === postmaster) ticks += stat.own;
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}

/** The postmaster's pid, when the server runs on this machine; undefined otherwise. */
async function findPostmaster(url: string): Promise<number | undefined> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const backend = readStat(rows[0].pid);
    if (!backend) return undefined;
    return readStat(backend.ppid)?.comm.startsWith('postgres') ? backend.ppid : undefined;
  } catch {
    return undefined;
  } finally {
    await client.end();
  }
}

/** Busy CPU time of the whole machine so far (all cores, from /proc/stat), in milliseconds. */
function machineBusyMs(): number {
  try {
    const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    const [user, nice, system, , , irq, softirq, steal] = fields.map(Number);
    return ((user + nice + system + irq + softirq + steal) * 1000) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** CPU spent while something ran, split between this Node.js process and PostgreSQL. */
export interface CpuUsage {
  readonly wallMs: number;
  readonly nodeMs: number;
  /** NaN when the server is not on this machine. */
  readonly postgresMs: number;
  /** Everything else the machine ran meanwhile (other processes, child processes included). */
  readonly otherMs: number;
}

/** Measures CPU from `start()` to `stop()`. */
export class CpuMeter {
  private constructor(
    private readonly postmaster: number | undefined,
    private readonly startWall: number,
    private readonly startNode: NodeJS.CpuUsage,
    private readonly startPostgres: number,
    private readonly startMachine: number,
  ) {}

  static async start(url: string): Promise<CpuMeter> {
    const postmaster = await findPostmaster(url);
    return new CpuMeter(
      postmaster,
      nowMs(),
      process.cpuUsage(),
      postmaster ? postgresCpuMs(postmaster) : Number.NaN,
      machineBusyMs(),
    );
  }

  stop(): CpuUsage {
    const node = process.cpuUsage(this.startNode);
    const nodeMs = (node.user + node.system) / 1000;
    const postgresMs = this.postmaster
      ? postgresCpuMs(this.postmaster) - this.startPostgres
      : Number.NaN;
    const machineMs = machineBusyMs() - this.startMachine;
    return {
      wallMs: nowMs() - this.startWall,
      nodeMs,
      postgresMs,
      otherMs: Math.max(0, machineMs - nodeMs - (Number.isNaN(postgresMs) ? 0 : postgresMs)),
    };
  }
}

/** WAL written and flushed while something ran, server-wide (every database of the server). */
export interface WalUsage {
  readonly records: number;
  readonly bytes: number;
  /** Flushes of the WAL to disk (`fdatasync` and the like): what each durable commit waits for. */
  readonly syncs: number;
}

/**
 * The WAL written so far, and its flushes: in `pg_stat_wal` up to PostgreSQL 17; PostgreSQL 18
 * moved the flushes to `pg_stat_io` (object 'wal').
 */
const READ_WAL = `SELECT wal_records::float8 AS records, wal_bytes::float8 AS bytes,
  wal_sync::float8 AS syncs FROM pg_stat_wal`;
const READ_WAL_18 = `SELECT w.wal_records::float8 AS records, w.wal_bytes::float8 AS bytes,
  (SELECT coalesce(sum(fsyncs), 0)::float8 FROM pg_stat_io WHERE object = 'wal') AS syncs
  FROM pg_stat_wal AS w`;

/**
 * Time for the backends of connections just closed to exit and report their statistics. A
 * connection that stays open reports them at most once a second, and when idle up to 10 s late
 * (PGSTAT_MIN_INTERVAL, PGSTAT_IDLE_INTERVAL), so only closed connections count reliably.
 */
const WAL_STATS_DELAY_MS = 1_100;

/**
 * Measures the WAL from `start()` to `stop()`. The statistics are server-wide and exist from
 * PostgreSQL 14 on; on older servers `stop()` returns undefined. Backends report their WAL
 * late, so start the meter once the connections of earlier work have closed, and stop it once
 * those of the measured work have: both ends wait for exiting backends to report.
 */
export class WalMeter {
  private constructor(
    private readonly url: string,
    /** The statement that reads this server's WAL statistics; undefined before PostgreSQL 14. */
    private readonly read: string | undefined,
    private readonly start: WalUsage | undefined,
  ) {}

  static async start(url: string): Promise<WalMeter> {
    await sleep(WAL_STATS_DELAY_MS);
    const read = await walStatement(url);
    return new WalMeter(url, read, read ? await readWal(url, read) : undefined);
  }

  async stop(): Promise<WalUsage | undefined> {
    if (!this.read || !this.start) return undefined;
    await sleep(WAL_STATS_DELAY_MS);
    const end = await readWal(this.url, this.read);
    if (!end) return undefined;
    return {
      records: end.records - this.start.records,
      bytes: end.bytes - this.start.bytes,
      syncs: end.syncs - this.start.syncs,
    };
  }
}

/** The statement that reads the WAL statistics of the server at `url`, by its version. */
async function walStatement(url: string): Promise<string | undefined> {
  const [{ version }] = await query<{ version: number }>(
    url,
    "SELECT current_setting('server_version_num')::int AS version",
  );
  if (version < 140000) return undefined;
  return version >= 180000 ? READ_WAL_18 : READ_WAL;
}

async function readWal(url: string, read: string): Promise<WalUsage | undefined> {
  try {
    const [usage] = await query<WalUsage>(url, read);
    return usage;
  } catch {
    return undefined;
  }
}
