/** Promises started and not yet settled, so that their owner can wait for all of them. */
export class InFlight {
  private readonly promises = new Set<Promise<unknown>>();
  /** The first failure since `settled()` last reported one. */
  private failure: { readonly error: unknown } | undefined;

  /**
   * Tracks `promise` until it settles (which also marks its rejection handled). A rejection is
   * kept for the next `settled()`, even if it happens before the owner asks.
   */
  track(promise: Promise<unknown>): void {
    this.promises.add(promise);
    promise.then(
      () => this.promises.delete(promise),
      (error: unknown) => {
        this.promises.delete(promise);
        this.failure ??= { error };
      },
    );
  }

  /**
   * Resolves once every tracked promise has settled, those tracked meanwhile included; rejects
   * with the first that failed since the last call that rejected, however early it failed.
   */
  async settled(): Promise<void> {
    while (this.promises.size > 0) await Promise.allSettled([...this.promises]);
    const failure = this.failure;
    this.failure = undefined;
    if (failure) throw failure.error;
  }
}
