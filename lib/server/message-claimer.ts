import type pg from 'pg';
import type { MessageStatements } from '../sql/message.queries.js';
import type { ClaimedBatch, ClaimedMessage } from './claimed-message.js';
import type { ConsumeConnections } from './consume-connections.js';

export interface ClaimSettings {
  readonly group: string;
  readonly batchSize: number;
  readonly leaseMs: number;
  readonly sweepIntervalMs: number;
}

/** The longest a full claim waits while claims resume after a cursor; see `claim`. */
const FULL_CLAIM_INTERVAL_MS = 1_000;

/** The row a claim took last in its (run_at, id) order. */
function lastInClaimOrder(rows: readonly ClaimedMessage[]): { runAtUs: string; id: string } {
  let last = rows[0];
  for (const row of rows) {
    const byRunAt = BigInt(row.run_at_us) - BigInt(last.run_at_us);
    if (byRunAt > 0n || (byRunAt === 0n && BigInt(row.id) > BigInt(last.id))) last = row;
  }
  return { runAtUs: last.run_at_us, id: last.id };
}

/** Claims batches of one group's messages, resuming where the last full batch ended. */
export class MessageClaimer {
  /** Where the next claim resumes, after a full batch. */
  private claimCursor: { runAtUs: string; id: string } | undefined;
  private fullClaimDueAt = 0;

  constructor(
    private readonly pool: () => pg.Pool,
    private readonly connections: ConsumeConnections,
    private readonly statements: MessageStatements,
    private readonly settings: ClaimSettings,
  ) {}

  /**
   * Claims the next batch on a connection checked out for it, and returns both, or undefined
   * (with the connection released) when nothing was due. While batches come back full, each
   * claim resumes after the last row claimed (see `claimAfter`). Rows can land behind that
   * point: a row's run_at is its inserting transaction's start, and transactions commit out of
   * that order. So a resumed claim that comes back short is topped up at once by a claim from
   * the beginning, and while claims stay full one starts from the beginning at least every
   * FULL_CLAIM_INTERVAL_MS (or sweep interval, if shorter): a row behind the cursor waits at
   * most that long, even during a backlog.
   */
  async claim(): Promise<ClaimedBatch | undefined> {
    const client = await this.pool().connect();
    this.connections.add(client);
    let messages: ClaimedMessage[];
    try {
      messages = await this.claimOn(client);
    } catch (error) {
      // A connection whose claim failed may be broken: discard it rather than reuse it.
      this.connections.release(client, error as Error);
      throw error;
    }
    if (messages.length === 0) {
      this.connections.release(client);
      return undefined;
    }
    return { messages, client };
  }

  private async claimOn(client: pg.PoolClient): Promise<ClaimedMessage[]> {
    const { group, batchSize, leaseMs, sweepIntervalMs } = this.settings;
    const now = Date.now();
    const cursor = now < this.fullClaimDueAt ? this.claimCursor : undefined;
    let rows: ClaimedMessage[] = [];
    if (cursor) {
      ({ rows } = await client.query<ClaimedMessage>(
        this.statements.claimAfter([group, batchSize, leaseMs, cursor.runAtUs, cursor.id]),
      ));
    }
    if (rows.length < batchSize) {
      this.fullClaimDueAt = now + Math.min(sweepIntervalMs, FULL_CLAIM_INTERVAL_MS);
      const more = await client.query<ClaimedMessage>(
        this.statements.claim([group, batchSize - rows.length, leaseMs]),
      );
      rows = rows.concat(more.rows);
    }
    this.claimCursor = rows.length === batchSize ? lastInClaimOrder(rows) : undefined;
    return rows.sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)));
  }
}
