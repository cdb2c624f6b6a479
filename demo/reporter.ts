/**
 * What the demo prints: numbered steps, results, and a live status line (rewritten in place on a
 * terminal, printed at most every few seconds otherwise so CI logs stay readable).
 */

export interface Reporter {
  step(title: string): void;
  info(message: string): void;
  ok(message: string): void;
  fail(message: string): void;
  /** transient status: one line, replaced by the next */
  status(message: string): void;
  /** writes a raw line (e.g. the machine-readable summary) */
  raw(line: string): void;
}

export function createReporter(stream: NodeJS.WriteStream = process.stdout, now: () => number = Date.now): Reporter {
  const started = now();
  const tty = stream.isTTY === true;
  let stepNo = 0;
  let statusOpen = false;
  let lastPlainStatus = Number.NEGATIVE_INFINITY;
  const elapsed = () => `${((now() - started) / 1000).toFixed(1).padStart(6)}s`;
  const clearStatus = () => {
    if (statusOpen) stream.write('\r\x1b[2K');
    statusOpen = false;
  };
  const line = (mark: string, text: string) => {
    clearStatus();
    stream.write(`${elapsed()} ${mark} ${text}\n`);
  };
  return {
    step(title) {
      stepNo++;
      clearStatus();
      stream.write(`\n${elapsed()} ── Step ${stepNo}: ${title}\n`);
    },
    info: (m) => line(' ', m),
    ok: (m) => line('✔', m),
    fail: (m) => line('✘', m),
    status(message) {
      if (tty) {
        const width = (stream.columns ?? 120) - 14; // room for the elapsed-time prefix
        stream.write(`\r\x1b[2K${elapsed()} … ${message.length > width ? `${message.slice(0, width - 1)}…` : message}`);
        statusOpen = true;
        return;
      }
      if (now() - lastPlainStatus < 3_000) return;
      lastPlainStatus = now();
      stream.write(`${elapsed()} … ${message}\n`);
    },
    raw(text) {
      clearStatus();
      stream.write(`${text}\n`);
    },
  };
}
