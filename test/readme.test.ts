/**
 * The newcomer's path: the top README's first screen shows the two commands, CI runs exactly the test command,
 * and every command and page the READMEs name exists, so the docs cannot drift from the code unnoticed.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../service/config';

const README = readFileSync('README.md', 'utf8');
const FOLDER_READMES = ['service', 'canary', 'infra', 'render', 'load', 'demo'].map((folder) => join(folder, 'README.md'));
const ALL = ['README.md', ...FOLDER_READMES].map((path) => ({ path, text: readFileSync(path, 'utf8') }));
const SCRIPTS = Object.keys((JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts);

describe('the top README', () => {
  const firstScreen = README.split('\n').slice(0, 40).join('\n');

  it('shows what this is and the two commands on its first screen', () => {
    expect(firstScreen).toMatch(/^# Context7 memory rollout/);
    const block = /```bash\n([\s\S]*?)```/.exec(firstScreen)?.[1] ?? '';
    const commands = block.split('\n').map((line) => line.replace(/#.*$/, '').trim()).filter(Boolean);
    expect(commands).toEqual(['./scripts/demo', './scripts/test']);
    expect(firstScreen).toContain('What you will see');
  });

  it('says on its first screen, as the Context7 README does, that the Context7 memory contract is our assumption', () => {
    expect(firstScreen).toMatch(/The Context7 memory contract is our assumption/);
    expect(firstScreen).toContain('documentation-retrieval');
    const context7FirstScreen = readFileSync('service/context7/README.md', 'utf8').split('\n').slice(0, 20).join('\n');
    expect(context7FirstScreen).toMatch(/memory contract here is our assumption/);
    expect(context7FirstScreen).toContain('`client.ts` is the one');
  });

  it('is what CI runs: .ci/run runs the README test command first, then each check in .ci/checks/', () => {
    const ci = readFileSync('.ci/run', 'utf8').split('\n').filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
    const test = ci.findIndex((line) => /^\.\/scripts\/test\b/.test(line.trim()));
    const checks = ci.findIndex((line) => line.includes('.ci/checks/*.sh'));
    expect(test).toBeGreaterThanOrEqual(0);
    expect(checks).toBeGreaterThan(test);
    // The run's closing line is the test count, repeated after the checks.
    expect(ci.slice(checks).join('\n')).toMatch(/\^tests: /);
  });

  it('says on its first screen what other commands need (Node 24 via scripts/node24.sh) and when the tests need root', () => {
    expect(firstScreen).toContain('`. scripts/node24.sh`');
    expect(firstScreen).toMatch(/`\.\/scripts\/test`\s+needs root\*\* when it has to install Chromium/);
    for (const what of ['apt-get', 'pg_ctlcluster', '/var/lib/redis']) expect(firstScreen).toContain(what);
    // ...and scripts/test says the same when it stops for want of root.
    const script = readFileSync('scripts/test', 'utf8');
    expect(script).toMatch(/needs root/);
    for (const what of ['apt-get install -y chromium', 'pg_ctlcluster', '/var/lib/redis']) expect(script).toContain(what);
  });

  it('says the demo run directory is kept on purpose and how to remove it', () => {
    expect(firstScreen).toContain('/tmp/context7-rollout-demo-*');
    expect(firstScreen).toMatch(/kept on purpose: `rm -rf` it/);
  });

  it('links one page per folder, and every page exists', () => {
    for (const page of FOLDER_READMES) {
      expect(README, page).toContain(`](${page})`);
      expect(existsSync(page), page).toBe(true);
    }
  });
});

describe('every README', () => {
  it('names only npm scripts that exist', () => {
    for (const { path, text } of ALL) {
      for (const [, name] of text.matchAll(/npm run ([a-z][\w:-]*)/g)) expect(SCRIPTS, `${path}: npm run ${name}`).toContain(name);
    }
  });

  it('names only scripts/ commands that exist and are executable', () => {
    for (const { path, text } of ALL) {
      for (const [, script] of text.matchAll(/\.\/scripts\/([\w.-]+)/g)) {
        expect(() => accessSync(join('scripts', script!), constants.X_OK), `${path}: ./scripts/${script}`).not.toThrow();
      }
    }
  });

  it('links only to files that exist', () => {
    for (const { path, text } of ALL) {
      for (const [, target] of text.matchAll(/\]\((?!https?:\/\/|#|mailto:)([^)#\s]+)(?:#[^)]*)?\)/g)) {
        expect(existsSync(join(dirname(path), target!)), `${path} links to ${target}`).toBe(true);
      }
    }
  });
});

describe('service/context7/README.md, "Running the service against the emulator"', () => {
  const text = readFileSync('service/context7/README.md', 'utf8');
  const section = text.slice(text.indexOf('## Running the service against the emulator'));
  const block = (/```bash\n([\s\S]*?)```/.exec(section)?.[1] ?? '').replace(/\\\n\s*/g, ' ');
  const startLine = block.split('\n').find((line) => line.includes('npm start')) ?? '';
  // KEY=value and KEY='value' before `npm start`: the service's environment as the README gives it.
  const env = Object.fromEntries([...startLine.matchAll(/([A-Z0-9_]+)=('[^']*'|\S+)/g)].map(([, key, value]) => [key!, value!.replace(/^'|'$/g, '')]));

  it('starts the service with a caller key, so the memory calls it shows are not 401', () => {
    expect(env.MEMORY_API_KEYS ?? env.MEMORY_AUTH, startLine).toBeDefined();
    const config = loadConfig(env);
    expect(config.enableContext7Memory).toBe(true);
    const keyInCurl = /authorization: Bearer ([^'\s]+)/.exec(block)?.[1];
    expect(keyInCurl, 'the curl call carries a caller key').toBeDefined();
    expect(config.callerKeys.map((key) => key.secret)).toContain(keyInCurl);
    const scopeId = /"scopeId":"([^"]+)"/.exec(block)?.[1] ?? '';
    expect(scopeId).toMatch(/^scope:[^:]+:[^:]+:[0-9a-f]{16}$/);
    expect(block).toContain(`http://127.0.0.1:${config.port}/api/memory/snippets`);
  });
});
