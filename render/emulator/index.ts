export {
  startRenderEmulator, RENDER_LIKE_DEPLOY_PHASES_MS, type DeployPhase, type RenderEmulator, type RenderEmulatorOptions, type RenderEmulatorState, type EmulatedService,
} from './server';
export type { EmulatorFaults, RateLimitFault, ServerErrorFault } from './faults';
export type { LocalPlatformOptions, LocalSource, InstanceInfo, RolloutInfo, ServicePlatformInfo } from './local-platform';
export type { LoadBalancerCounters } from './load-balancer';
export { RenderSpecValidator } from './spec-validator';
