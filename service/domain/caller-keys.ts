/**
 * Caller credentials for the memory routes (MEMORY_API_KEYS): who may read and write which scopes.
 * Pure: parsing and the access rule; the constant-time lookup and the HTTP answers live in http/caller-auth.ts.
 *
 * Two spellings, both secrets (a Render env var or a Pulumi secret):
 *   JSON:  [{"name":"agents-eu","secret":"<32+ random chars>","locations":["loc-berlin","loc-paris"]}, ...]
 *   text:  agents-eu:<secret>:loc-berlin,loc-paris;canary:<secret>      (';' or newlines between entries)
 * No `locations` (or `*`) means every customer location. The reserved prefixes (`canaryprobe-`, `loadtest-`) are
 * reachable only by a key that lists the location or its prefix with a star (`loadtest-*`): see scope-id.ts
 * RESERVED_LOCATION_PREFIXES. Several keys are active at once: rotation adds the new key,
 * moves the callers, then removes the old one, with no restart of the callers in between.
 */
import { z } from 'zod';
import { RESERVED_LOCATION_PREFIXES, reservedPrefixOf, SCOPE_ID_PATTERN } from './scope-id';

/** Caller keys are random tokens; shorter ones are guessable and would make ordinary text unwritable (they are refused in learning writes). */
export const CALLER_KEY_MIN_LENGTH = 24;
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** Bearer token characters (RFC 6750 b64token) minus ':' and ';', which the text form uses as separators. */
const SECRET = /^[A-Za-z0-9._~+/=-]+$/;
const LOCATION = /^[A-Za-z0-9_-]{1,64}$/;

export interface CallerKey {
  /** Shown in logs and metrics instead of the secret. */
  name: string;
  /** Never logged or echoed. */
  secret: string;
  /** null: every location; else exactly these location ids. */
  locations: ReadonlySet<string> | null;
}

export class CallerKeysError extends Error {
  constructor(problem: string) {
    super(problem);
    this.name = 'CallerKeysError';
  }
}

const jsonEntrySchema = z.strictObject({
  name: z.string(),
  secret: z.string(),
  locations: z.union([z.literal('*'), z.array(z.string())]).optional(),
});

interface RawEntry {
  name: string;
  secret: string;
  locations?: string[] | "*";
}

function rawEntries(value: string): RawEntry[] {
  const trimmed = value.trim();
  if (trimmed.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      // JSON.parse's message quotes the input: never a secret's.
      throw new CallerKeysError('is not valid JSON');
    }
    const entries = z.array(z.unknown()).safeParse(parsed);
    if (!entries.success) throw new CallerKeysError('expected a JSON list of {name, secret, locations?}');
    return entries.data.map((entry, index) => {
      const checked = jsonEntrySchema.safeParse(entry);
      if (!checked.success) throw new CallerKeysError(`entry ${index + 1}: expected {name, secret, locations?} with string values`);
      return checked.data;
    });
  }
  return trimmed
    .split(/[;\n]+/)
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry, index) => {
      const parts = entry.split(':');
      if (parts.length < 2 || parts.length > 3) throw new CallerKeysError(`entry ${index + 1}: expected name:secret[:location,location...]`);
      const [name, secret, locations] = parts as [string, string, string | undefined];
      return {
        name: name.trim(),
        secret: secret.trim(),
        locations: locations === undefined || locations.trim() === '*' ? undefined : locations.split(',').map((location) => location.trim()),
      };
    });
}

/** Parses MEMORY_API_KEYS. Problems name the entry (its position and, once valid, its name), never the secret. */
export function parseCallerKeys(value: string | undefined): CallerKey[] {
  if (value === undefined || value.trim() === '') return [];
  const keys = rawEntries(value).map((entry, index): CallerKey => {
    const label = NAME.test(entry.name) ? `entry ${index + 1} (${entry.name})` : `entry ${index + 1}`;
    if (!NAME.test(entry.name)) throw new CallerKeysError(`${label}: name must match ${NAME.source}`);
    if (entry.secret.length < CALLER_KEY_MIN_LENGTH) {
      throw new CallerKeysError(`${label}: secret must be at least ${CALLER_KEY_MIN_LENGTH} characters (e.g. openssl rand -hex 32)`);
    }
    if (!SECRET.test(entry.secret)) throw new CallerKeysError(`${label}: secret may only use A-Z a-z 0-9 . _ ~ + / = -`);
    if (entry.locations !== undefined && entry.locations !== '*') {
      if (entry.locations.length === 0) throw new CallerKeysError(`${label}: an empty location list would allow nothing; omit it for every location`);
      const bad = entry.locations.find((location) => !LOCATION.test(location) && !isReservedPrefixEntry(location));
      if (bad !== undefined) {
        throw new CallerKeysError(`${label}: location ids must match ${LOCATION.source}, or be a reserved prefix with a star (${RESERVED_LOCATION_PREFIXES.map((p) => `${p}*`).join(', ')})`);
      }
    }
    return {
      name: entry.name,
      secret: entry.secret,
      locations: entry.locations === undefined || entry.locations === '*' ? null : new Set(entry.locations),
    };
  });
  const names = new Set<string>();
  const secrets = new Set<string>();
  for (const key of keys) {
    if (names.has(key.name)) throw new CallerKeysError(`key name ${key.name} is used twice`);
    if (secrets.has(key.secret)) throw new CallerKeysError(`key ${key.name} repeats another key's secret`);
    names.add(key.name);
    secrets.add(key.secret);
  }
  return keys;
}

/** The text form of keys (what infra and the demo write into MEMORY_API_KEYS). */
export function formatCallerKeys(keys: readonly { name: string; secret: string; locations?: readonly string[] | null }[]): string {
  return keys.map((key) => [key.name, key.secret, ...(key.locations && key.locations.length > 0 ? [key.locations.join(',')] : [])].join(':')).join(';');
}

/** The location of a valid scope id, or null for anything else (an invalid id is never allowed). */
export function locationOfScope(scopeId: string): string | null {
  const match = SCOPE_ID_PATTERN.exec(scopeId);
  return match ? match[1]! : null;
}

/** `canaryprobe-*`, `loadtest-*`: every location with that reserved prefix. */
function isReservedPrefixEntry(location: string): boolean {
  return (RESERVED_LOCATION_PREFIXES as readonly string[]).some((prefix) => location === `${prefix}*`);
}

/**
 * The isolation rule: a key reaches a scope only when the scope's location is one of the key's. A key without
 * locations reaches every customer location; a reserved location (probe, load tests) only when the key names it or
 * its prefix (`loadtest-*`).
 */
export function keyMayAccessScope(key: Pick<CallerKey, 'locations'>, scopeId: string): boolean {
  const location = locationOfScope(scopeId);
  if (location === null) return false;
  const reserved = reservedPrefixOf(location);
  if (key.locations === null) return reserved === null;
  return key.locations.has(location) || (reserved !== null && key.locations.has(`${reserved}*`));
}
