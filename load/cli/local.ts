/**
 * npm run load:local -- --scenario NAME [npm run load flags, without --base-url] [--out FILE] [--context7-latency-ms 20]
 * `npm run load` (k6) against the memory service started on loopback, like bench:load's (Context7 emulator with
 * 20 ms added latency, SQLite, in-process cache), with a caller key and load-test token made for the run.
 * `--out FILE` copies the run's summary.json there (how load/baselines/local-k6.json is recorded).
 */
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { startLocalStack } from '../bench/local-stack';
import { renderMarkdownReport } from '../lib/summary';
import { runLoad } from './run';
import { readSummaryFile } from './summary-schema';

function takeFlag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const value = argv[i + 1];
  if (value === undefined) throw new Error(`${name} needs a value`);
  argv.splice(i, 2);
  return value;
}

async function main(argv: string[]): Promise<number> {
  const args = argv.slice();
  if (args.some((a) => a === '--base-url' || a.startsWith('--base-url='))) throw new Error('load:local starts its own service: drop --base-url (npm run load targets a deployed one)');
  const out = takeFlag(args, '--out');
  const latency = Number(takeFlag(args, '--context7-latency-ms') ?? '20');
  if (!(latency >= 0)) throw new Error('--context7-latency-ms must be a number >= 0');
  if (!args.includes('--report-dir')) {
    const scenario = args[args.indexOf('--scenario') + 1] ?? 'run';
    args.push('--report-dir', resolve('load', 'reports', `local-${scenario}-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  }
  const reportDir = resolve(args[args.indexOf('--report-dir') + 1]!);
  const stack = await startLocalStack({ context7LatencyMs: latency, log: (line) => process.stderr.write(`[load:local] ${line}\n`) });
  try {
    const env = { ...process.env, MEMORY_API_KEY: stack.memoryApiKey, LOAD_TEST_TOKEN: stack.loadTestToken };
    const code = await runLoad(['--base-url', stack.url, ...args], env, { out: (l) => console.log(l), err: (l) => console.error(l) });
    const summary = join(reportDir, 'summary.json');
    if (existsSync(summary)) {
      // Label the run with what it measured: this local service, and its own counters over the run.
      const written = readSummaryFile(summary);
      const counters = await stack.serviceMetrics().catch(() => ({}) as Record<string, number>);
      written.environment = {
        ...written.environment,
        service: `local (load:local): Context7 emulator with ${latency} ms added latency, SQLite, in-process cache, Node ${process.version}`,
        ...Object.fromEntries(Object.entries(counters).map(([k, v]) => [`service.${k}`, v])),
      };
      writeFileSync(summary, `${JSON.stringify(written, null, 2)}\n`);
      writeFileSync(join(reportDir, 'report.md'), renderMarkdownReport(written));
    }
    if (out && existsSync(summary)) {
      mkdirSync(dirname(resolve(out)), { recursive: true });
      copyFileSync(summary, resolve(out));
      console.log(`copied ${summary} to ${out}`);
    }
    return code;
  } finally {
    await stack.stop();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`load:local: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 2;
  },
);
