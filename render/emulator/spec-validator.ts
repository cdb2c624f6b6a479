// Validates request bodies against Render's published OpenAPI spec (render/openapi/render-openapi.json).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

export const RENDER_SPEC_PATH = path.join(__dirname, '..', 'openapi', 'render-openapi.json');
const SPEC_ID = 'render-openapi.json';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Render's spec uses `oneOf` where the real discriminator is a sibling field (e.g. a service's `type`), so a
 * web service's details also match the private-service branch. We validate with `anyOf` instead, close every
 * object schema (`additionalProperties: false`, so a misspelt field is an error as it is for Render), and let
 * callers check discriminated parts against their exact branch (see `validateSchema`).
 */
function tighten(node: Json): Json {
  if (Array.isArray(node)) return node.map(tighten);
  if (node === null || typeof node !== 'object') return node;
  const out: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'example' || key === 'examples') continue;
    out[key === 'oneOf' ? 'anyOf' : key] = tighten(value);
  }
  const isObjectSchema = typeof out.properties === 'object' && out.properties !== null && !Array.isArray(out.properties);
  const combined = 'allOf' in out || 'anyOf' in out || '$ref' in out;
  // A schema that requires a field it does not declare (the metrics' points require `unit`) cannot be closed.
  const requiresUndeclared =
    isObjectSchema && Array.isArray(out.required) && out.required.some((name) => typeof name === 'string' && !(name in (out.properties as object)));
  if (isObjectSchema && !combined && !requiresUndeclared && !('additionalProperties' in out)) out.additionalProperties = false;
  return out;
}

