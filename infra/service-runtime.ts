/**
 * How Render runs the memory service. Pure data, so the demo and tests that run the service on the emulator's local
 * platform use the same commands without loading Pulumi.
 */
export const SERVICE_RUNTIME = {
  runtime: 'node',
  buildCommand: 'npm ci',
  // Render signals the start command's process on deploy; npm does not pass SIGTERM on to its script, so the
  // service would miss its graceful shutdown. exec makes the service itself that process.
  startCommand: 'exec node --import tsx service/main.ts',
  preDeployCommand: 'npm run migrate',
  healthCheckPath: '/readyz',
  port: '3000',
} as const;
