/**
 * The providers `pulumi up` actually ships: small shims that Pulumi serializes into the state, which
 * load the implementation (infra/providers/index.ts) from the project directory when the dynamic
 * provider host first calls them.
 *
 * Why not serialize the implementation itself: Pulumi's closure serializer rewrites classes into ES5
 * constructor functions. That drops ES2022 class fields (RenderClient's rate-limit state) and breaks
 * `extends Error` (`Error.call(this, msg)` leaves the message unset, so every failure would surface
 * as an empty error). Loading at run time is the workaround Pulumi's maintainers suggest for
 * dependencies that do not serialize (pulumi/pulumi#18997); test/infra/serialization.test.ts proves
 * the round trip in plain Node processes. The host runs in the project directory (where Pulumi.yaml
 * is), so the path below is resolved from there; tsx, a runtime dependency, compiles the TypeScript.
 *
 * This module must stay free of runtime imports: everything it references is serialized.
 */
import type * as pulumi from '@pulumi/pulumi';
import type { ProviderKind } from './index';
import type { ProviderOptions } from './render-access';

/** The implementation module, relative to the Pulumi project directory. */
export const IMPLEMENTATION_MODULE = 'infra/providers/index.ts';

type AnyProvider = pulumi.dynamic.ResourceProvider<any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function shippedProvider(kind: ProviderKind, options: ProviderOptions = {}): AnyProvider {
  const state: { implementation?: AnyProvider; configureRequest?: pulumi.dynamic.ConfigureRequest } = {};

  async function implementation(): Promise<AnyProvider> {
    if (state.implementation) return state.implementation;
    // Resolved at run time in the host process: `require` is left unserialized by Pulumi on purpose.
    const { dirname, resolve } = require('node:path') as typeof import('node:path');
    const { existsSync } = require('node:fs') as typeof import('node:fs');
    // The host starts in the project directory; look upwards too, in case it starts below it.
    let file = resolve(process.cwd(), IMPLEMENTATION_MODULE);
    for (let dir = dirname(process.cwd()); !existsSync(file); dir = dirname(dir)) {
      const candidate = resolve(dir, IMPLEMENTATION_MODULE);
      if (existsSync(candidate)) file = candidate;
      if (dirname(dir) === dir) break;
    }
    if (!existsSync(file)) {
      throw new Error(
        `Could not find the Render provider implementation (${IMPLEMENTATION_MODULE}) from ${process.cwd()}. ` +
          'Run pulumi from the project directory (where Pulumi.yaml is).',
      );
    }
    let loaded: { createProvider: (k: ProviderKind, o: ProviderOptions) => AnyProvider };
    try {
      const tsx = require('tsx/cjs/api') as { require: (id: string, fromFile: string) => unknown };
      loaded = tsx.require(file, file) as typeof loaded;
    } catch (err) {
      const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
      throw new Error(`Could not load the Render provider implementation from ${file}: ${reason}. Run npm ci in the project directory.`);
    }
    const provider = loaded.createProvider(kind, options);
    if (state.configureRequest && provider.configure) await provider.configure(state.configureRequest);
    state.implementation = provider;
    return provider;
  }

  return {
    async configure(req) {
      state.configureRequest = req;
      if (state.implementation?.configure) await state.implementation.configure(req);
    },
    async check(olds, news) {
      const provider = await implementation();
      return provider.check ? provider.check(olds, news) : { inputs: news };
    },
    async diff(id, olds, news) {
      const provider = await implementation();
      return provider.diff ? provider.diff(id, olds, news) : {};
    },
    async create(inputs) {
      return (await implementation()).create(inputs);
    },
    async read(id, props) {
      const provider = await implementation();
      return provider.read ? provider.read(id, props) : { id, props };
    },
    async update(id, olds, news) {
      const provider = await implementation();
      return provider.update ? provider.update(id, olds, news) : { outs: news };
    },
    async delete(id, props) {
      const provider = await implementation();
      if (provider.delete) await provider.delete(id, props);
    },
  };
}
