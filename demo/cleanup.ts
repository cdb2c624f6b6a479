/** Closers run once, newest first, whichever path ends the run (success, failure, signal, watchdog). */
export class Cleanup {
  private readonly closers: { name: string; close: () => Promise<unknown> | unknown }[] = [];
  private running: Promise<string[]> | undefined;

  add(name: string, close: () => Promise<unknown> | unknown): void {
    // Something started after the run was torn down (e.g. mid-interrupt): close it at once.
    if (this.running) void Promise.resolve().then(close).catch(() => undefined);
    else this.closers.push({ name, close });
  }

  get started(): boolean {
    return this.running !== undefined;
  }

  /** Returns the names of closers that failed (each is still attempted). */
  run(): Promise<string[]> {
    this.running ??= (async () => {
      const failed: string[] = [];
      for (const { name, close } of this.closers.reverse()) {
        try {
          await close();
        } catch (error) {
          failed.push(`${name}: ${(error as Error).message}`);
        }
      }
      return failed;
    })();
    return this.running;
  }
}
