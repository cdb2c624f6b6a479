/**
 * Loads openapi.yaml once and compiles its component schemas with ajv, so the client (response checks)
 * and the emulator (request checks) enforce the same wire contract.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
// ajv and yaml are required on the first loadContract() (below), not on import: the canary imports this module's routes.
import type { ValidateFunction } from 'ajv';
import type { Context7Operation } from './port';

export const CONTRACT_PATH = path.join(__dirname, 'openapi.yaml');

/** The HTTP method and path (relative to the base URL) of each operation. */
export const CONTEXT7_ROUTES: Record<Context7Operation, { method: 'GET' | 'POST'; path: string }> = {
  health: { method: 'GET', path: '/v1/health' },
  searchSnippets: { method: 'POST', path: '/v1/snippets/search' },
  upsertPatterns: { method: 'POST', path: '/v1/patterns/batch' },
  deletePatterns: { method: 'POST', path: '/v1/patterns/delete' },
};

export interface ContractValidators {
  /** request bodies, checked by the emulator */
  searchRequest: ValidateFunction;
  upsertRequest: ValidateFunction;
  deleteRequest: ValidateFunction;
  /** 2xx bodies, checked by the client */
  healthResponse: ValidateFunction;
  searchResponse: ValidateFunction;
  upsertResponse: ValidateFunction;
  deleteResponse: ValidateFunction;
  errorBody: ValidateFunction;
  /** limits the client must respect, read from the contract rather than repeated in code */
  maxBatchSize: number;
  maxSearchLimit: number;
}

interface OpenApiDocument {
  paths: Record<string, Record<string, { operationId?: string }>>;
  components: { schemas: Record<string, Record<string, unknown>> };
}

let cached: ContractValidators | undefined;

export function loadContract(): ContractValidators {
  if (cached) return cached;
  const { parse } = require('yaml') as typeof import('yaml');
  const document = parse(readFileSync(CONTRACT_PATH, 'utf8')) as OpenApiDocument;
  assertRoutesMatch(document);
  // OpenAPI 3.0 schemas are a JSON Schema dialect; `description` is the only annotation we use.
  const { default: Ajv } = require('ajv') as typeof import('ajv');
  const { default: addFormats } = require('ajv-formats') as typeof import('ajv-formats');
  const ajv = new Ajv({ allErrors: true, strict: true });
  addFormats(ajv);
  ajv.addKeyword('components');
  // Registering the components under one id lets the '#/components/schemas/X' refs resolve as written.
  ajv.addSchema({ $id: 'context7', components: document.components });
  const compile = (name: string): ValidateFunction => {
    const validate = ajv.getSchema(`context7#/components/schemas/${name}`);
    if (!validate) throw new Error(`openapi.yaml has no component schema ${name}`);
    return validate;
  };
  const schemas = document.components.schemas;
  const upsertPatterns = (schemas.UpsertRequest?.properties as Record<string, { maxItems?: number }>)?.patterns;
  const searchLimit = (schemas.SearchRequest?.properties as Record<string, { maximum?: number }>)?.limit;
  if (!upsertPatterns?.maxItems || !searchLimit?.maximum) {
    throw new Error('openapi.yaml must bound UpsertRequest.patterns (maxItems) and SearchRequest.limit (maximum)');
  }
  cached = {
    searchRequest: compile('SearchRequest'),
    upsertRequest: compile('UpsertRequest'),
    deleteRequest: compile('DeleteRequest'),
    healthResponse: compile('HealthResponse'),
    searchResponse: compile('SearchResponse'),
    upsertResponse: compile('UpsertResponse'),
    deleteResponse: compile('DeleteResponse'),
    errorBody: compile('Error'),
    maxBatchSize: upsertPatterns.maxItems,
    maxSearchLimit: searchLimit.maximum,
  };
  return cached;
}

/** Fails fast if the code's route table and the contract disagree. */
function assertRoutesMatch(document: OpenApiDocument): void {
  for (const [operation, route] of Object.entries(CONTEXT7_ROUTES)) {
    const declared = document.paths[route.path]?.[route.method.toLowerCase()];
    if (declared?.operationId !== operation) {
      throw new Error(`openapi.yaml does not declare ${route.method} ${route.path} as ${operation}`);
    }
  }
}

/** "must have required property 'scopeId'; /limit must be <= 50": short, for 400 bodies and error messages. */
export function describeValidationErrors(validate: ValidateFunction): string {
  return (validate.errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '(body)'} ${e.message ?? 'is invalid'}`)
    .join('; ');
}
