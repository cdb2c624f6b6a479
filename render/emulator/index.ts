export { startRenderEmulator, type RenderEmulator, type RenderEmulatorOptions, type RenderEmulatorState, type EmulatedService } from './server';
export type { EmulatorFaults, RateLimitFault, ServerErrorFault } from './faults';
export type { LocalPlatformOptions, InstanceInfo } from './local-platform';
export { RenderSpecValidator } from './spec-validator';
