import { z } from 'zod';
import {
  ASYMMETRIC_ALGORITHMS,
  CAPABILITIES,
  KEY_USAGES,
  LIST_CURSOR,
  MAX_BATCH,
  MAX_BATCH_WRITE,
  MAX_DATA_BYTES,
  MAX_METADATA_KEYS,
  OAEP_HASHES,
  PASSWORD_CHARSETS,
  POLICY_NAME,
  SECRET_TYPES,
} from './constants.js';
import { isValidPath } from './paths.js';
import { timestamp } from './time.js';

/**
 * The request schemas of the HTTP API (docs/api.md), one per route input: the server validates
 * with them (server/http/validate.ts), the OpenAPI document is generated from them
 * (server/http/openapi.ts), and the request types the SDK sends are inferred from them
 * (types.ts). Every object is strict: an unknown field is an error.
 */
// ("__proto__" never gets here: the JSON reader refuses it.)
export const dataKey = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,256}$/, 'keys must be 1 to 256 characters of [A-Za-z0-9._-]')
  .refine((k) => k !== '__proto__', 'the key __proto__ is reserved');

/** A point in time in a request: RFC 3339 with any offset, read as the one wire form (time.ts), so an answer that echoes it is in that form too. */
const pointInTime = z.iso.datetime({ offset: true }).transform((s) => timestamp(Date.parse(s)));

// ---- secrets (server/http/routes/secrets.ts)

export const putSecretBody = z.strictObject({
  type: z.enum(SECRET_TYPES).optional(),
  data: z.record(dataKey, z.string().max(MAX_DATA_BYTES)),
  metadata: z
    .record(dataKey, z.string().max(1024))
    .refine((m) => Object.keys(m).length <= MAX_METADATA_KEYS, `at most ${MAX_METADATA_KEYS} metadata keys`)
    .optional(),
  expires_at: pointInTime.optional(),
  cas: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .optional(),
  generate: z
    .strictObject({
      key: dataKey,
      length: z.number().int().min(8).max(256).optional(),
      charset: z.enum(PASSWORD_CHARSETS).optional(),
    })
    .optional(),
});

const versionNumber = z
  .string()
  .regex(/^[1-9][0-9]{0,9}$/, 'expected a positive integer')
  .transform(Number)
  .pipe(z.number().max(2 ** 32 - 1));

export const readQuery = z.strictObject({ version: versionNumber.optional() });

export const deleteQuery = z.strictObject({
  versions: z
    .string()
    .regex(/^[1-9][0-9]{0,9}(,[1-9][0-9]{0,9}){0,99}$/, 'expected comma-separated positive integers')
    .transform((s) => [...new Set(s.split(',').map(Number))])
    .optional(),
});

export const versionsBody = z.strictObject({
  versions: z
    .array(
      z
        .number()
        .int()
        .min(1)
        .max(2 ** 32 - 1),
    )
    .min(1)
    .max(100)
    .transform((v) => [...new Set(v)]),
});

const pathString = z.string().refine(isValidPath, 'not a valid secret path');

export const listQuery = z.strictObject({
  /** A trailing '/' (`app/`, as Vault-style clients write a folder) is the same listing as without it. */
  prefix: z
    .string()
    .transform((p) => (p.endsWith('/') ? p.slice(0, -1) : p))
    .pipe(z.union([z.literal(''), pathString]))
    .optional(),
  /** A path, or the opaque cursor a previous page returned as `next`. */
  after: z.union([pathString, z.string().regex(LIST_CURSOR, 'not a valid secret path or listing cursor')]).optional(),
  limit: z
    .string()
    .regex(/^[1-9][0-9]{0,3}$/, 'expected 1 to 1000')
    .transform(Number)
    .pipe(z.number().max(1000))
    .optional(),
  expiring_within: z
    .string()
    .regex(/^[1-9][0-9]{0,8}[smhd]?$/, 'expected a duration such as 3600, 90m, 12h or 30d')
    .optional(),
});

