import type { Router } from 'express';
import { z } from 'zod';
import { ERROR_STATUS, type ErrorCode } from '../../sdk/wire/errors.js';
import { MAX_PATH_LENGTH, MAX_SEGMENTS, SEGMENT } from '../../sdk/wire/paths.js';
import { methods } from './router.js';
import { OPENAPI_PATH, ROUTES, type RouteEntry } from './route-catalogue.js';
import { vaultStatus } from './vault/errors.js';

/**
 * The OpenAPI 3.1 document of every route, generated from the route catalogue: request bodies
 * and query parameters are zod 4's JSON Schema (2020-12, the input side: defaults shown, before
 * transforms) of the schemas the handlers validate with; error responses list the codes each
 * route can answer (sdk/wire/errors.ts is the catalogue of codes).
 */
export interface OpenApiOptions {
  version: string;
  /** `metrics_public`: /v1/sys/metrics needs no token. */
  metricsPublic?: boolean;
}

type Json = Record<string, unknown>;

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthenticated',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  409: 'Conflict',
  413: 'Too large',
  415: 'Unsupported media type',
  422: 'Unprocessable',
  429: 'Too many requests',
  500: 'Internal error',
  503: 'Unavailable',
  507: 'Insufficient storage',
};

/** A zod schema as JSON Schema, without its `$schema` (the document names the dialect once). */
export function jsonSchemaOf(schema: z.ZodType): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    target: 'draft-2020-12',
  }) as Json;
  return rest;
}

const isPublicMetrics = (r: RouteEntry, o: OpenApiOptions) => o.metricsPublic === true && r.operationId === 'metrics';

/**
 * Every error code a route can answer: its own (handler and engine), plus those that follow from
 * where app.ts mounts it, what it reads and what it does.
 */
export function errorCodesOf(r: RouteEntry, options: OpenApiOptions = { version: '' }): ErrorCode[] {
  const codes = new Set<ErrorCode>(r.errors);
  const stage = isPublicMetrics(r, options) ? 'unsealed' : r.stage;
  if (r.body !== undefined)
    ['invalid_request', 'unsupported_media_type', 'too_large'].forEach((c) => codes.add(c as ErrorCode));
  if (r.query !== undefined) codes.add('invalid_request');
  if (stage !== 'public') {
    codes.add('sealed');
    codes.add('not_initialized');
  }
  if (stage === 'login' || stage === 'token') {
    codes.add('audit_unavailable');
    if (r.tag !== 'replication') codes.add('replica_stale');
  }
  if (stage === 'token') {
    codes.add('unauthenticated');
    codes.add('invalid_request'); // a malformed Authorization header, or two different tokens
    if (!/^(none|any valid token)/.test(r.capability)) codes.add('forbidden');
  }
  if (r.writes)
    ['read_only_replica', 'lease_expired', 'storage_full', 'storage_unavailable'].forEach((c) =>
      codes.add(c as ErrorCode),
    );
  if (r.keys) ['hsm_unavailable', 'decryption_failed'].forEach((c) => codes.add(c as ErrorCode));
  codes.add('internal');
  return [...codes].sort((a, b) => ERROR_STATUS[a] - ERROR_STATUS[b] || a.localeCompare(b));
}

const PARAMS: Record<string, { description: string; schema: Json }> = {
  path: {
    description: `A secret path: 1 to ${MAX_SEGMENTS} segments of \`${SEGMENT.source.slice(1, -1)}\` joined by literal \`/\` (at most ${MAX_PATH_LENGTH} bytes; never \`%2F\`, \`.\` or \`..\`). The first segment is the namespace.`,
    schema: { type: 'string', maxLength: MAX_PATH_LENGTH },
  },
  name: {
    description: 'The object name (one path segment).',
    schema: { type: 'string', minLength: 1, maxLength: 128 },
  },
  ns: {
    description: 'A namespace: the first segment of secret paths.',
    schema: { type: 'string', pattern: SEGMENT.source },
  },
};

