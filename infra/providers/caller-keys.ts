/**
 * Caller keys for the memory routes (MEMORY_API_KEYS), generated per stack and kept in the Pulumi state as
 * secrets. A dynamic provider with no runtime imports (it is serialized into the state as text): create draws
 * each key from node:crypto, update keeps the keys of names that stay and draws keys only for new names, so
 * rotation is: add a name, `pulumi up`, move the callers to the new key, remove the old name, `pulumi up`.
 */
import type * as pulumi from '@pulumi/pulumi';

export interface CallerKeySpec {
  name: string;
  /** Empty: every location. */
  locations: string[];
}

export interface CallerKeysInputs {
  keys: CallerKeySpec[];
}

export interface CallerKeysOutputs extends CallerKeysInputs {
  /** name -> secret (a secret output) */
  secrets: Record<string, string>;
  /** The MEMORY_API_KEYS value, `name:secret[:loc,...]` joined by ';' (a secret output). */
  memoryApiKeys: string;
}

/** Outputs Pulumi must store encrypted. */
export const CALLER_KEYS_SECRET_OUTPUTS = ['secrets', 'memoryApiKeys'];

/** Everything below is serialized: only `require` at call time, no imports, no closures over modules. */
function drawSecrets(keys: CallerKeySpec[], previous: Record<string, string>): { secrets: Record<string, string>; memoryApiKeys: string } {
  const { randomBytes } = require('node:crypto') as typeof import('node:crypto');
  const secrets: Record<string, string> = {};
  for (const key of keys) secrets[key.name] = previous[key.name] ?? randomBytes(32).toString('hex');
  const memoryApiKeys = keys
    .map((key) => [key.name, secrets[key.name], ...(key.locations.length > 0 ? [key.locations.join(',')] : [])].join(':'))
    .join(';');
  return { secrets, memoryApiKeys };
}

export const callerKeysProvider: pulumi.dynamic.ResourceProvider<CallerKeysInputs, CallerKeysOutputs> = {
  async create(inputs) {
    const drawn = drawSecrets(inputs.keys, {});
    return { id: `caller-keys-${Date.now().toString(36)}`, outs: { keys: inputs.keys, ...drawn } };
  },
  async diff(_id, olds, news) {
    const changed = JSON.stringify(olds.keys) !== JSON.stringify(news.keys);
    return { changes: changed, replaces: [], deleteBeforeReplace: false };
  },
  async update(_id, olds, news) {
    return { outs: { keys: news.keys, ...drawSecrets(news.keys, olds.secrets ?? {}) } };
  },
  async delete() {
    // Nothing outside the state: the keys live only in the service's MEMORY_API_KEYS.
  },
};
