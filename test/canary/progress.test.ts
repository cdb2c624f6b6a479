import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyze } from '../../canary/analysis';
import { loadPolicy } from '../../canary/policy';
import { createTerminalProgress } from '../../canary/progress';
import { loadTimeline } from '../../canary/timeline';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));

function fakeStream(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = { isTTY, write: (text: string) => chunks.push(text) > 0 } as unknown as NodeJS.WriteStream;
  return { stream, text: () => chunks.join('') };
}

describe('terminal progress', () => {
  it('shows the next checkpoint with its countdown, and each poll’s rates against the thresholds in force', () => {
    const { stream, text } = fakeStream(true);
    const progress = createTerminalProgress(stream);
    progress.countdown({ policySeconds: 250, nextPollInSeconds: 110, nextCheckpoint: '15-minute check', checkpointInSeconds: 650 });
    expect(text()).toContain('[canary 4:10] next poll in 1:50 · 15-minute check in 10:50');

    const timeline = loadTimeline(join(__dirname, '../../canary/timelines/healthy-high-traffic.json'));
    const step = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements.slice(0, 3) }).steps.at(-1)!;
    progress.step(step);
    const out = text();
    // The countdown line is closed before the poll line, which names the rates and the limits.
    expect(out).toMatch(/10:50\n\[canary\] +\d+\.\d min/);
    expect(out).toMatch(/window: err [\d.]+% fb [\d.]+% hit [\d.]+% lat \d+ ms/);
    expect(out).toContain('limits (15-minute check): errorRate > 10.0%, fallbackRate > 20.0%, avgLatencyMs > 1000 ms');
  });

  it('prints no per-second countdown when stderr is not a terminal (CI logs), but still every poll', () => {
    const { stream, text } = fakeStream(false);
    const progress = createTerminalProgress(stream);
    progress.countdown({ policySeconds: 1, nextPollInSeconds: 119, nextCheckpoint: '15-minute check', checkpointInSeconds: 899 });
    expect(text()).toBe('');
    progress.warn('metrics unreadable');
    expect(text()).toBe('[canary] WARNING: metrics unreadable\n');
  });
});
