/**
 * One Node version, pinned and tested: the version Render runs (NODE_VERSION set by the infra program, and
 * .node-version), the one scripts/node24.sh bootstraps for CI and the README's commands, and the one running
 * these tests are the same; package.json engines.node admits only the Node 24 line.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVICE_RUNTIME } from '../../infra/service-runtime';

const REPO = path.resolve(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(REPO, file), 'utf8');

describe('the Node version', () => {
  it('is the pinned Node 24 LTS everywhere it is declared', () => {
    expect(SERVICE_RUNTIME.nodeVersion).toMatch(/^24\.\d+\.\d+$/);
    expect(read('.node-version').trim()).toBe(SERVICE_RUNTIME.nodeVersion);
    expect(/^NODE24_VERSION=(\S+)$/m.exec(read('scripts/node24.sh'))?.[1]).toBe(SERVICE_RUNTIME.nodeVersion);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    expect(engines).toBe('>=24.11 <25');
  });

  it('is the one running these tests (bootstrap it with: . scripts/node24.sh, as ./scripts/test does)', () => {
    expect(process.version).toBe(`v${SERVICE_RUNTIME.nodeVersion}`);
  });

  it('scripts/node24.sh puts that version first on PATH, with its headers for native builds, and says so in one line', () => {
    const result = spawnSync('bash', ['-c', '. scripts/node24.sh && node -v && echo "$npm_config_nodedir"'], { cwd: REPO, encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    const [version, nodedir] = result.stdout.trim().split('\n');
    expect(version).toBe(`v${SERVICE_RUNTIME.nodeVersion}`);
    expect(readFileSync(path.join(nodedir!, 'include', 'node', 'node_version.h'), 'utf8')).toMatch(/#define NODE_MAJOR_VERSION 24\b/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^node24: v24\.\d+\.\d+ \(ABI \d+\) (cached|installed)/);
  });
});
