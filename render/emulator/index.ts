export { startRenderEmulator, type RenderEmulator, type RenderEmulatorOptions, type RenderEmulatorState, type EmulatedService } from './server';
export type { EmulatorFaults, RateLimitFault, ServerErrorFault } from './faults';
export type { LocalPlatformOptions, InstanceInfo, RolloutInfo, ServicePlatformInfo } from './local-platform';
export type { LoadBalancerCounters } from './load-balancer';
export { RenderSpecValidator } from './spec-validator';