export const batchBody = z.strictObject({
  paths: z.array(pathString).min(1).max(MAX_BATCH),
});

/** One secret of a batch write: a PUT body with its path (whose rule is checked apart: `invalid_path`). */
export const batchWriteEntry = putSecretBody.extend({ path: z.string() });

/**
 * `POST /v1/secrets:batch-write`. Only the batch's shape is checked here; each entry is checked
 * on its own against `batchWriteEntry` by the route, so one bad entry gets its own error and
 * does not refuse the others.
 */
export const batchWriteBody = z.strictObject({
  secrets: z
    .array(z.looseObject({ path: z.string() }).meta({ description: 'a PUT body (putSecretBody) with its path' }))
    .min(1)
    .max(MAX_BATCH_WRITE),
});

// ---- sys (server/http/routes/sys.ts, replication.ts)

export const initBody = z
  .strictObject({
    shares: z.number().int().min(1).max(255).default(5),
    threshold: z.number().int().min(1).max(255).default(3),
  })
  .refine((b) => b.threshold <= b.shares, { error: 'threshold must not exceed shares', path: ['threshold'] });

export const unsealBody = z.union([
  z.strictObject({ share: z.string().min(1).max(1024) }),
  z.strictObject({ reset: z.literal(true), nonce: z.string().min(1).max(64).optional() }),
]);

export const keyringRotateBody = z.strictObject({ rewrap: z.boolean().optional() });

/** An HTTP status a health answer may be given instead of its own (`sealedcode=200` for a liveness probe). */
const statusCode = z
  .string()
  .regex(/^[1-5][0-9]{2}$/, 'expected an HTTP status code (100 to 599)')
  .transform(Number);

/**
 * `GET /v1/sys/health` flags for probes and load balancers (docs/api.md "Sys"): `replicaok=true`
 * answers 200 for an unsealed replica; `sealedcode`, `uninitcode` and `replicacode` replace 503,
 * 501 and 429. Draining, failing storage, no audit sink and fenced stay 503.
 */
const healthFlag = z.enum(['true', '1', 'false', '0', '']).transform((v) => v === 'true' || v === '1' || v === '');
export const healthQuery = z.strictObject({
  replicaok: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
  sealedcode: statusCode.optional(),
  uninitcode: statusCode.optional(),
  replicacode: statusCode.optional(),
  // Vault's flags (docs/vault-compatibility.md): a replica is Vault's standby; they also take no value (`?standbyok`).
  standbyok: healthFlag.optional(),
  perfstandbyok: healthFlag.optional(),
  activecode: statusCode.optional(),
  standbycode: statusCode.optional(),
  drsecondarycode: statusCode.optional(),
  performancestandbycode: statusCode.optional(),
});

/** `GET /v1/sys/audit/lines`: the newest request lines of the first audit file, filtered. */
export const auditLinesQuery = z.strictObject({
  limit: z
    .string()
    .regex(/^[1-9][0-9]{0,3}$/, 'expected 1 to 1000')
    .transform(Number)
    .pipe(z.number().max(1000))
    .optional(),
  identity: z.string().min(1).max(256).optional(),
  /** A path prefix (`team/` or `team/app/db`). */
  path: z.string().min(1).max(512).optional(),
  /** `METHOD <express route>` as in the line, e.g. `GET /v1/secrets/*path`. */
  operation: z.string().min(1).max(128).optional(),
  outcome: z.enum(['ok', 'denied', 'error']).optional(),
});

export const emptyBody = z.strictObject({});
export const emptyQuery = z.strictObject({});

// ---- the data-key API (server/http/routes/transit.ts)

