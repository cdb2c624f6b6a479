/**
 * The Pulumi program for both stacks (`pulumi up -s staging|production`). It reads the config once,
 * refuses what the guards refuse (at preview time, before anything is declared), then declares one
 * MemoryServiceStack. Pulumi.staging.yaml and Pulumi.production.yaml hold the differences.
 */
import { defineStack } from './program';

const outputs = defineStack();

export const serviceUrl = outputs.serviceUrl;
export const serviceId = outputs.serviceId;
export const dashboardUrl = outputs.dashboardUrl;
export const environment = outputs.environment;
export const flagEnabled = outputs.flagEnabled;
export const deployedCommit = outputs.deployedCommit;
export const callerKeyNames = outputs.callerKeyNames;
export const exposureCeilingPercent = outputs.exposureCeilingPercent;
// An exposure override in use is reported on every preview and kept here, in the stack's update history.
export const guardNotices = outputs.guardNotices;
// Secret: feed one to CANARY_MEMORY_API_KEY / MEMORY_API_KEY with `pulumi stack output --show-secrets callerKeySecrets`.
export const callerKeySecrets = outputs.callerKeySecrets;