function pointerEscape(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

interface QueryParameter {
  name: string;
  in: string;
  required?: boolean;
  schema?: { type?: string; items?: Record<string, unknown>; [key: string]: unknown };
}

export interface ValidationResult {
  ok: boolean;
  /** Human-readable, Render-style message when not ok. */
  message: string;
}

export class RenderSpecValidator {
  private readonly ajv: Ajv;
  private readonly cache = new Map<string, ValidateFunction>();
  private readonly spec: { paths: Record<string, Record<string, { requestBody?: { required?: boolean } }>> };
  private readonly schemas: Record<string, unknown>;
  private readonly raw: Json;

  constructor(specPath = RENDER_SPEC_PATH) {
    const raw = JSON.parse(readFileSync(specPath, 'utf8')) as Json;
    const tightened = tighten(raw) as { [key: string]: Json };
    this.spec = raw as unknown as RenderSpecValidator['spec'];
    this.raw = raw;
    this.schemas = (raw as { components: { schemas: Record<string, unknown> } }).components.schemas;
    this.ajv = new Ajv({ strict: false, allErrors: false, logger: false, validateFormats: true });
    addFormats(this.ajv);
    this.ajv.addFormat('password', true);
    this.ajv.addSchema({ ...tightened, $id: SPEC_ID } as object);
  }

  private compiled(ref: string): ValidateFunction {
    let fn = this.cache.get(ref);
    if (!fn) {
      fn = this.ajv.compile({ $ref: `${SPEC_ID}#${ref}` });
      this.cache.set(ref, fn);
    }
    return fn;
  }

  /** Validates `body` against the JSON request body of `method specPath` (e.g. 'post', '/services'). */
  validateRequestBody(method: string, specPath: string, body: unknown): ValidationResult {
    const operation = this.spec.paths[specPath]?.[method.toLowerCase()];
    if (!operation?.requestBody) return { ok: true, message: '' };
    if (body === undefined) {
      return operation.requestBody.required ? { ok: false, message: 'request body is required' } : { ok: true, message: '' };
    }
    const ref = `/paths/${pointerEscape(specPath)}/${method.toLowerCase()}/requestBody/content/application~1json/schema`;
    return this.run(this.compiled(ref), body);
  }

  /**
   * Validates a request's query against the parameters `method specPath` declares (path-level and operation-level):
   * required ones present, no undeclared ones, and each value (or each item of an array parameter) of its type.
   * `query` is Express' simple parse: a repeated key is an array.
   */
  validateQuery(method: string, specPath: string, query: Record<string, unknown>): ValidationResult {
    const params = this.parametersOf(method, specPath).filter((p) => p.in === 'query');
    for (const param of params) {
      if (param.required && (query[param.name] === undefined || query[param.name] === '')) {
        return { ok: false, message: `query parameter ${param.name} is required` };
      }
    }
    for (const [name, raw] of Object.entries(query)) {
      const param = params.find((p) => p.name === name);
      if (!param) return { ok: false, message: `unknown query parameter ${name}` };
      const schema = param.schema ?? {};
      const values = Array.isArray(raw) ? raw.map(String) : [String(raw)];
      if (schema.type !== 'array' && values.length > 1) return { ok: false, message: `query parameter ${name} takes one value` };
      const itemSchema = schema.type === 'array' ? (schema.items ?? {}) : schema;
      for (const text of values) {
        const value = itemSchema.type === 'integer' || itemSchema.type === 'number' ? (text.trim() === '' ? Number.NaN : Number(text)) : text;
        const key = JSON.stringify(itemSchema);
        let fn = this.cache.get(`query:${key}`);
        if (!fn) {
          fn = this.ajv.compile(this.resolve(itemSchema) as object);
          this.cache.set(`query:${key}`, fn);
        }
        if (!fn(value)) return { ok: false, message: `query parameter ${name}: ${describe(fn.errors ?? []).replace(/^body: /, '')}` };
      }
    }
    return { ok: true, message: '' };
  }

  /** Validates an answer against the spec's `status` response of `method specPath` (its JSON schema). */
  validateResponse(method: string, specPath: string, status: number, body: unknown): ValidationResult {
    const operation = this.spec.paths[specPath]?.[method.toLowerCase()] as { responses?: Record<string, unknown> } | undefined;
    if (!operation?.responses?.[String(status)]) return { ok: false, message: `the spec declares no ${status} answer for ${method.toUpperCase()} ${specPath}` };
    // Responses are often references (to components/responses, or to another path's answer): follow them.
    let pointer = `/paths/${pointerEscape(specPath)}/${method.toLowerCase()}/responses/${status}`;
    for (let depth = 0; depth < 10; depth++) {
      const node = this.at(pointer) as { $ref?: string } | undefined;
      if (!node || typeof node.$ref !== 'string') break;
      pointer = node.$ref.replace(/^#/, '');
    }
    return this.run(this.compiled(`${pointer}/content/application~1json/schema`), body);
  }

  private parametersOf(method: string, specPath: string): QueryParameter[] {
    const item = this.spec.paths[specPath] as Record<string, unknown> | undefined;
    if (!item) return [];
    const operation = item[method.toLowerCase()] as { parameters?: unknown[] } | undefined;
    const listed = [...((item.parameters as unknown[] | undefined) ?? []), ...(operation?.parameters ?? [])];
    return listed.map((p) => this.resolve(p) as QueryParameter).map((p) => ({ ...p, schema: p.schema ? (this.resolve(p.schema) as QueryParameter['schema']) : undefined }));
  }

  private at(pointer: string): unknown {
    let target: unknown = this.raw;
    for (const segment of pointer.replace(/^\//, '').split('/')) {
      if (target === undefined || target === null) return undefined;
      target = (target as Record<string, unknown>)[segment.replace(/~1/g, '/').replace(/~0/g, '~')];
    }
    return target;
  }

  private resolve(node: unknown): unknown {
    let current = node as { $ref?: string } | undefined;
    for (let depth = 0; current && typeof current.$ref === 'string' && depth < 10; depth++) {
      let target: unknown = this.raw;
      for (const segment of current.$ref.replace(/^#\//, '').split('/')) {
        target = (target as Record<string, unknown>)[segment.replace(/~1/g, '/').replace(/~0/g, '~')];
      }
      current = target as { $ref?: string };
    }
    return current;
  }

  /** Property names declared by `#/components/schemas/<name>` (empty when it declares none). */
  schemaProperties(name: string): readonly string[] {
    const schema = this.schemas[name] as { properties?: Record<string, unknown> } | undefined;
    return schema?.properties ? Object.keys(schema.properties) : [];
  }

  /** Validates `value` against `#/components/schemas/<name>`. */
  validateSchema(name: string, value: unknown): ValidationResult {
    return this.run(this.compiled(`/components/schemas/${pointerEscape(name)}`), value);
  }

  private run(fn: ValidateFunction, value: unknown): ValidationResult {
    if (fn(value)) return { ok: true, message: '' };
    return { ok: false, message: describe(fn.errors ?? []) };
  }
}

function describe(errors: ErrorObject[]): string {
  // The deepest error is usually the useful one (anyOf reports its own failure last).
  const best = [...errors].sort((a, b) => b.instancePath.length - a.instancePath.length)[0];
  if (!best) return 'request body is invalid';
  const where = best.instancePath || 'body';
  if (best.keyword === 'additionalProperties') {
    return `${where}: unknown field "${String((best.params as { additionalProperty?: string }).additionalProperty)}"`;
  }
  if (best.keyword === 'enum') {
    return `${where}: must be one of ${((best.params as { allowedValues?: unknown[] }).allowedValues ?? []).join(', ')}`;
  }
  return `${where}: ${best.message ?? 'is invalid'}`;
}
