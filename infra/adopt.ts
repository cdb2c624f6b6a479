/**
 * `npm run infra:adopt -- --stack production [--dir .]`: finds the team's existing Render resources by the names the
 * stack gives them (the web service, its Postgres and its Key Value) through the Render API (RENDER_API_KEY, and
 * RENDER_API_URL / RENDER_OWNER_ID if needed), checks each is what the stack describes, and prints the exact
 * `pulumi config set` lines that adopt them, then what the first `pulumi up` after adoption will change.
 * The output is a shell script: notes are `#` comments. Exit 0 = nothing in the way, 1 = a resource does not match
 * (or a name is ambiguous), 64 = usage. `infra:check` stays offline; this one needs the API.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RenderClient } from '../render/client';
import type { Service } from '../render/types';
import { rawConfigFromStackFile } from './check';
import { parseStackConfig, PROJECT, type StackConfig, StackConfigError } from './config';
import { type AdoptionMismatch, ADOPTION_KEYS } from './providers/adoption';
import { keyValueAdoptionMismatches, postgresAdoptionMismatches } from './providers/datastores';
import { resolveRenderCredentials } from './providers/render-access';
import { webServiceAdoptionMismatches, type WebServiceInputs } from './providers/web-service';
import { SERVICE_RUNTIME } from './service-runtime';
import { parseStackArgs } from './stack-args';

export interface AdoptResult {
  code: number;
  lines: string[];
}

type Kind = keyof typeof ADOPTION_KEYS;

interface Found {
  kind: Kind;
  label: string;
  name: string;
  ids: string[];
  mismatches: AdoptionMismatch[];
  /** What the first `pulumi up` after adoption changes (web service only). */
  changes: string[];
}

/** The names the stack gives its resources (the providers' `name` inputs). */
export function stackResourceNames(config: StackConfig): Record<Kind, string> {
  return {
    webService: config.serviceName,
    postgres: config.postgresName ?? `${config.serviceName}-db`,
    keyValue: config.keyValueName ?? `${config.serviceName}-kv`,
  };
}

/** Pure: what the first `pulumi up` after adopting `service` changes on it (the settings the stack manages). */
export function pendingServiceChanges(service: Service, liveEnv: Readonly<Record<string, string>>, config: StackConfig): string[] {
  const details = service.serviceDetails as { plan?: string; numInstances?: number };
  const out: string[] = [];
  if (details.plan !== config.plan) out.push(`plan ${details.plan ?? '?'} -> ${config.plan}`);
  if ((details.numInstances ?? 1) !== config.instances) out.push(`instances ${details.numInstances ?? 1} -> ${config.instances}`);
  const autoDeploy = config.environment !== 'production';
  if ((service.autoDeploy === 'yes') !== autoDeploy) out.push(`autoDeploy ${service.autoDeploy} -> ${autoDeploy ? 'yes' : 'no'}`);
  const watched: Record<string, string> = {
    ENABLE_CONTEXT7_MEMORY: String(config.enableContext7Memory),
    CONTEXT7_EXPOSURE_PERCENT: String(config.context7ExposurePercent),
  };
  for (const [key, value] of Object.entries(watched)) {
    if (liveEnv[key] !== value) out.push(`${key} ${liveEnv[key] ?? '(unset)'} -> ${value}`);
  }
  out.push('the env vars the stack declares are set (the others stay), then one deploy ' +
    (config.pinnedCommit ? `of the pinned commit ${config.pinnedCommit}` : autoDeploy ? 'of the branch head' : 'of the commit it runs now'));
  return out;
}

