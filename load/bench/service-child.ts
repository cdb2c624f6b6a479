/**
 * The memory service for bench:load, from its composition root, on loopback only (service/main.ts
 * binds 0.0.0.0 for Render). Config comes from the environment like `npm start`. Prints one JSON
 * line {"event":"load-bench-service-listening","url"} when ready; SIGTERM stops it gracefully.
 */
import { createMemoryService } from '../../service/compose';
import { loadConfig } from '../../service/config';

async function main(): Promise<void> {
  const service = createMemoryService(loadConfig(), { enableSchedule: false });
  const { url } = await service.start(0, '127.0.0.1');
  process.stdout.write(`${JSON.stringify({ event: 'load-bench-service-listening', url })}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    service.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`load bench service failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
