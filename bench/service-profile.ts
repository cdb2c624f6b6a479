/**
 * CPU profiles of the service process for `npm run bench:service -- --profile`: where a request's CPU time goes.
 *
 * The service child records a V8 CPU profile (node:inspector, the same profiler as `node --cpu-prof`) while one
 * case runs, after its warm-up, so start-up and JIT warm-up stay out of it. Each sample is given to one step of
 * the request: walking its stack from the leaf up, the first frame that a step claims decides (so the crypto
 * under caller auth counts as caller auth, the socket write under res.json as the socket write, a log line's
 * serialization under the domain as logging). Samples per step, times the sampling interval, divided by the
 * requests answered while it ran, give microseconds of CPU per request.
 */
import { Session } from 'node:inspector/promises';

export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  startTime: number;
  endTime: number;
}

/** Starts the profiler in this process; the returned function stops it and gives the profile. */
export async function startCpuProfile(samplingIntervalUs: number): Promise<() => Promise<CpuProfile>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    await session.post('Profiler.disable');
    session.disconnect();
    return profile as unknown as CpuProfile;
  };
}

type Frame = CpuProfile['nodes'][number]['callFrame'];

/** A request's steps, in the order they are printed. A frame is claimed by the first step whose test matches it. */
export const STEPS: { step: string; claims: (frame: Frame) => boolean }[] = [
  { step: 'garbage collection', claims: (f) => f.functionName === '(garbage collector)' },
  {
    step: 'logging ([CACHE] lines: pino, redact, scrub, write)',
    claims: (f) => /node_modules\/(pino|sonic-boom|@pinojs|fast-redact|thread-stream|on-exit-leak-free)\/|service\/logging\.ts/.test(f.url),
  },
  {
    step: 'socket write (the response bytes)',
    claims: (f) =>
      (f.url === '' && /^(writeUtf8String|writeLatin1String|writeBuffer|writev)$/.test(f.functionName)) ||
      /^node:(net|internal\/stream_base_commons)$/.test(f.url),
  },
  { step: 'node:http (parse request, frame response)', claims: (f) => /^node:_http_/.test(f.url) },
  { step: 'res.json / res.send (Express)', claims: (f) => /node_modules\/express\/lib\/response\.js/.test(f.url) },
  {
    step: 'request body (express.json)',
    claims: (f) =>
      /node_modules\/(body-parser|raw-body|content-type|iconv-lite|type-is|media-typer|mime-types|mime-db|bytes|http-errors|unpipe)\//.test(f.url) ||
      /^node:internal\/streams\//.test(f.url) ||
      f.functionName === 'jsonBody',
  },
  { step: 'routing (Express router)', claims: (f) => /node_modules\/(router|express|parseurl|finalhandler|path-to-regexp|depd|debug|encodeurl|on-finished|ee-first)\//.test(f.url) },
  { step: 'connection tracking (drain.ts)', claims: (f) => /service\/http\/drain\.ts/.test(f.url) },
  {
    step: 'caller auth (failure limiter, Bearer key, sha256)',
    claims: (f) => /service\/http\/(caller-auth|bearer|auth-failure-limiter)\.ts|service\/domain\/caller-keys\.ts|node_modules\/(express-rate-limit|proxy-addr|forwarded|ipaddr\.js)\//.test(f.url),
  },
  {
    step: 'validation (zod, scope id, text checks)',
    claims: (f) => /node_modules\/zod\/|service\/domain\/(scope-id|storable-input|patterns)\.ts|service\/contracts\//.test(f.url) || /^parse(Scoped)?Body$/.test(f.functionName),
  },
  { step: 'own-credential check', claims: (f) => /service\/domain\/own-credentials\.ts/.test(f.url) },
  {
    step: 'exposure cohort (bucket hash, edge counters, histogram)',
    claims: (f) => /service\/(http\/cohort-edge|domain\/(cohort-metrics|exposure|latency-bins))\.ts/.test(f.url),
  },
  { step: 'metrics counters', claims: (f) => /service\/domain\/(metrics|prometheus)\.ts|node_modules\/prom-client\//.test(f.url) },
  { step: 'snippet cache (LRU)', claims: (f) => /service\/cache\/|node_modules\/lru-cache\//.test(f.url) },
  {
    step: 'Context7 client (axios, breaker, schema check)',
    claims: (f) => /service\/context7\/|node_modules\/(axios|cockatiel|ajv|ajv-formats|follow-redirects|form-data|proxy-from-env|fast-uri|fast-deep-equal)\//.test(f.url),
  },
  { step: 'local store (SQLite)', claims: (f) => /service\/data-access\/|node_modules\/better-sqlite3\//.test(f.url) },
  { step: 'domain read (memory.ts)', claims: (f) => /service\/domain\/memory\.ts/.test(f.url) },
  { step: 'route handler (app.ts / the bare route)', claims: (f) => /service\/http\/app\.ts|bench\/service-child\.ts/.test(f.url) },
  {
    step: 'promises, events, timers, async context',
    claims: (f) => /^node:(events|timers|async_hooks|internal\/(process\/task_queues|timers|async_context_frame|async_local_storage|async_hooks))/.test(f.url) || f.functionName === 'runMicrotasks',
  },
];
export const OTHER_STEP = 'other (V8 runtime, crypto internals, unattributed)';

export interface ProfileBreakdown {
  /** Microseconds of CPU per request, per step (STEPS order, then OTHER_STEP). */
  perRequestUs: Map<string, number>;
  busyUsPerRequest: number;
  /** Share of the profiled wall time the process was idle. */
  idleShare: number;
  /** The functions with the most samples of their own, per request. */
  topSelf: { label: string; us: number }[];
}

export function breakdown(profile: CpuProfile, requests: number, top = 12): ProfileBreakdown {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const sampleUs = (profile.endTime - profile.startTime) / Math.max(1, profile.samples.length);
  const perNode = new Map<number, number>();
  for (const id of profile.samples) perNode.set(id, (perNode.get(id) ?? 0) + 1);

  const stepSamples = new Map<string, number>([...STEPS.map((s) => [s.step, 0] as [string, number]), [OTHER_STEP, 0]]);
  const selfSamples = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  for (const [id, count] of perNode) {
    const leaf = nodes.get(id)!.callFrame;
    if (leaf.functionName === '(idle)') {
      idle += count;
      continue;
    }
    busy += count;
    let step = OTHER_STEP;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const claimed = STEPS.find((s) => s.claims(nodes.get(cur!)!.callFrame));
      if (claimed) {
        step = claimed.step;
        break;
      }
    }
    stepSamples.set(step, stepSamples.get(step)! + count);
    const label = `${leaf.functionName || '(anonymous)'} ${leaf.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(service|bench)\//, '$1/')}`;
    selfSamples.set(label, (selfSamples.get(label) ?? 0) + count);
  }
  const usPerRequest = (samples: number) => (samples * sampleUs) / Math.max(1, requests);
  return {
    perRequestUs: new Map([...stepSamples].map(([step, samples]) => [step, usPerRequest(samples)])),
    busyUsPerRequest: usPerRequest(busy),
    idleShare: idle / Math.max(1, idle + busy),
    topSelf: [...selfSamples]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([label, samples]) => ({ label, us: usPerRequest(samples) })),
  };
}