export async function adopt(stack: string, dir: string, env: Readonly<Record<string, string | undefined>>): Promise<AdoptResult> {
  const file = join(dir, `Pulumi.${stack}.yaml`);
  if (!existsSync(file)) return { code: 64, lines: [`${file} does not exist (pulumi stack init ${stack})`] };
  let config: StackConfig;
  try {
    config = parseStackConfig(rawConfigFromStackFile(stack, readFileSync(file, 'utf8')));
  } catch (err) {
    if (err instanceof StackConfigError) return { code: 1, lines: [err.message] };
    throw err;
  }
  let credentials;
  try {
    credentials = resolveRenderCredentials(undefined, env);
  } catch (err) {
    return { code: 64, lines: [`${(err as Error).message.replace(/, or run .*/, '')} (infra:adopt reads the environment only)`] };
  }
  const client = new RenderClient({ apiKey: credentials.apiKey, ...(credentials.baseUrl ? { baseUrl: credentials.baseUrl } : {}) });
  let ownerId = credentials.ownerId;
  if (!ownerId) {
    const owners = await client.listOwners();
    if (owners.length !== 1) {
      return { code: 64, lines: [`The Render API key sees ${owners.length} workspaces (${owners.map((o) => `${o.id} ${o.name}`).join(', ')}): export RENDER_OWNER_ID=<id>`] };
    }
    ownerId = owners[0]!.id;
  }
  const names = stackResourceNames(config);
  const webInputs: WebServiceInputs = {
    name: names.webService, region: config.region, plan: config.plan, instances: config.instances, runtime: SERVICE_RUNTIME.runtime,
    repo: config.repo, branch: config.branch, autoDeploy: config.environment !== 'production', buildCommand: '', startCommand: '',
    healthCheckPath: '', preDeployCommand: '', maxShutdownDelaySeconds: config.maxShutdownDelaySeconds, envVars: {},
    waitForLive: true, deployTimeoutMinutes: config.deployTimeoutMinutes, stack,
  };

  const found: Found[] = [];
  const services = await client.findServicesByName(names.webService, { ownerId });
  const service = services.length === 1 ? services[0]! : undefined;
  found.push({
    kind: 'webService', label: 'web service', name: names.webService, ids: services.map((s) => s.id),
    mismatches: service ? webServiceAdoptionMismatches(service, webInputs, ownerId) : [],
    changes: service ? pendingServiceChanges(service, Object.fromEntries((await client.listEnvVars(service.id)).map((v) => [v.key, v.value])), config) : [],
  });
  const pgs = await client.findPostgresByName(names.postgres, { ownerId });
  found.push({
    kind: 'postgres', label: 'Postgres', name: names.postgres, ids: pgs.map((d) => d.id),
    mismatches: pgs.length === 1
      ? postgresAdoptionMismatches(pgs[0]!, {
          name: names.postgres, region: config.region, plan: config.postgresPlan, version: config.postgresVersion,
          databaseName: config.postgresDatabaseName, databaseUser: config.postgresDatabaseUser,
          highAvailability: config.postgresHighAvailability, availableTimeoutMinutes: 20, stack,
        }, ownerId)
      : [],
    changes: [],
  });
  const kvs = await client.findKeyValueByName(names.keyValue, { ownerId });
  found.push({
    kind: 'keyValue', label: 'Key Value', name: names.keyValue, ids: kvs.map((d) => d.id),
    mismatches: kvs.length === 1
      ? keyValueAdoptionMismatches(kvs[0]!, {
          name: names.keyValue, region: config.region, plan: config.keyValuePlan, maxmemoryPolicy: config.keyValueMaxmemoryPolicy,
          availableTimeoutMinutes: 10, stack,
        }, ownerId)
      : [],
    changes: [],
  });

  const lines = [`# infra:adopt for stack "${stack}" (workspace ${ownerId})`];
  let blocked = false;
  for (const item of found) {
    const key = `${PROJECT}:${ADOPTION_KEYS[item.kind]}`;
    if (item.ids.length === 0) {
      lines.push(`# ${item.label} "${item.name}": none on Render: the stack will create it (or set ${key} to adopt one by id)`);
      continue;
    }
    if (item.ids.length > 1) {
      blocked = true;
      lines.push(`# ${item.label} "${item.name}": ${item.ids.length} found (${item.ids.join(', ')}): choose one and run: pulumi config set ${key} <id> -s ${stack}`);
      continue;
    }
    const id = item.ids[0]!;
    if (item.mismatches.length > 0) {
      blocked = true;
      lines.push(`# ${item.label} "${item.name}" (${id}) is not what the stack describes; make the stack match first:`);
      for (const m of item.mismatches) lines.push(`#   ${m.field}: Render has "${m.live}", the stack says "${m.stack}": ${m.fix}`);
    }
    lines.push(`pulumi config set ${key} ${id} -s ${stack}`);
    if (item.changes.length > 0) {
      lines.push(`#   adopting changes nothing; the first \`pulumi up\` after it changes: ${item.changes.join('; ')}`);
    }
  }
  if (config.environment === 'production' && config.enableContext7Memory && config.pinnedCommit === undefined) {
    lines.push(`# production: adopt with the flag off (pulumi config set ${PROJECT}:enableContext7Memory false -s ${stack}); the staging canary's promotion turns it on`);
  }
  return { code: blocked ? 1 : 0, lines };
}

async function main(argv: string[]): Promise<number> {
  const args = parseStackArgs(argv, 'usage: RENDER_API_KEY=... npm run infra:adopt -- --stack <staging|production> [--dir <project dir>]');
  if (!args.ok) {
    process.stderr.write(`${args.message}\n`);
    return 64;
  }
  const { stack, dir } = args;
  const result = await adopt(stack, dir, process.env);
  (result.code === 64 ? process.stderr : process.stdout).write(`${result.lines.join('\n')}\n`);
  return result.code;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`infra:adopt failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
