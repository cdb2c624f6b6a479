/**
 * Entry point (`npm start`): config from the environment, start, and a graceful stop on SIGTERM/SIGINT.
 */
import { ConfigError, loadConfig } from './config';
import { createMemoryService, SHUTDOWN_DEADLINE_MS } from './compose';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${JSON.stringify({ level: 'fatal', tag: '[MEMORY_ERROR]', msg: `[MEMORY_ERROR] ${error.message}` })}\n`);
      process.exit(1);
    }
    throw error;
  }
  const service = createMemoryService(config);
  // Render routes traffic to 0.0.0.0:$PORT (HOST defaults to it).
  try {
    await service.start(config.port, config.host);
  } catch (error) {
    // E.g. the store never answered within DATABASE_START_TIMEOUT_MS: say so, flush, exit non-zero.
    service.logger.memoryError.error(`Startup failed: ${error instanceof Error ? error.message : String(error)}`);
    service.logger.flush();
    process.exit(1);
  }

  let signalled = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    service.logger.memory.info(`${signal} received: draining in-flight requests and shutting down`, {
      deadlineMs: SHUTDOWN_DEADLINE_MS,
    });
    // Backstop under Render's 30 s maxShutdownDelaySeconds: every step of stop() is bounded, but a wait nobody
    // foresaw must not turn a deploy into a SIGKILL.
    const backstop = setTimeout(() => {
      service.logger.memoryError.error(`Shutdown did not finish within ${SHUTDOWN_DEADLINE_MS} ms: exiting now`);
      service.logger.flush();
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    backstop.unref();
    service.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        service.logger.memoryError.error('Shutdown failed', { errorMessage: String(error) });
        service.logger.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // A stray rejected promise is logged, not fatal: the runbook promises the service stays up.
  process.on('unhandledRejection', (reason) => {
    service.logger.memoryError.error('Unhandled promise rejection', { errorMessage: reason instanceof Error ? reason.message : String(reason) });
  });
  // An exception that escaped every handler leaves unknown state: log it, flush, and let Render restart us.
  process.on('uncaughtException', (error) => {
    service.logger.memoryError.error('Uncaught exception, exiting', { errorName: error.name, errorMessage: error.message });
    service.logger.flush();
    process.exit(1);
  });
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  // The stack names the .ts lines: the compiled service runs with --enable-source-maps.
  const stack = error instanceof Error && error.stack ? { stack: error.stack } : {};
  process.stderr.write(`${JSON.stringify({ level: 'fatal', tag: '[MEMORY_ERROR]', msg: `[MEMORY_ERROR] Startup failed: ${message}`, ...stack })}\n`);
  process.exit(1);
});
