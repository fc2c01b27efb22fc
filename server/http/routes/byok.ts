import type { Router } from 'express';
import { requireCapability } from '../authenticate.js';
import { jsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import { methods } from '../router.js';
import { validate, validateQuery } from '../validate.js';
import { byokExportBody, byokImportBody, byokWrappingKeyQuery } from '../../../sdk/wire/schemas.js';
import type { ByokExportResult, ByokImportResult, ByokWrappingKey } from '../../../sdk/wire/types.js';

/** BYOK import and quorum export (admin on `sys/byok`). */
export function byokRoutes(router: Router, deps: AppDeps): void {
  methods(router, '/v1/sys/byok/wrapping-key', {
    get: async (req, res) => {
      const query = validateQuery(byokWrappingKeyQuery, req);
      requireCapability(deps.access, res, 'admin', 'sys/byok');
      res.json(
        (await deps.byok.wrappingKey({
          exportable: query.exportable === 'true',
          valid_to: query.valid_to ?? null,
        })) satisfies ByokWrappingKey,
      );
    },
  });
  methods(router, '/v1/sys/byok/export', {
    post: [
      jsonBody,
      async (req, res) => {
        const body = validate(byokExportBody, req.body);
        requireCapability(deps.access, res, 'admin', 'sys/byok');
        const result = await deps.byok.export(body.public_key_pem, body.shares, body.oaep_hash);
        deps.log.warn(
          { request_id: res.locals.requestId, master_version: result.master_version },
          'master key exported under quorum',
        );
        res.json(result satisfies ByokExportResult);
      },
    ],
  });

  methods(router, '/v1/sys/byok/import', {
    post: [
      jsonBody,
      async (req, res) => {
        const body = validate(byokImportBody, req.body);
        requireCapability(deps.access, res, 'admin', 'sys/byok');
        const claimed = {
          ...(body.exportable !== undefined ? { exportable: body.exportable } : {}),
          ...(body.valid_to !== undefined ? { valid_to: body.valid_to } : {}),
        };
        const result = await deps.byok.import(body.import_token, body.wrapped_key, body.oaep_hash, claimed);
        deps.log.warn(
          { request_id: res.locals.requestId, master_version: result.master_version },
          'master key imported (BYOK)',
        );
        res.json(result satisfies ByokImportResult);
      },
    ],
  });
}
