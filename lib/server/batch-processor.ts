import { Logger } from '@nestjs/common';
import type pg from 'pg';
import { BEGIN_BATCH, type MessageStatements } from '../sql/message.queries.js';
import { ActiveTransaction } from '../transaction/active-transaction.js';
import type { WakeupNotifier } from '../wakeup/wakeup-notifier.js';
import type { ClaimedBatch, ClaimedMessage, HandleResult } from './claimed-message.js';
import { MessageRunner, tracksStatus } from './message-runner.js';
import type { ConsumeConnections } from './consume-connections.js';
import {
  SettlementPolicy,
  type Handled,
  type Settlement,
  type SettlementPolicyDeps,
} from './settlement.js';

export interface BatchProcessorDeps extends SettlementPolicyDeps {
  /** Where the batch's connection, checked out by its claim, is returned. */
  readonly connections: ConsumeConnections;
  readonly statements: MessageStatements;
  readonly target: string;
  /** The claim's lease: when a rolled-back batch's messages become claimable again. */
  readonly leaseMs: number;
  readonly notifier: WakeupNotifier;
  /**
   * Prepared statements are on: a batch without savepoints sends its BEGIN with its first
   * statement, and every batch its COMMIT with its settle (see ActiveTransaction).
   */
  readonly foldTransaction: boolean;
  /** Runs the handler of one message inside the consume transaction. */
  readonly handle: (
    message: ClaimedMessage,
    transaction: ActiveTransaction,
  ) => Promise<HandleResult>;
}

/** An optimistic batch met a failure: roll back, then replay it with savepoints. */
interface Replay {
  readonly replay: true;
  /** The failed message, whose handler does not run again in the replay. */
  readonly failed: { readonly id: string } & Handled;
}

/**
 * After a failure, this many batches isolate every message from the start: failures come in
 * runs (a dependency is down), and a replay costs the batch's handlers a second run.
 */
const ISOLATED_BATCHES_AFTER_FAILURE = 16;

/**
 * Handles a claimed batch in ONE transaction, marked consumed by a single commit, with each
 * message's writes isolated from its neighbours'. A crash anywhere rolls back everything; the
 * claims' leases then expire and the rows return.
 *
 * Isolation is optimistic. A batch first runs with no savepoints, since a savepoint per message
 * costs a subtransaction (and a round trip, where its statements cannot leave with the
 * message's first statement), and most batches have no failure. The connection's
 * transaction status, read after each message, tells whether its handler left the transaction
 * aborted. At the first failure the batch rolls back and is replayed with every message in its
 * own savepoint: the messages before the failed one run again, the failed one keeps its outcome
 * without running again, and a failing handler undoes only its own writes. Batches with a
 * redelivered message, and the batches that follow a failure, use savepoints from the start.
 */
export class BatchProcessor {
  private readonly logger = new Logger('ServerPostgres');
  /** Batches left that use savepoints from the start, counted down from the last failure. */
  private isolatedBatches = 0;
  private readonly settlements: SettlementPolicy;
  private readonly runner: MessageRunner;

  constructor(private readonly deps: BatchProcessorDeps) {
    this.settlements = new SettlementPolicy(deps);
    this.runner = new MessageRunner(deps);
  }

  /** Handles a claimed batch on the connection its claim ran on, and releases that connection. */
  async process({ messages: batch, client }: ClaimedBatch): Promise<void> {
    // The failing query of a connection that dies rejects, and the batch rolls back through it.
    let broken: Error | undefined;
    try {
      const outcome = await this.run(client, batch, this.startIsolated(client, batch));
      if (outcome !== 'committed') {
        this.isolatedBatches = ISOLATED_BATCHES_AFTER_FAILURE;
        await this.run(client, batch, true, outcome.failed);
      }
    } catch (error) {
      broken = error as Error;
      this.logger.error(
        `Batch of ${batch.length} in group "${this.deps.group}" rolled back; its messages return ` +
          `when their lease ends: ${broken.message}`,
      );
      this.deps.onRetryScheduled(this.deps.leaseMs);
    } finally {
      // A connection that failed mid-transaction is discarded rather than reused.
      this.deps.connections.release(client, broken);
    }
  }

