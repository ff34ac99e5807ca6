/** Promises started and not yet settled, so that their owner can wait for all of them. */
export class InFlight {
  private readonly promises = new Set<Promise<unknown>>();

  /** Tracks `promise` until it settles (which also marks its rejection handled). */
  track(promise: Promise<unknown>): void {
    this.promises.add(promise);
    const forget = () => this.promises.delete(promise);
    promise.then(forget, forget);
  }

  /**
   * Resolves once every tracked promise has settled, those tracked meanwhile included; rejects
   * with the first that failed.
   */
  async settled(): Promise<void> {
    while (this.promises.size > 0) await Promise.all([...this.promises]);
  }
}
