// scripts/under-load and scripts/under-load-rounds: what they refuse, that the command's exit status comes back,
// and that no CPU-bound neighbour outlives the command.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const run = (script: string, args: string[]) =>
  spawnSync('bash', [script, ...args], { encoding: 'utf8', timeout: 60_000 });

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('scripts/under-load', () => {
  it('passes the command its exit status, and stops every neighbour when the command ends', () => {
    const result = run('scripts/under-load', ['--neighbours', '2', '--max-seconds', '60', '--', 'bash', '-c', 'exit 7']);
    expect(result.status).toBe(7);
    const pids = /\(pids ([\d ]+)\)/.exec(result.stderr)?.[1]?.split(' ').map(Number) ?? [];
    expect(pids).toHaveLength(2);
    expect(pids.filter(alive)).toEqual([]);
    expect(result.stderr).toMatch(/under-load: exit 7 after [\d.]+ s wall with 2 neighbours; load average/);
  });

  it('refuses a neighbour count outside 1-32 and a missing command', () => {
    expect(run('scripts/under-load', ['--neighbours', '0', '--', 'true']).status).toBe(64);
    expect(run('scripts/under-load', ['--neighbours', 'many', '--', 'true']).stderr).toMatch(/--neighbours must be a whole number/);
    expect(run('scripts/under-load', ['--']).status).toBe(64);
  });
});

describe('scripts/under-load-rounds', () => {
  it('refuses a round count outside 1-50 and unknown arguments, before starting anything', () => {
    const zero = run('scripts/under-load-rounds', ['--rounds', '0']);
    expect(zero.status).toBe(64);
    expect(zero.stderr).toMatch(/--rounds must be a whole number from 1 to 50, got '0'/);
    const unknown = run('scripts/under-load-rounds', ['--fast']);
    expect(unknown.status).toBe(64);
    expect(unknown.stderr).toMatch(/unknown argument '--fast'/);
  });

  it('says what it runs', () => {
    const help = run('scripts/under-load-rounds', ['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/scripts\/under-load-rounds \[--rounds N\] \[--neighbours N\]/);
  });
});