/** Canonical base64 with padding (server/crypto/bytes.ts `fromBase64` decodes exactly these). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const base64 = z
  .string()
  .max(200_000)
  .refine((s) => BASE64.test(s), 'expected base64');
export const keyCreateBody = z.strictObject({
  exportable: z.boolean().optional(),
  usage: z.array(z.enum(KEY_USAGES)).min(1).max(3).optional(),
});
export const keyConfigBody = z.strictObject({
  min_decryption_version: z
    .number()
    .int()
    .min(1)
    .max(2 ** 32 - 1),
});
export const encryptBody = z.strictObject({ plaintext: base64, context: base64.optional() });
/** Also the body of rewrap. */
export const decryptBody = z.strictObject({ ciphertext: z.string().min(1).max(300_000), context: base64.optional() });
export const datakeyBody = z.strictObject({ context: base64.optional() });

// ---- BYOK (server/http/routes/byok.ts)

const validTo = pointInTime;

export const byokWrappingKeyQuery = z.strictObject({
  exportable: z.enum(['true', 'false']).optional(),
  valid_to: validTo.optional(),
});

export const byokImportBody = z.strictObject({
  import_token: z.string().min(1).max(128),
  wrapped_key: z.string().min(1).max(4096),
  oaep_hash: z.enum(OAEP_HASHES).default('sha256'),
  /** Optional restatement of the rights bound to the token; a difference refuses the import. */
  exportable: z.boolean().optional(),
  valid_to: validTo.nullable().optional(),
  /** A master key must wrap and unwrap; anything else is refused rather than ignored. */
  usage: z
    .array(z.enum(['wrap', 'unwrap']))
    .refine((u) => u.includes('wrap') && u.includes('unwrap'), 'a master key needs usage ["wrap","unwrap"]')
    .optional(),
});

export const byokExportBody = z.strictObject({
  public_key_pem: z.string().min(1).max(16_384),
  shares: z.array(z.string().min(1).max(1024)).min(1).max(255),
  oaep_hash: z.enum(OAEP_HASHES).default('sha256'),
});

// ---- auth: tokens, policies, groups, login methods (server/http/routes/access.ts, logins.ts)

/** TTLs are seconds (`600`) or durations (`"10m"`, `"1h"`, `"7d"`), up to one year; parsed to seconds. */
export const ttl = z
  .union([
    z.number().int().min(1),
    z.string().regex(/^[1-9][0-9]{0,8}[smhd]?$/, 'expected seconds or a duration such as 10m, 1h, 7d'),
  ])
  .transform((v) => {
    if (typeof v === 'number') return v;
    const scale = { s: 1, m: 60, h: 3600, d: 86_400 }[v.at(-1) as 's'];
    return scale ? Number(v.slice(0, -1)) * scale : Number(v);
  })
  .pipe(z.number().max(366 * 86_400, 'at most one year'));

const name = z.string().regex(POLICY_NAME, 'expected 1 to 64 characters of [a-z0-9_-]');

export const policyBody = z.strictObject({
  rules: z
    .array(
      z.strictObject({
        path: z.string().min(1).max(512),
        capabilities: z.array(z.enum(CAPABILITIES)).min(1).max(CAPABILITIES.length),
      }),
    )
    .min(1)
    .max(256),
});

export const groupBody = z.strictObject({
  policies: z.array(name).max(64),
  members: z
    .array(z.string().regex(/^[A-Za-z0-9:@._/-]{1,256}$/, 'expected an identity such as user:alice'))
    .max(1000)
    .optional(),
});

/** `GET /v1/auth/token/capabilities`: a capability path as policy rules name them (`team/app/db`, `sys/policies/ci`, `transit/payments`). */
export const capabilitiesQuery = z.strictObject({
  path: z
    .string()
    .max(512)
    .regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, "expected a path of [A-Za-z0-9._-] segments separated by '/'"),
});