function operation(r: RouteEntry, options: OpenApiOptions): Json {
  const stage = isPublicMetrics(r, options) ? 'unsealed' : r.stage;
  const parameters: Json[] = [...r.openapiPath.matchAll(/\{([a-z]+)\}/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    ...PARAMS[name!],
  }));
  if (r.query) {
    const q = jsonSchemaOf(r.query) as { properties?: Record<string, Json>; required?: string[] };
    for (const [name, schema] of Object.entries(q.properties ?? {})) {
      parameters.push({ name, in: 'query', required: q.required?.includes(name) ?? false, schema });
    }
  }
  const op: Json = {
    operationId: r.operationId,
    tags: [r.tag],
    summary: r.summary,
    description: `Capability: ${r.capability}.`,
    security: stage === 'token' ? [{ bearerAuth: [] }, { vaultToken: [] }] : [],
  };
  if (parameters.length) op.parameters = parameters;
  if (r.body !== undefined) {
    op.requestBody =
      r.body === null
        ? {
            required: false,
            description: 'Read as JSON and ignored.',
            content: { 'application/json': { schema: { type: 'object' } } },
          }
        : {
            // An absent body reads as `{}` (body.ts): required only when `{}` does not validate.
            required: !r.body.safeParse({}).success,
            content: { 'application/json': { schema: jsonSchemaOf(r.body) } },
          };
  }
  const headers = { 'X-Request-Id': { $ref: '#/components/headers/RequestId' } };
  const responses: Json = { [String(r.response.status)]: success(r.response, headers) };
  for (const [status, description] of Object.entries(r.otherResponses ?? {})) {
    responses[status] = { description, headers, content: { 'application/json': { schema: { type: 'object' } } } };
  }
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of errorCodesOf(r, options))
    byStatus.set(errorStatusOf(r, code), [...(byStatus.get(errorStatusOf(r, code)) ?? []), code]);
  for (const [status, codes] of byStatus) {
    if (r.tag === 'vault') {
      // Vault's shape: messages only; the codes are the ones the message comes from.
      responses[String(status)] = {
        description: `${STATUS_TEXT[status] ?? 'Error'} (Vault's shape): ${codes.map((c) => `\`${c}\``).join(', ')}`,
        headers,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/VaultError' } } },
      };
      continue;
    }
    responses[String(status)] = {
      description: `${STATUS_TEXT[status] ?? 'Error'}: ${codes.map((c) => `\`${c}\``).join(', ')}`,
      headers,
      content: {
        'application/json': {
          schema: {
            allOf: [
              { $ref: '#/components/schemas/Error' },
              { type: 'object', properties: { error: { type: 'object', properties: { code: { enum: codes } } } } },
            ],
          },
        },
      },
    };
  }
  op.responses = responses;
  return op;
}

/** The status of an error code on a route: the catalogue's, or Vault's for the Vault routes. */
export const errorStatusOf = (r: RouteEntry, code: ErrorCode): number =>
  r.tag === 'vault' ? vaultStatus(code) : ERROR_STATUS[code];

function success(response: RouteEntry['response'], headers: Json): Json {
  const content = response.content ?? 'json';
  const base = { description: response.description, headers };
  if (content === 'none') return base;
  if (content === 'text') return { ...base, content: { 'text/plain': { schema: { type: 'string' } } } };
  if (content === 'octet')
    return {
      ...base,
      content: {
        'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } },
      },
    };
  return { ...base, content: { 'application/json': { schema: { type: 'object' } } } };
}

export function buildOpenApi(options: OpenApiOptions): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const r of ROUTES) {
    (paths[r.openapiPath] ??= {})[r.method.toLowerCase()] = operation(r, options);
  }
  const codes = Object.keys(ERROR_STATUS) as ErrorCode[];
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    info: {
      title: 'Coffer',
      version: options.version,
      summary: 'Self-hosted secrets vault',
      description:
        'JSON over HTTP. Every request body is `application/json` (UTF-8, at most 1 MiB, no duplicate keys, strict: unknown fields are errors). Every response carries `X-Request-Id` and `Cache-Control: no-store`. Any other method on a route answers `405 method_not_allowed` with `Allow`; an unknown route `404 not_found`. The human reference is docs/api.md.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    tags: [
      { name: 'sys', description: 'Health, seal and unseal, master key and keyrings, audit, metrics' },
      { name: 'secrets', description: 'Secrets: versions, listing, soft delete, destroy, batch reads' },
      { name: 'keys', description: 'The data-key API (named keys; capabilities on transit/<name>)' },
      { name: 'auth', description: 'Logins, tokens, login method configuration' },
      { name: 'access', description: 'Policies and groups' },
      { name: 'byok', description: 'Bring your own key: import and quorum export of the master key' },
      { name: 'replication', description: 'Replication status, promotion, snapshots' },
      {
        name: 'vault',
        description:
          'The Vault-compatible API (KV v2, token self-service, mounts; docs/vault-compatibility.md): errors as `{errors: [...]}`',
      },
    ],
    paths,
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'A Coffer token (an EdDSA JWT, `typ: coffer+jwt`).',
        },
        vaultToken: {
          type: 'apiKey',
          in: 'header',
          name: 'X-Vault-Token',
          description: 'The same token in the Vault-compatible header (never both with different values).',
        },
      },
      headers: {
        RequestId: {
          description: 'The request id, also in error bodies and the audit log.',
          schema: { type: 'string', format: 'uuid' },
        },
      },
      schemas: {
        VaultError: {
          type: 'object',
          required: ['errors'],
          properties: {
            errors: { type: 'array', items: { type: 'string' }, description: 'Messages; empty for a plain 404.' },
          },
        },
        Error: {
          type: 'object',
          required: ['error'],
          additionalProperties: false,
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message', 'request_id'],
              additionalProperties: false,
              properties: {
                code: {
                  type: 'string',
                  enum: codes,
                  description: 'Stable snake_case code; the HTTP status follows from it.',
                },
                message: {
                  type: 'string',
                  description:
                    'What went wrong and what to do; never a secret value. A 5xx says only `internal error`.',
                },
                request_id: { type: 'string' },
              },
            },
          },
        },
      },
    },
  };
}

const built = new Map<string, string>();

/**
 * GET /v1/sys/openapi.json: built when the app is created (once per process and options: the
 * catalogue and schemas are fixed at start), answers without a token, sealed or not.
 */
export function openapiRoute(router: Router, options: OpenApiOptions): void {
  const key = JSON.stringify([options.version, options.metricsPublic === true]);
  let body = built.get(key);
  if (body === undefined) built.set(key, (body = JSON.stringify(buildOpenApi(options))));
  methods(router, OPENAPI_PATH, { get: (_req, res) => void res.type('application/json').send(body) });
}
