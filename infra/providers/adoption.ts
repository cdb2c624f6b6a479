/**
 * Adoption: a stack points at a Render resource that already exists (memory-rollout:existingServiceId,
 * existingPostgresId, existingKeyValueId) instead of creating one. Dynamic providers cannot use Pulumi's
 * `import` (pulumi/pulumi#16175), so `create` reads the named resource, checks that it is the one the stack
 * describes, and records it. Pure: what differs, and how to make the stack match, as sentences.
 */

/** One field that differs between the live resource and the stack, and how to fix it. */
export interface AdoptionMismatch {
  field: string;
  live: string;
  stack: string;
  fix: string;
}

/** The config key that names each adopted kind. */
export const ADOPTION_KEYS = {
  webService: 'existingServiceId',
  postgres: 'existingPostgresId',
  keyValue: 'existingKeyValueId',
} as const;

const norm = (value: unknown): string => (value === undefined || value === null ? '' : String(value));

/** A repository URL as Render and git hosts treat it: no trailing slash or `.git`, case-insensitive host. */
export function normalizeRepo(url: string): string {
  return url.trim().replace(/\/+$/, '').replace(/\.git$/, '').replace(/^https?:\/\/([^/]+)/i, (_, host: string) => `https://${host.toLowerCase()}`);
}

/**
 * Compares identity fields. `expected` are the stack's values; `configKeys` names the stack setting for a field
 * (the fix says `pulumi config set` for it) or is absent (the fix says to change it in the dashboard).
 */
export function identityMismatches(
  live: Readonly<Record<string, unknown>>,
  expected: Readonly<Record<string, unknown>>,
  configKeys: Readonly<Record<string, string | undefined>>,
  stack: string,
  equal: (field: string, a: string, b: string) => boolean = (_f, a, b) => a === b,
): AdoptionMismatch[] {
  const out: AdoptionMismatch[] = [];
  for (const field of Object.keys(expected)) {
    const liveValue = norm(live[field]);
    const stackValue = norm(expected[field]);
    if (equal(field, liveValue, stackValue)) continue;
    const key = configKeys[field];
    out.push({
      field,
      live: liveValue,
      stack: stackValue,
      fix: key
        ? `pulumi config set memory-rollout:${key} ${liveValue || '<value>'} -s ${stack}`
        : `this cannot be changed from the stack: point memory-rollout's setting at the right resource, or change it in the Render dashboard`,
    });
  }
  return out;
}

/** The refusal: every difference, each with its fix. */
export function adoptionRefusal(what: string, id: string, mismatches: readonly AdoptionMismatch[]): string {
  return (
    `Refusing to adopt ${what} ${id}: it is not the resource this stack describes ` +
    `(${mismatches.length} difference${mismatches.length === 1 ? '' : 's'}):\n` +
    mismatches.map((m) => `  - ${m.field}: Render has "${m.live}", the stack says "${m.stack}"; to make the stack match: ${m.fix}`).join('\n')
  );
}

/** What a delete of an adopted resource says instead of deleting it. */
export function adoptedDeleteNotice(what: string, id: string): string {
  return (
    `${what} ${id} was adopted by this stack (not created by it): not deleting it; it stays on Render. ` +
    'Delete it in the Render dashboard if you mean to'
  );
}

/** Why an adopted resource is never replaced (a replace would delete it, and delete does nothing for it). */
export function adoptedReplaceRefusal(what: string, id: string, fields: readonly string[]): string {
  return (
    `${what} ${id} was adopted by this stack, and a change of ${fields.join(', ')} would replace it: the stack never ` +
    `replaces a resource it did not create. Put ${fields.length === 1 ? 'that setting' : 'those settings'} back to what Render has, ` +
    'or change the resource in the Render dashboard and then the stack to match'
  );
}