export const tokenCreateBody = z.strictObject({
  identity: z.string().regex(/^[A-Za-z0-9:@._/-]{1,200}$/, 'expected an identity such as svc:deployer'),
  groups: z.array(name).max(64).default([]),
  policies: z.array(name).max(64).default([]),
  /** Absent: one hour, cut to what the minter may grant. */
  ttl: ttl.optional(),
  max_ttl: ttl.optional(),
  /** Outside the minter's tree (survives its revocation): needs admin on sys/auth/token/create-orphan. */
  orphan: z.boolean().default(false),
});

export const tokenRevokeBody = z.strictObject({ token: z.string().min(1).max(8192).optional() });

const settings = {
  groups: z.array(name).max(64).default([]),
  policies: z.array(name).max(64).default([]),
  token_ttl: ttl.default(3600),
  token_max_ttl: ttl.default(86_400),
};

export const userBody = z.strictObject({ password: z.string().min(12).max(1024).optional(), ...settings });

export const appRoleBody = z.strictObject({
  ...settings,
  secret_id_ttl: ttl.optional(),
  secret_id_num_uses: z.number().int().min(0).max(1_000_000).default(0),
  bound_cidrs: z.array(z.string().max(64)).max(32).default([]),
});

export const userpassLoginBody = z.strictObject({
  username: z.string().min(1).max(64),
  password: z.string().min(1).max(1024),
});
export const appRoleLoginBody = z.strictObject({
  role_id: z.string().min(1).max(64),
  secret_id: z.string().min(1).max(128),
});
export const jwtLoginBody = z.strictObject({ role: z.string().min(1).max(64), jwt: z.string().min(1).max(16_384) });
export const rotateSigningBody = z.strictObject({ retire_previous: z.boolean().default(false) });

const boundValue = z.union([z.string().min(1).max(512), z.array(z.string().min(1).max(512)).min(1).max(64)]);
const claimPath = /^[A-Za-z0-9_.:-]{1,128}(\/[A-Za-z0-9_.:-]{1,128}){0,4}$/;

/** A jwt login role (`PUT /v1/auth/jwt/roles/{name}`; server/auth/jwt-login.ts checks the rest: names, URLs, keys). */
export const jwtRoleSchema = z
  .strictObject({
    issuer: z.url().max(512),
    jwks_url: z.url().max(1024).optional(),
    jwks: z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(32) }).optional(),
    allowed_algorithms: z.array(z.enum(ASYMMETRIC_ALGORITHMS)).min(1).default(['RS256', 'ES256', 'EdDSA']),
    bound_audiences: z
      .array(z.string().min(1).max(512))
      .min(1, 'bound_audiences is required: name the audience your CI requests')
      .max(16),
    allow_multiple_audiences: z.boolean().default(false),
    bound_subject: z.string().min(1).max(512).optional(),
    /** Claim names; '/' walks into nested objects (Kubernetes: `kubernetes.io/serviceaccount/uid`). */
    bound_claims: z.record(z.string().regex(claimPath), boundValue).default({}),
    bound_claims_type: z.enum(['exact', 'glob']).default('exact'),
    groups: z.array(z.string()).max(64).default([]),
    groups_claim: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,128}$/)
      .optional(),
    /** Claim value -> vault group; values without an entry grant nothing. */
    groups_claim_map: z.record(z.string().max(256), z.string()).default({}),
    /** Claim (a '/' path) -> name in the token's identity details, e.g. {"repository": "repo"}. */
    claim_mappings: z
      .record(z.string().regex(claimPath), z.string().regex(/^[a-z0-9_]{1,64}$/))
      .refine((m) => Object.keys(m).length <= 16, 'at most 16 claim mappings')
      .default({}),
    policies: z.array(z.string()).max(64).default([]),
    token_ttl: ttl.default(900),
    token_max_ttl: ttl.default(900),
    /** Longest accepted `exp - iat` of the presented token. */
    max_token_lifetime: ttl.default(3600),
    leeway: z.number().int().min(0).max(60).default(30),
    single_use: z.boolean().default(false),
    allow_insecure_http: z.boolean().default(false),
  })
  .refine((r) => (r.jwks_url === undefined) !== (r.jwks === undefined), {
    error: 'give exactly one of jwks_url or jwks',
    path: ['jwks_url'],
  });

