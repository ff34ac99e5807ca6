/**
 * What a test opened, closed in reverse order, once: by the test itself before it checks for
 * leaks, or by `afterEach` when the test failed half-way (so a failure does not cascade into
 * reconnect loops against a dropped database).
 */
export class Closer {
  private readonly steps: Array<() => unknown> = [];

  /** Registers how to close `resource` and returns it: `closer.add(x, (x) => x.close())`. */
  add<T>(resource: T, close: (resource: T) => unknown): T {
    this.steps.push(() => close(resource));
    return resource;
  }

  /** Runs every registered step, last first; rejects with the first failure after running all. */
  async closeAll(): Promise<void> {
    let failure: unknown;
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  }
}