  /** Whether this batch isolates each message in a savepoint from its start. */
  private startIsolated(client: pg.PoolClient, batch: readonly ClaimedMessage[]): boolean {
    // Without the transaction status (pg before 8.21), or without knowing when it is current,
    // a handler that swallowed a failed statement would only show at a later message, so the
    // failure could not be placed.
    if (!tracksStatus(client)) return true;
    if (this.isolatedBatches > 0) {
      this.isolatedBatches--;
      return true;
    }
    return batch.some((message) => message.attempts > 1);
  }

  /**
   * Runs the batch in one transaction and commits it, or returns the Replay an optimistic run
   * met. `known` is a message whose outcome an earlier run of this batch already decided.
   */
  private async run(
    client: pg.PoolClient,
    batch: readonly ClaimedMessage[],
    isolated: boolean,
    known?: Replay['failed'],
  ): Promise<'committed' | Replay> {
    // BEGIN leaves with the batch's first statement (a handler's query, a reply or the settle),
    // and COMMIT with the settle. With savepoints, each message's first statement also sets the
    // savepoint (or releases the last one and sets a fresh one): a failure a handler swallowed
    // then shows in the transaction status at the end of its message, not in a savepoint
    // statement of its own. Where statements cannot carry them (prepared statements off, or no
    // transaction status to read), BEGIN is sent on its own but not awaited: the handler's first
    // query waits for it in the transaction's turn, so the handler starts one round trip sooner.
    // A failed BEGIN drops the connection, which fails that query, or the settle.
    const fold = this.deps.foldTransaction;
    const deferSavepoints = isolated && fold && tracksStatus(client);
    const deferred = fold && (!isolated || deferSavepoints);
    const transaction = new ActiveTransaction(client, this.deps.target, true, {
      deferBegin: deferred,
      foldCommit: fold,
    });
    if (deferSavepoints) transaction.deferSavepoint();
    const begun = deferred
      ? Promise.resolve()
      : transaction.open({ text: isolated ? BEGIN_BATCH : 'BEGIN' });
    begun.catch(() => undefined);
    try {
      const settlements: Settlement[] = [];
      const replies: Array<{ recipient: string; pattern: string }> = [];
      for (const message of batch) {
        const started = performance.now();
        let handled: Handled;
        if (isolated) {
          // The message an earlier run already decided keeps that outcome and its duration.
          const decided = known?.id === message.id ? known : undefined;
          const result = await this.runner.isolated(
            client,
            transaction,
            message,
            decided?.result,
            deferSavepoints,
          );
          if (result.rollback) this.isolatedBatches = ISOLATED_BATCHES_AFTER_FAILURE;
          handled = { result, durationMs: decided?.durationMs ?? performance.now() - started };
        } else {
          const result = await this.runner.optimistic(client, transaction, message, begun);
          handled = { result, durationMs: performance.now() - started };
          if (result.rollback) {
            transaction.rolledBack();
            if (transaction.begun) await transaction.control('ROLLBACK');
            return { replay: true, failed: { id: message.id, ...handled } };
          }
        }
        settlements.push(this.settlements.settle(message, handled));
        if (handled.result.reply !== undefined && message.reply_to) {
          replies.push({ recipient: message.reply_to, pattern: message.pattern });
        }
      }
      await begun;
      // The settle raises if another consumer settled one of these messages first (possible only
      // once this consumer's lease ran out), and COMMIT, sent with it, then does not run. Once
      // committed, the transaction runs its after-commit work (the emits' wake-ups).
      await transaction.queryAndCommit(
        this.deps.statements.settle([
          settlements.map((s) => s.id),
          settlements.map((s) => s.outcome),
          settlements.map((s) => s.delayMs),
          settlements.map((s) => s.error),
        ]),
      );
      if (replies.length > 0) this.deps.notifier.wake(replies);
      this.settlements.report(batch, settlements);
      return 'committed';
    } catch (error) {
      transaction.rolledBack();
      // In its turn: statements the handlers did not await may still be waiting to be sent.
      await transaction.control('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }
}
