/**
 * CLI: npm run context7:emulator -- --port N [--host 127.0.0.1] [--api-key K] [--latency-ms N] [--error-rate X] [--seed N]
 * Prints one JSON line with the URL once listening (parents wait for it), and exits cleanly on SIGTERM/SIGINT.
 * The API key can also come from CONTEXT7_API_KEY; it is never printed.
 */
import { parseArgs } from 'node:util';
import { startContext7Emulator } from './emulator';

const USAGE =
  'usage: context7:emulator -- --port N [--host 127.0.0.1] [--api-key K] [--latency-ms N] [--error-rate 0..1] [--seed N]';

function fail(message: string): never {
  process.stderr.write(`${JSON.stringify({ event: 'error', message, usage: USAGE })}\n`);
  process.exit(2);
}

function integer(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) fail(`--${name} must be an integer in ${min}..${max}`);
  return value;
}

/** Every flag the CLI accepts (service/context7/README.md documents each; a test keeps the two in step). */
export const CONTEXT7_EMULATOR_FLAGS = {
  port: { type: 'string' },
  host: { type: 'string' },
  'api-key': { type: 'string' },
  'latency-ms': { type: 'string' },
  'error-rate': { type: 'string' },
  seed: { type: 'string' },
  help: { type: 'boolean' },
} as const;

async function main(): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ options: CONTEXT7_EMULATOR_FLAGS, strict: true }));
  } catch (error) {
    fail(error instanceof Error ? error.message : 'invalid arguments');
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const str = (name: string) => values[name] as string | undefined;
  const errorRateRaw = str('error-rate');
  const errorRate = errorRateRaw === undefined ? 0 : Number(errorRateRaw);
  if (!Number.isFinite(errorRate) || errorRate < 0 || errorRate > 1) fail('--error-rate must be a number in 0..1');
  const apiKey = str('api-key') ?? (process.env.CONTEXT7_API_KEY || undefined);

  const emulator = await startContext7Emulator({
    port: integer('port', str('port'), 0, 0, 65_535),
    host: str('host') ?? '127.0.0.1',
    ...(apiKey ? { apiKey } : {}),
    seed: integer('seed', str('seed'), 7, 0, 2 ** 32 - 1),
    faults: { latencyMs: integer('latency-ms', str('latency-ms'), 0, 0, 600_000), errorRate },
  }).catch((error: NodeJS.ErrnoException) => fail(`cannot listen: ${error.code ?? error.message}`));

  process.stdout.write(
    `${JSON.stringify({ event: 'listening', url: emulator.url, port: emulator.port, auth: apiKey ? 'bearer' : 'none', faults: emulator.faults() })}\n`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    emulator.close().then(
      () => {
        process.stdout.write(`${JSON.stringify({ event: 'stopped', signal })}\n`);
        process.exit(0);
      },
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (require.main === module) void main();
