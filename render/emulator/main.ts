// CLI: npm run render:emulator -- --port N --api-key K [--local-platform --source git|working-tree] [--cwd DIR] [--log-dir DIR] [--deploy-step-ms N]
// Prints one JSON line ({"url": ".../v1", ...}) once listening; stops (and kills local services) on SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import { startRenderEmulator } from './server';

function fail(message: string): never {
  process.stderr.write(`render-emulator: ${message}\n`);
  process.exit(64);
}

function nonNegativeInt(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) fail(`${name} must be a non-negative integer`);
  return value;
}

/** Every flag the CLI accepts (render/README.md documents each; a test keeps the two in step). */
export const RENDER_EMULATOR_FLAGS = {
  port: { type: 'string' },
  'api-key': { type: 'string' },
  'local-platform': { type: 'boolean', default: false },
  cwd: { type: 'string' },
  // What deploys run: the commits of this git repository (default: --cwd), or 'working-tree' (the checkout as it is).
  source: { type: 'string' },
  'log-dir': { type: 'string' },
  'deploy-step-ms': { type: 'string' },
  'ready-timeout-ms': { type: 'string' },
} as const;

/** --source git (the commits of --cwd's repository) or --source working-tree (--cwd as it is): a choice, never a default. */
function localSource(value: string | undefined, cwd: string): 'working-tree' | { gitRepo: string } {
  if (value === 'working-tree') return 'working-tree';
  if (value === 'git') return { gitRepo: cwd };
  return fail(`--local-platform needs --source git (deploys run the commit they ask for, from --cwd's git repository) or --source working-tree (--cwd as it is, whatever the commit)`);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({ options: RENDER_EMULATOR_FLAGS, strict: true }));
  } catch (err) {
    fail((err as Error).message);
  }
  // The key may come from the environment so that it does not show up in `ps`.
  const apiKey = values['api-key'] ?? process.env.RENDER_API_KEY;
  if (!apiKey) fail('--api-key (or RENDER_API_KEY) is required');
  const port = nonNegativeInt(values.port, '--port', 0);
  if (port > 65535) fail('--port must be at most 65535');

  const emulator = await startRenderEmulator({
    port,
    apiKey,
    // Unset: Render-like phase times (RENDER_LIKE_DEPLOY_PHASES_MS, minutes per deploy).
    ...(values['deploy-step-ms'] !== undefined ? { deployStepMs: nonNegativeInt(values['deploy-step-ms'], '--deploy-step-ms', 0) } : {}),
    ...(values['local-platform']
      ? {
          localPlatform: {
            cwd: values.cwd ?? process.cwd(),
            source: localSource(values.source, values.cwd ?? process.cwd()),
            readyTimeoutMs: nonNegativeInt(values['ready-timeout-ms'], '--ready-timeout-ms', 30_000),
            ...(values['log-dir'] ? { logDir: values['log-dir'] } : {}),
          },
        }
      : {}),
  });
  process.stdout.write(
    `${JSON.stringify({ url: emulator.url, origin: emulator.origin, control: `${emulator.origin}/__emulator`, localPlatform: values['local-platform'], platformSource: emulator.platformSource, pid: process.pid })}\n`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`render-emulator: ${signal}, stopping\n`);
    emulator.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`render-emulator: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
