/**
 * The memory service's POST /services body (infra/service-runtime.ts), built once for the rehearsal and the tests
 * that create services straight through the Render API: it matches Render's OpenAPI spec, single or as a fleet.
 */
import { describe, expect, it } from 'vitest';
import { memoryServiceCreateBody, SERVICE_RUNTIME } from '../../infra/service-runtime';
import { RenderSpecValidator } from '../../render/emulator';

const validator = new RenderSpecValidator();
const envVars = [{ key: 'ENABLE_CONTEXT7_MEMORY', value: 'false' }];

describe('memoryServiceCreateBody', () => {
  it('one instance: the runtime, health check, build and start commands, and the env vars as given', () => {
    const body = memoryServiceCreateBody({ name: 'memory-staging', ownerId: 'tea-1', envVars });
    expect(validator.validateRequestBody('post', '/services', body)).toEqual({ ok: true, message: '' });
    expect(body).toEqual({
      type: 'web_service',
      name: 'memory-staging',
      ownerId: 'tea-1',
      serviceDetails: {
        runtime: 'node',
        healthCheckPath: SERVICE_RUNTIME.healthCheckPath,
        envSpecificDetails: { buildCommand: SERVICE_RUNTIME.buildCommand, startCommand: SERVICE_RUNTIME.startCommand },
      },
      envVars,
    });
  });

  it('a fleet: N instances, the migration as the pre-deploy command, the shutdown delay; still valid', () => {
    const body = memoryServiceCreateBody({ name: 'memory-production', ownerId: 'tea-1', envVars, fleet: { instances: 2, maxShutdownDelaySeconds: 30 } });
    expect(validator.validateRequestBody('post', '/services', body)).toEqual({ ok: true, message: '' });
    expect(body.serviceDetails).toMatchObject({ numInstances: 2, preDeployCommand: SERVICE_RUNTIME.preDeployCommand, maxShutdownDelaySeconds: 30 });
    // The validator does refuse what Render would: a shutdown delay past its limit.
    const tooLong = memoryServiceCreateBody({ name: 'memory-production', ownerId: 'tea-1', envVars, fleet: { instances: 2, maxShutdownDelaySeconds: 301 } });
    expect(validator.validateRequestBody('post', '/services', tooLong).ok).toBe(false);
  });
});
