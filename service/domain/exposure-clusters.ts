/**
 * Per-cluster counters of progressive exposure: what scope-clustered comparisons need (canary/exposure/clustered.ts),
 * fleet-wide, without one series per scope.
 *
 * - A cluster is 10 consecutive exposure buckets (exposure.ts: sha256 mod 10,000), so 1,000 clusters; the 5 % step
 *   exposes clusters 0..49, so even it has 50 treatment clusters. Scopes hash uniformly into buckets: a cluster is
 *   a random sample of scopes, and clusters are independent units (the unit of randomization is the scope).
 * - Counted per slot: treatment and control while the flag is on, and `off` while the flag is off. So every
 *   cluster has figures from before a step exposes it (its control or off figures): the pre-exposure covariate.
 * - Per cluster: requests, reads, 5xx, fallbacks, latency sum, snippets applied, reads with >= 1 snippet,
 *   Context7 calls and errors, and a latency sketch (fixed bins, SKETCH_EDGES_MS).
 * - New scopes per slot: a scope seen for the first time (a 2^20-bit map keyed by bits of the same sha256, not
 *   by the bucket) is counted in the slot of that request. Collisions undercount alike in every slot, so the
 *   treatment's share of a window's new scopes stays the applied percentage: what the sample-ratio check tests.
 *   That check counts each scope once, so a fleet must not add its instances' counts (behind a load balancer
 *   most scopes reach every instance: issue 23 saw 9 treatment scopes new in a window where only 8 exist).
 *   With `trackFirstSightings`, each first sighting is also queued for the fleet's own map
 *   (fleet/fleet-metrics.ts), which counts a scope only for the instance that sets its bit first.
 * O(1) per request, no allocation but that queue's slot on a first sighting: typed arrays indexed by slot and
 * cluster. Counters are monotonic (a window is the difference of two snapshots), and a fleet adds its instances'
 * tables cluster by cluster, new scopes apart.
 */
import { z } from 'zod';
import { EXPOSURE_BUCKETS } from './exposure';

export const CLUSTER_SIZE = 10;
export const CLUSTER_COUNT = EXPOSURE_BUCKETS / CLUSTER_SIZE;

export const CLUSTER_SLOTS = ['treatment', 'control', 'off'] as const;
export type ClusterSlot = (typeof CLUSTER_SLOTS)[number];

export const CLUSTER_FIELDS = [
  'requests',
  'reads',
  'serverErrors',
  'fallbacks',
  'latencyMsSum',
  'snippets',
  'readsWithSnippets',
  'context7Calls',
  'context7Errors',
] as const;
export type ClusterField = (typeof CLUSTER_FIELDS)[number];
const FIELD_COUNT = CLUSTER_FIELDS.length;
const F = Object.fromEntries(CLUSTER_FIELDS.map((field, index) => [field, index])) as Record<ClusterField, number>;

/** Upper edges of the latency sketch's bins, ms: 4 ms times sqrt(2)^k; the last bin is open. */
export const SKETCH_BINS = 20;
export const SKETCH_EDGES_MS: readonly number[] = Array.from({ length: SKETCH_BINS - 1 }, (_, k) => Math.round(4 * Math.SQRT2 ** k * 100) / 100);
const LOG_SQRT2 = Math.log(Math.SQRT2);

/** The sketch bin of a latency: 0 below 4 ms, then one per factor sqrt(2), the last one open. */
export function sketchBin(ms: number): number {
  if (!(ms >= 4)) return 0;
  const bin = Math.floor(Math.log(ms / 4) / LOG_SQRT2) + 1;
  return bin >= SKETCH_BINS ? SKETCH_BINS - 1 : bin;
}

export function clusterOfBucket(bucket: number): number {
  return Math.floor(bucket / CLUSTER_SIZE);
}

export const SEEN_BITS = 1 << 20;

/** A first sighting as one number: slot * SEEN_BITS + bit (what the fleet's map is told). */
export function packSighting(slot: number, bit: number): number {
  return slot * SEEN_BITS + bit;
}

export function slotIndex(slot: ClusterSlot): number {
  return slot === 'treatment' ? 0 : slot === 'control' ? 1 : 2;
}

/** This process's cluster tables. */
export class ClusterCounters {
  readonly values = new Float64Array(CLUSTER_SLOTS.length * CLUSTER_COUNT * FIELD_COUNT);
  readonly sketch = new Uint32Array(CLUSTER_SLOTS.length * CLUSTER_COUNT * SKETCH_BINS);
  readonly newScopes = new Float64Array(CLUSTER_SLOTS.length);
  private readonly seen = new Uint8Array(SEEN_BITS / 8);
  /** bumped at every change, so a flush re-encodes only when something moved */
  version = 0;
  /** first sightings not yet handed to the fleet (packSighting), while tracked; each bit enters once per process */
  private sightings: number[] | null = null;

  /**
   * Queues every later first sighting for takeFirstSightings: a fleet recorder's call, made before traffic (compose).
   * Off by default: a lone instance's counts are distinct already, and nobody would drain the queue.
   */
  trackFirstSightings(): void {
    this.sightings ??= [];
  }

