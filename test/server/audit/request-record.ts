import type { AuditRecord } from '../../../server/audit/log.js';

/** A request line's fields for unit tests of the audit log: request `r<i>`, a read by `identity`. */
export const requestRecord = (i: number, identity = 'alice'): AuditRecord => ({
  request_id: `r${i}`,
  identity,
  groups: [],
  operation: 'GET /v1/secrets/*',
  path: 'a/b',
  status: 200,
  outcome: 'ok',
  client: '10.0.0.1',
});
