/**
 * How Render runs the memory service. Pure data (and the create request built from it), so the demo and tests that
 * run the service on the emulator's local platform use the same commands without loading Pulumi.
 */
import type { EnvVarInput, ServiceCreateBody } from '../render/types';

export const SERVICE_RUNTIME = {
  runtime: 'node',
  // The Node version Render runs: its NODE_VERSION env var (set by the infra program) outranks every file. The
  // same version is in .node-version (read by Render too, and by scripts/node24.sh, which CI and the README use),
  // and package.json engines.node allows only the 24 line. test/infra/node-version.test.ts keeps them together.
  nodeVersion: '24.21.0',
  // The service's env has NODE_ENV=production, and Render's build sees it: npm ci would leave out the
  // devDependencies the build needs (esbuild), hence --include=dev. `npm run build` compiles dist/.
  buildCommand: 'npm ci --include=dev && npm run build',
  // Render signals the start command's process on deploy; npm does not pass SIGTERM on to its script, so the
  // service would miss its graceful shutdown. exec makes the service itself that process. Compiled JavaScript,
  // no TypeScript loader; source maps on, so stack traces name the .ts lines.
  startCommand: 'exec node --enable-source-maps dist/service/main.js',
  preDeployCommand: 'node --enable-source-maps dist/service/cli/migrate.js',
  healthCheckPath: '/readyz',
  port: '3000',
} as const;

/** A memory service created straight through the Render API (the rehearsal and the tests), not through Pulumi. */
export interface MemoryServiceSpec {
  name: string;
  ownerId: string;
  envVars: EnvVarInput[];
  /** N instances with the migration as the pre-deploy command, as the infra program declares a fleet */
  fleet?: { instances: number; maxShutdownDelaySeconds: number };
}

/**
 * The POST /services body for the memory service, typed against Render's OpenAPI spec. The local platform runs the
 * build command (compiling dist/), then the start command, as Render does. Render takes preDeployCommand at the
 * top of serviceDetails and answers with it inside envSpecificDetails.
 */
export function memoryServiceCreateBody(spec: MemoryServiceSpec): ServiceCreateBody {
  return {
    type: 'web_service',
    name: spec.name,
    ownerId: spec.ownerId,
    serviceDetails: {
      runtime: SERVICE_RUNTIME.runtime,
      healthCheckPath: SERVICE_RUNTIME.healthCheckPath,
      envSpecificDetails: { buildCommand: SERVICE_RUNTIME.buildCommand, startCommand: SERVICE_RUNTIME.startCommand },
      ...(spec.fleet
        ? { numInstances: spec.fleet.instances, preDeployCommand: SERVICE_RUNTIME.preDeployCommand, maxShutdownDelaySeconds: spec.fleet.maxShutdownDelaySeconds }
        : {}),
    },
    envVars: spec.envVars,
  };
}
