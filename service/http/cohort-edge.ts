/**
 * The HTTP edge of the exposure cohorts' figures (domain/cohort-metrics.ts): the same measurement for treatment and
 * control. Latency runs from the route's first handler (after the rate limiter, before authentication and body
 * parsing) to the end of the response, with the status the response was given, whichever layer set it. A request
 * counts once its scope id is valid, the caller may use it and it carries no credential of this service; its work
 * then runs inside its cohort, so fallbacks and Context7 calls recorded deep inside know it.
 * Every such request is also counted per exposure cluster (domain/exposure-clusters.ts), in the slot `off` while
 * the flag is off: the figures a cluster had before a step exposed it. One sha256 per request gives the cohort,
 * the cluster and the new-scope bit alike.
 */
import type { RequestHandler, Response } from 'express';
import { withinCohort, type CohortRequestOutcome, type ExposurePercentSource } from '../domain/cohort-metrics';
import { exposureHashes } from '../domain/exposure';
import { clusterOfBucket, type ClusterSlot } from '../domain/exposure-clusters';
import { isProbeScopeId } from '../domain/scope-id';

export interface CohortEdgeDeps {
  /** ENABLE_CONTEXT7_MEMORY: with it off requests count per cluster in the slot `off`, in no cohort. */
  flagOn: boolean;
  exposure: ExposurePercentSource;
  record(slot: ClusterSlot, outcome: CohortRequestOutcome): void;
  /** Monotonic ms. */
  now?: () => number;
}

export interface CohortEdge {
  /** First handler of a measured route: notes when the request arrived. */
  arrival: RequestHandler;
  /** Counts the request in its scope's cohort and cluster (probe scopes: neither) and runs its work inside that cohort. */
  measure<T>(res: Response, scopeId: string, kind: 'read' | 'write', work: () => Promise<T>): Promise<T>;
  /**
   * A read measured as `measure` measures it, whose answer may be ready at once (a cache hit): `now` runs first, in
   * the request's cohort, and its answer is returned as it is; when it has none (undefined), `work` runs as in
   * `measure`. Counted once either way.
   */
  measureRead<T extends object>(res: Response, scopeId: string, now: () => T | undefined, work: () => Promise<T>): T | Promise<T>;
}

const ARRIVAL = Symbol('cohort-edge arrival');
const COUNTED = Symbol('cohort-edge counted request');
/** Scopes whose exposure hashes are kept (a few hundred KB at most). */
const KNOWN_HASHES_MAX = 4096;
type Stamped = Response & { [ARRIVAL]?: number; [COUNTED]?: Counted };

function snippetCount(result: unknown): number {
  const snippets = (result as { snippets?: unknown } | null | undefined)?.snippets;
  return Array.isArray(snippets) ? snippets.length : 0;
}

export function createCohortEdge(deps: CohortEdgeDeps): CohortEdge {
  const now = deps.now ?? (() => performance.now());
  // Reused for every request (the edge runs synchronously up to withinCohort): no array per request.
  const hashes = new Uint32Array(2);
  // A scope's bucket and hash never change: the recent scopes' are kept, packed in one number (bucket * 2^32 + hash),
  // so a scope's repeated requests skip the sha256 (issue 29's fourth round). Bounded: cleared when full.
  const knownHashes = new Map<string, number>();
  function hashesOf(scopeId: string): number {
    const known = knownHashes.get(scopeId);
    if (known !== undefined) return known;
    exposureHashes(scopeId, hashes);
    const packed = hashes[0]! * 2 ** 32 + hashes[1]!;
    if (knownHashes.size >= KNOWN_HASHES_MAX) knownHashes.clear();
    knownHashes.set(scopeId, packed);
    return packed;
  }
  /** Counts the request (its `close` listener) and says how its work runs; null for a probe scope (not counted). */
  function counted(res: Response, scopeId: string, kind: 'read' | 'write'): Counted | null {
    if (isProbeScopeId(scopeId)) return null;
    const packed = hashesOf(scopeId);
    const bucket = Math.floor(packed / 2 ** 32);
    const scopeHash = packed % 2 ** 32;
    const cluster = clusterOfBucket(bucket);
    const slot: ClusterSlot = !deps.flagOn ? 'off' : bucket < Math.round(deps.exposure.percent() * 100) ? 'treatment' : 'control';
    const request: Counted = { slot, cluster, snippets: 0, read: kind === 'read', arrivedAt: (res as Stamped)[ARRIVAL] ?? now(), scopeHash };
    // 'close' comes once per response: right after 'finish' when it was sent, or when it was cut off. One listener,
    // not one per event plus a guard, and the same function for every request, its request's figures on the response
    // (issue 29's profiles: this runs on every memory request).
    (res as Stamped)[COUNTED] = request;
    res.on('close', recordClosed);
    return request;
  }

  function recordClosed(this: Response): void {
    const request = (this as Stamped)[COUNTED];
    if (!request) return;
    (this as Stamped)[COUNTED] = undefined;
    const { slot, read, arrivedAt, cluster, scopeHash, snippets } = request;
    deps.record(slot, { read, status: this.statusCode, latencyMs: now() - arrivedAt, cluster, scopeHash, snippets });
  }

  function run<T>(request: Counted, work: () => T): T {
    return request.slot === 'off' ? work() : withinCohort(request.slot, work, request.cluster);
  }

  /**
   * A read's snippets are counted (Month 1's A/B figures) once its work returns, before the response closes: one
   * `then` on the work's promise, not another async function around it (issue 29's second profile: the wrapper was
   * an extra promise, two more microtask hops and a named closure per read).
   */
  function countingSnippets<T>(request: Counted, running: Promise<T>): Promise<T> {
    return running.then((result) => {
      request.snippets = snippetCount(result);
      return result;
    });
  }

  return {
    arrival: (_req, res, next) => {
      (res as Stamped)[ARRIVAL] = now();
      next();
    },
    measure(res, scopeId, kind, work) {
      const request = counted(res, scopeId, kind);
      if (!request) return work();
      const running = run(request, work);
      return kind === 'read' ? countingSnippets(request, running) : running;
    },
    measureRead(res, scopeId, answerNow, work) {
      const request = counted(res, scopeId, 'read');
      if (!request) return answerNow() ?? work();
      const answered = run(request, answerNow);
      if (answered === undefined) return countingSnippets(request, run(request, work));
      request.snippets = snippetCount(answered);
      return answered;
    },
  };
}

interface Counted {
  slot: ClusterSlot;
  cluster: number;
  snippets: number;
  read: boolean;
  /** Monotonic ms: the route's first handler, or when the request was counted. */
  arrivedAt: number;
  scopeHash: number;
}