  /** The first sightings since the last call, forgotten here: the caller delivers them or gives them back. */
  takeFirstSightings(): number[] {
    const taken = this.sightings ?? [];
    if (this.sightings) this.sightings = [];
    return taken;
  }

  /** Sightings a failed write did not deliver, queued again ahead of newer ones. */
  returnFirstSightings(sightings: number[]): void {
    if (this.sightings && sightings.length > 0) this.sightings = sightings.concat(this.sightings);
  }

  /**
   * One request (positional arguments: no object per request). `scopeHash`: 32 bits of the scope's sha256 apart
   * from its bucket (bytes 4..7); `snippets`: what a read returned.
   */
  recordRequest(slot: ClusterSlot, cluster: number, scopeHash: number, read: boolean, status: number, latency: number, snippets: number): void {
    const s = slotIndex(slot);
    if (!(cluster >= 0 && cluster < CLUSTER_COUNT)) return;
    const at = (s * CLUSTER_COUNT + cluster) * FIELD_COUNT;
    const v = this.values;
    v[at + F.requests]! += 1;
    if (read) {
      v[at + F.reads]! += 1;
      v[at + F.snippets]! += snippets;
      if (snippets > 0) v[at + F.readsWithSnippets]! += 1;
    }
    if (status >= 500) v[at + F.serverErrors]! += 1;
    const latencyMs = latency > 0 ? latency : 0;
    v[at + F.latencyMsSum]! += latencyMs;
    this.sketch[(s * CLUSTER_COUNT + cluster) * SKETCH_BINS + sketchBin(latencyMs)]! += 1;
    const bit = (scopeHash >>> 0) & (SEEN_BITS - 1);
    const mask = 1 << (bit & 7);
    if ((this.seen[bit >>> 3]! & mask) === 0) {
      this.seen[bit >>> 3]! |= mask;
      this.newScopes[s]! += 1;
      this.sightings?.push(packSighting(s, bit));
    }
    this.version++;
  }

  /** A treatment read answered from the store because Context7 failed. */
  recordFallback(cluster: number): void {
    if (!(cluster >= 0 && cluster < CLUSTER_COUNT)) return;
    this.values[cluster * FIELD_COUNT + F.fallbacks]! += 1;
    this.version++;
  }

  recordContext7Call(slot: ClusterSlot, cluster: number, ok: boolean): void {
    if (!(cluster >= 0 && cluster < CLUSTER_COUNT)) return;
    const at = (slotIndex(slot) * CLUSTER_COUNT + cluster) * FIELD_COUNT;
    this.values[at + F.context7Calls]! += 1;
    if (!ok) this.values[at + F.context7Errors]! += 1;
    this.version++;
  }

  tables(options: { sketch?: boolean } = {}): ClusterTables {
    return encodeClusterTables(this.values, this.sketch, this.newScopes, options.sketch ?? true);
  }

  /** The same counts as dense per-slot arrays (copies; without the sketches, which the canary's analysis does not read). */
  dense(): DenseClusters {
    const size = CLUSTER_COUNT * FIELD_COUNT;
    const slot = (s: number): DenseSlot => ({ values: this.values.slice(s * size, (s + 1) * size), sketch: new Float64Array(0) });
    return { treatment: slot(0), control: slot(1), off: slot(2), newScopes: { treatment: this.newScopes[0]!, control: this.newScopes[1]!, off: this.newScopes[2]! } };
  }
}

const nonNegative = z.number().nonnegative();

/**
 * One slot's clusters that saw a request: columnar, `index` the cluster, sketch SKETCH_BINS counts per cluster
 * (empty when left out: the canary's simulations do not keep sketches).
 */
export const clusterTableSchema = z.object({
  index: z.array(z.number().int().min(0).max(CLUSTER_COUNT - 1)),
  ...(Object.fromEntries(CLUSTER_FIELDS.map((field) => [field, z.array(nonNegative)])) as Record<ClusterField, z.ZodArray<typeof nonNegative>>),
  sketch: z.array(z.number().int().nonnegative()),
});
export type ClusterTable = z.infer<typeof clusterTableSchema>;

export const clusterTablesSchema = z.object({
  clusterSize: z.literal(CLUSTER_SIZE),
  clusters: z.literal(CLUSTER_COUNT),
  sketchEdgesMs: z.array(z.number()),
  newScopes: z.object({ treatment: nonNegative, control: nonNegative, off: nonNegative }),
  /**
   * true: `newScopes` counts each scope once fleet-wide (the fleet view, fleet/fleet-metrics.ts); absent: the
   * reporter's own first sightings, which a sum of instances counts once per instance. A window across both is void.
   */
  newScopesFleetWide: z.literal(true).optional(),
  treatment: clusterTableSchema,
  control: clusterTableSchema,
  off: clusterTableSchema,
});
export type ClusterTables = z.infer<typeof clusterTablesSchema>;

