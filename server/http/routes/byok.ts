import type { Router } from 'express';
import { z } from 'zod';
import { requireCapability } from '../authenticate.js';
import { jsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import { methods } from '../router.js';
import { validate } from '../validate.js';

const validTo = z.iso.datetime({ offset: true });

const wrappingKeyQuery = z.strictObject({
  exportable: z.enum(['true', 'false']).optional(),
  valid_to: validTo.optional(),
});

const importBody = z.strictObject({
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

const exportBody = z.strictObject({
  public_key_pem: z.string().min(1).max(16_384),
  shares: z.array(z.string().min(1).max(1024)).min(1).max(255),
  oaep_hash: z.enum(['sha256', 'sha1']).default('sha256'),
});

/** BYOK import and quorum export (admin on `sys/byok`). */
export function byokRoutes(router: Router, deps: AppDeps): void {
  methods(router, '/v1/sys/byok/wrapping-key', {
    get: async (req, res) => {
      const query = validate(wrappingKeyQuery, req.query, 'query');
      requireCapability(deps.access, res, 'admin', 'sys/byok');
      res.json(await deps.byok.wrappingKey({ exportable: query.exportable === 'true', valid_to: query.valid_to ?? null }));
    },
  });
  methods(router, '/v1/sys/byok/export', {
    post: [
      jsonBody,
      async (req, res) => {
        const body = validate(exportBody, req.body);
        requireCapability(deps.access, res, 'admin', 'sys/byok');
        const result = await deps.byok.export(body.public_key_pem, body.shares, body.oaep_hash);
        deps.log.warn({ request_id: res.locals.requestId, master_version: result.master_version }, 'master key exported under quorum');
        res.json(result);
      },
    ],
  });

  methods(router, '/v1/sys/byok/import', {
    post: [
      jsonBody,
      async (req, res) => {
        const body = validate(importBody, req.body);
        requireCapability(deps.access, res, 'admin', 'sys/byok');
        const claimed = { ...(body.exportable !== undefined ? { exportable: body.exportable } : {}), ...(body.valid_to !== undefined ? { valid_to: body.valid_to } : {}) };
        const result = await deps.byok.import(body.import_token, body.wrapped_key, body.oaep_hash, claimed);
        deps.log.warn({ request_id: res.locals.requestId, master_version: result.master_version }, 'master key imported (BYOK)');
        res.json(result);
      },
    ],
  });
}