// ---- the Vault-compatible API (server/http/vault/; docs/vault-compatibility.md): strict as the
// native schemas; secret keys follow Coffer's key rule, their values may be any JSON, as in Vault.

const kvVersion = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,9})$/, 'expected a version number')
  .transform(Number)
  .pipe(z.number().max(2 ** 32 - 1));
const uint = z
  .number()
  .int()
  .min(0)
  .max(2 ** 32 - 1);

/** Vault reads a boolean query flag from `true`/`1` (and `false`/`0`); a repeated flag arrives as a list. */
const flag = z
  .union([z.enum(['true', '1', 'false', '0']), z.array(z.enum(['true', '1', 'false', '0'])).max(4)])
  .transform((v) => (Array.isArray(v) ? v : [v]).some((x) => x === 'true' || x === '1'));

export const kvReadQuery = z.strictObject({ version: kvVersion.optional() });
export const kvMetadataQuery = z.strictObject({ list: flag.optional() });
export const kvListQuery = z.strictObject({ list: flag });

/** Any JSON value: what a key of a secret written through the Vault API holds. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
// The body is already strict JSON (server/json.ts), so every value is one; not z.json(), whose recursive JSON Schema does not embed in the OpenAPI document.
const value = z.custom<JsonValue>(() => true);
export const kvData = z
  .record(dataKey, value)
  .refine((d) => Object.keys(d).length > 0, 'data must hold at least one key');
const options = z.strictObject({ cas: uint.optional() });

export const kvWriteBody = z.strictObject({ data: kvData, options: options.optional() });
/** A merge patch (RFC 7386): `null` removes a key. */
export const kvPatchBody = z.strictObject({ data: z.record(dataKey, value), options: options.optional() });
/** A version number as Vault takes it: the vault CLI's `-versions=1,2` sends strings ("1"), the API clients numbers. */
const versionOrDigits = z.union([
  z.number(),
  z
    .string()
    .regex(/^[1-9][0-9]{0,9}$/, 'expected a positive integer')
    .transform(Number),
]);
export const kvVersionsBody = z.strictObject({
  versions: z
    .array(
      versionOrDigits.pipe(
        z
          .number()
          .int()
          .min(1)
          .max(2 ** 32 - 1),
      ),
    )
    .min(1)
    .max(100)
    .transform((v) => [...new Set(v)]),
});

const customMetadata = z
  .record(dataKey, z.string().max(1024))
  .refine((m) => Object.keys(m).length <= MAX_METADATA_KEYS, `at most ${MAX_METADATA_KEYS} custom_metadata keys`);
/** Only "no automatic deletion": Coffer has none (docs/vault-compatibility.md "Differences"). */
const deleteVersionAfter = z.union([z.literal(0), z.literal('0s'), z.literal('0'), z.literal('')], {
  error: 'delete_version_after is not supported (only 0)',
});

export const kvMetadataBody = z.strictObject({
  max_versions: uint.optional(),
  cas_required: z.boolean().optional(),
  delete_version_after: deleteVersionAfter.optional(),
  custom_metadata: customMetadata.nullable().optional(),
});
export const kvMetadataPatchBody = z.strictObject({
  max_versions: uint.optional(),
  cas_required: z.boolean().optional(),
  delete_version_after: deleteVersionAfter.optional(),
  custom_metadata: z.record(dataKey, z.string().max(1024).nullable()).nullable().optional(),
});

/** `increment` is accepted as Vault's clients send it (seconds or a duration); Coffer renews by the token's own TTL. */
export const vaultRenewBody = z.strictObject({
  increment: z
    .union([
      z.number().int().min(0),
      z.string().regex(/^[0-9]{1,9}[smhd]?$/, 'expected seconds or a duration such as 1h'),
    ])
    .optional(),
});
