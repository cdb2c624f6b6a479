// Render API types, derived from the generated OpenAPI declarations (npm run render:types).
import type { components } from './openapi/render-api';

type Schemas = components['schemas'];

export type Owner = Schemas['owner'];
export type ServiceCreateBody = Schemas['servicePOST'];
export type ServicePatch = Schemas['servicePATCH'];
export type Service = Schemas['service'];
export type ServiceAndDeploy = Schemas['serviceAndDeploy'];
export type ServiceType = Schemas['serviceType'];
export type Region = Schemas['region'];
export type EnvVar = Schemas['envVar'];
export type EnvVarInput = Schemas['envVarInput'];
export type Deploy = Schemas['deploy'];
export type CustomDomain = Schemas['customDomain'];
export type ServiceInstance = Schemas['serviceInstance'];
export type DeployStatus = Schemas['deployStatus'];
export type PostgresCreateBody = Schemas['postgresPOSTInput'];
export type PostgresDetail = Schemas['postgresDetail'];
export type PostgresConnectionInfo = Schemas['postgresConnectionInfo'];
export type KeyValueCreateBody = Schemas['keyValuePOSTInput'];
export type KeyValueDetail = Schemas['keyValueDetail'];
export type KeyValueConnectionInfo = Schemas['keyValueConnectionInfo'];
export type DatabaseStatus = Schemas['databaseStatus'];
export type RenderErrorBody = Schemas['error'];

/** Body of POST /services/{serviceId}/deploys (inline in the spec). */
export type TriggerDeployBody = {
  clearCache?: 'clear' | 'do_not_clear';
  commitId?: string;
  imageUrl?: string;
};

/** Terminal deploy states that mean the deploy did not go live. */
export const FAILED_DEPLOY_STATUSES: readonly DeployStatus[] = [
  'build_failed',
  'update_failed',
  'canceled',
  'pre_deploy_failed',
];

/** Deploy states in which a deploy is still on its way to `live`. */
export const IN_FLIGHT_DEPLOY_STATUSES: readonly DeployStatus[] = [
  'created',
  'queued',
  'build_in_progress',
  'update_in_progress',
  'pre_deploy_in_progress',
];


/** One log line of GET /logs (written out: the generated type of this response does not resolve). */
export interface LogEntry {
  id: string;
  message: string;
  timestamp: string;
  labels: { name: LogLabelName; value: string }[];
}
export type LogLabelName =
  | 'resource' | 'instance' | 'host' | 'statusCode' | 'method' | 'level' | 'workflowService' | 'workflowVeresion'
  | 'task' | 'taskRun' | 'type' | 'text' | 'path' | 'blocked';
/** GET /logs: one page of log lines, with the time range of the next page. */
export interface LogsPage {
  hasMore: boolean;
  nextStartTime: string;
  nextEndTime: string;
  logs: LogEntry[];
}
/** GET /metrics/{http-requests,http-latency,memory}: time series, one per label set. */
export type MetricSeries = {
  labels: { field: string; value: string }[];
  values: { timestamp: string; value: number; unit: string }[];
  unit: string;
}[];