/** Dense arrays (slot, cluster, field) as the compact columnar tables of the contract. */
export function encodeClusterTables(values: Float64Array, sketch: Uint32Array | Float64Array, newScopes: Float64Array, withSketch = true): ClusterTables {
  const table = (s: number): ClusterTable => {
    const index: number[] = [];
    for (let cluster = 0; cluster < CLUSTER_COUNT; cluster++) {
      const at = (s * CLUSTER_COUNT + cluster) * FIELD_COUNT;
      if (values[at + F.requests] !== 0 || values[at + F.context7Calls] !== 0 || values[at + F.fallbacks] !== 0) index.push(cluster);
    }
    const out = { index, sketch: new Array<number>(withSketch ? index.length * SKETCH_BINS : 0) } as ClusterTable;
    for (let k = 0; k < FIELD_COUNT; k++) {
      const column = new Array<number>(index.length);
      for (let row = 0; row < index.length; row++) {
        const v = values[(s * CLUSTER_COUNT + index[row]!) * FIELD_COUNT + k]!;
        column[row] = Number.isInteger(v) ? v : Math.round(v * 1000) / 1000;
      }
      out[CLUSTER_FIELDS[k]!] = column;
    }
    for (let row = 0; withSketch && row < index.length; row++) {
      const from = (s * CLUSTER_COUNT + index[row]!) * SKETCH_BINS;
      for (let b = 0; b < SKETCH_BINS; b++) out.sketch[row * SKETCH_BINS + b] = sketch[from + b]!;
    }
    return out;
  };
  return {
    clusterSize: CLUSTER_SIZE,
    clusters: CLUSTER_COUNT,
    sketchEdgesMs: [...SKETCH_EDGES_MS],
    newScopes: { treatment: newScopes[0]!, control: newScopes[1]!, off: newScopes[2]! },
    treatment: table(0),
    control: table(1),
    off: table(2),
  };
}

/** Dense per-slot arrays: `values[cluster * fields + k]`, `sketch[cluster * SKETCH_BINS + b]`. */
export interface DenseSlot {
  values: Float64Array;
  sketch: Float64Array;
}
export interface DenseClusters {
  treatment: DenseSlot;
  control: DenseSlot;
  off: DenseSlot;
  newScopes: Record<ClusterSlot, number>;
}

export function emptyDenseClusters(): DenseClusters {
  const slot = (): DenseSlot => ({ values: new Float64Array(CLUSTER_COUNT * FIELD_COUNT), sketch: new Float64Array(CLUSTER_COUNT * SKETCH_BINS) });
  return { treatment: slot(), control: slot(), off: slot(), newScopes: { treatment: 0, control: 0, off: 0 } };
}

/** Adds tables (an instance's, or an observation's) into dense arrays: the fleet's sum, or a reader's view. */
export function addClusterTables(into: DenseClusters, tables: ClusterTables, sign = 1): void {
  for (const slot of CLUSTER_SLOTS) {
    const table = tables[slot];
    const values = into[slot].values;
    const sketch = into[slot].sketch;
    const rows = table.index.length;
    for (let k = 0; k < FIELD_COUNT; k++) {
      const column = table[CLUSTER_FIELDS[k]!];
      for (let row = 0; row < rows; row++) values[table.index[row]! * FIELD_COUNT + k]! += sign * column[row]!;
    }
    for (let row = 0; row < rows; row++) {
      const to = table.index[row]! * SKETCH_BINS;
      const from = row * SKETCH_BINS;
      for (let b = 0; b < SKETCH_BINS; b++) sketch[to + b]! += sign * (table.sketch[from + b] ?? 0);
    }
    into.newScopes[slot] += sign * tables.newScopes[slot];
  }
}

export function denseToTables(dense: DenseClusters): ClusterTables {
  const values = new Float64Array(CLUSTER_SLOTS.length * CLUSTER_COUNT * FIELD_COUNT);
  const sketch = new Float64Array(CLUSTER_SLOTS.length * CLUSTER_COUNT * SKETCH_BINS);
  CLUSTER_SLOTS.forEach((slot, s) => {
    values.set(dense[slot].values, s * CLUSTER_COUNT * FIELD_COUNT);
    sketch.set(dense[slot].sketch, s * CLUSTER_COUNT * SKETCH_BINS);
  });
  return encodeClusterTables(values, sketch, Float64Array.from(CLUSTER_SLOTS.map((slot) => dense.newScopes[slot])));
}

export function sumClusterTables(all: ClusterTables[]): ClusterTables {
  const dense = emptyDenseClusters();
  for (const tables of all) addClusterTables(dense, tables);
  return denseToTables(dense);
}

/** A field of one cluster in a dense slot. */
export function denseField(slot: DenseSlot, cluster: number, field: ClusterField): number {
  return slot.values[cluster * FIELD_COUNT + F[field]]!;
}

export const CLUSTER_FIELD_COUNT = FIELD_COUNT;
export const CLUSTER_FIELD_INDEX = F;
