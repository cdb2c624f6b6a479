/**
 * The provider implementations, by kind. The shipped (serialized) providers load this module at run
 * time in Pulumi's dynamic provider host; see shipped.ts for why.
 */
import type * as pulumi from '@pulumi/pulumi';
import { createKeyValueProvider, createPostgresProvider } from './datastores';
import type { ProviderOptions } from './render-access';
import { createWebServiceProvider } from './web-service';

export const PROVIDER_KINDS = ['webService', 'postgres', 'keyValue'] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function createProvider(kind: ProviderKind, options: ProviderOptions = {}): pulumi.dynamic.ResourceProvider<any, any> {
  switch (kind) {
    case 'webService':
      return createWebServiceProvider(options);
    case 'postgres':
      return createPostgresProvider(options);
    case 'keyValue':
      return createKeyValueProvider(options);
    default:
      throw new Error(`unknown Render provider kind: ${String(kind)}`);
  }
}
