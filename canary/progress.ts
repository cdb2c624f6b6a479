/** Live progress on the terminal: next checkpoint and countdown, current rates against thresholds. */
import type { StepRecord } from './analysis';
import { formatStep } from './format';

export interface Progress {
  /** called about once a second while waiting for the next poll */
  countdown(info: { policySeconds: number; nextPollInSeconds: number; nextCheckpoint: string; checkpointInSeconds: number }): void;
  step(step: StepRecord): void;
  info(message: string): void;
  warn(message: string): void;
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function createTerminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = stream.isTTY === true;
  let lineOpen = false;
  const closeLine = () => {
    if (lineOpen) stream.write('\n');
    lineOpen = false;
  };
  const line = (text: string) => {
    closeLine();
    stream.write(`${text}\n`);
  };
  return {
    countdown(info) {
      // Without a terminal, a line per second would flood CI logs: the per-poll lines suffice.
      if (!tty) return;
      stream.write(
        `\r\x1b[2K[canary ${clock(info.policySeconds)}] next poll in ${clock(info.nextPollInSeconds)} · ${info.nextCheckpoint} in ${clock(info.checkpointInSeconds)}`,
      );
      lineOpen = true;
    },
    step(step) {
      line(`[canary] ${formatStep(step)}`);
      for (const note of step.notes) line(`[canary]        ${note}`);
      for (const c of step.checkpoints) line(`[canary]        ${c.name}: ${c.outcome}`);
    },
    info(message) {
      line(`[canary] ${message}`);
    },
    warn(message) {
      line(`[canary] WARNING: ${message}`);
    },
  };
}

export const silentProgress: Progress = { countdown() {}, step() {}, info() {}, warn() {} };
