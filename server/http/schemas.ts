import { z } from 'zod';
import { MAX_BATCH, MAX_DATA_BYTES } from '../secrets/engine.js';
import { CHARSETS, SECRET_TYPES } from '../secrets/types.js';
import { isValidPath } from '../paths.js';
import { CURSOR } from './list-cursor.js';
import { USAGES } from '../transit/engine.js';
import { fromBase64 } from '../crypto/bytes.js';

/** One schema per route input. Every object is strict: an unknown field is an error. */
// ("__proto__" never gets here: the JSON reader refuses it.)
const dataKey = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,256}$/, 'keys must be 1 to 256 characters of [A-Za-z0-9._-]')
  .refine((k) => k !== '__proto__', 'the key __proto__ is reserved');

export const putSecretBody = z.strictObject({
  type: z.enum(SECRET_TYPES).optional(),
  data: z.record(dataKey, z.string().max(MAX_DATA_BYTES)),
  metadata: z
    .record(dataKey, z.string().max(1024))
    .refine((m) => Object.keys(m).length <= 64, 'at most 64 metadata keys')
    .optional(),
  expires_at: z.iso.datetime({ offset: true }).optional(),
  cas: z.number().int().min(0).max(2 ** 32 - 1).optional(),
  generate: z
    .strictObject({
      key: dataKey,
      length: z.number().int().min(8).max(256).optional(),
      charset: z.enum(Object.keys(CHARSETS) as [keyof typeof CHARSETS]).optional(),
    })
    .optional(),
});

const versionNumber = z.string().regex(/^[1-9][0-9]{0,9}$/, 'expected a positive integer').transform(Number).pipe(z.number().max(2 ** 32 - 1));

export const readQuery = z.strictObject({ version: versionNumber.optional() });

export const deleteQuery = z.strictObject({
  versions: z
    .string()
    .regex(/^[1-9][0-9]{0,9}(,[1-9][0-9]{0,9}){0,99}$/, 'expected comma-separated positive integers')
    .transform((s) => [...new Set(s.split(',').map(Number))])
    .optional(),
});

export const versionsBody = z.strictObject({
  versions: z.array(z.number().int().min(1).max(2 ** 32 - 1)).min(1).max(100).transform((v) => [...new Set(v)]),
});

const pathString = z.string().refine(isValidPath, 'not a valid secret path');

export const listQuery = z.strictObject({
  prefix: z.union([z.literal(''), pathString]).optional(),
  /** A path, or the opaque cursor a previous page returned as `next`. */
  after: z.union([pathString, z.string().regex(CURSOR, 'not a valid secret path or listing cursor')]).optional(),
  limit: z.string().regex(/^[1-9][0-9]{0,3}$/, 'expected 1 to 1000').transform(Number).pipe(z.number().max(1000)).optional(),
  expiring_within: z.string().regex(/^[1-9][0-9]{0,8}[smhd]?$/, 'expected a duration such as 3600, 90m, 12h or 30d').optional(),
});

export const batchBody = z.strictObject({
  paths: z.array(pathString).min(1).max(MAX_BATCH),
});

export const initBody = z.strictObject({
  shares: z.number().int().min(1).max(255).default(5),
  threshold: z.number().int().min(1).max(255).default(3),
}).refine((b) => b.threshold <= b.shares, { message: 'threshold must not exceed shares', path: ['threshold'] });

export const unsealBody = z.union([
  z.strictObject({ share: z.string().min(1).max(1024) }),
  z.strictObject({ reset: z.literal(true), nonce: z.string().min(1).max(64).optional() }),
]);

export const keyringRotateBody = z.strictObject({ rewrap: z.boolean().optional() });

export const emptyBody = z.strictObject({});
export const emptyQuery = z.strictObject({});

// The data-key API (routes/transit.ts).
const base64 = z.string().max(200_000).refine((s) => fromBase64(s) !== undefined, 'expected base64');
export const keyCreateBody = z.strictObject({ exportable: z.boolean().optional(), usage: z.array(z.enum(USAGES)).min(1).max(3).optional() });
export const keyConfigBody = z.strictObject({ min_decryption_version: z.number().int().min(1).max(2 ** 32 - 1) });
export const encryptBody = z.strictObject({ plaintext: base64, context: base64.optional() });
/** Also the body of rewrap. */
export const decryptBody = z.strictObject({ ciphertext: z.string().min(1).max(300_000), context: base64.optional() });
export const datakeyBody = z.strictObject({ context: base64.optional() });

// BYOK (routes/byok.ts).
const validTo = z.iso.datetime({ offset: true });

export const byokWrappingKeyQuery = z.strictObject({
  exportable: z.enum(['true', 'false']).optional(),
  valid_to: validTo.optional(),
});

export const byokImportBody = z.strictObject({
  import_token: z.string().min(1).max(128),
  wrapped_key: z.string().min(1).max(4096),
  oaep_hash: z.enum(['sha256', 'sha1']).default('sha256'),
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
  oaep_hash: z.enum(['sha256', 'sha1']).default('sha256'),
});

/** `30d` -> milliseconds. */
export function durationMs(text: string): number {
  const unit = text.at(-1)!;
  const scale = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit as 's'] ?? 1_000;
  return Number(/[smhd]$/.test(text) ? text.slice(0, -1) : text) * scale;
}
