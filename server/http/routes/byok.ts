import type { Router } from 'express';
import { z } from 'zod';
import { requireCapability } from '../authenticate.js';
import { jsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import { methods } from '../router.js';
import { validate } from '../validate.js';

const importBody = z.strictObject({
  import_token: z.string().min(1).max(128),
  wrapped_key: z.string().min(1).max(4096),
  oaep_hash: z.enum(['sha256', 'sha1']).default('sha256'),
});

const exportBody = z.strictObject({
  public_key_pem: z.string().min(1).max(16_384),
  shares: z.array(z.string().min(1).max(1024)).min(1).max(255),
  oaep_hash: z.enum(['sha256', 'sha1']).default('sha256'),
});

/** BYOK import and quorum export (admin on `sys/byok`). */
export function byokRoutes(router: Router, deps: AppDeps): void {
  methods(router, '/v1/sys/byok/wrapping-key', {
    get: async (_req, res) => {
      requireCapability(deps.access, res, 'admin', 'sys/byok');
      res.json(await deps.byok.wrappingKey());
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
        const result = await deps.byok.import(body.import_token, body.wrapped_key, body.oaep_hash);
        deps.log.warn({ request_id: res.locals.requestId, master_version: result.master_version }, 'master key imported (BYOK)');
        res.json(result);
      },
    ],
  });
}
