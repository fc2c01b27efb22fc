import { routePattern, type AuditEntry } from './locals.js';
import { TLSSocket } from 'node:tls';
import type { Step } from './edge.js';
import type { AuditLog, AuditRecord } from '../audit/log.js';
import { CofferError } from '../errors.js';
import { errorResponse } from './respond-error.js';
import { verifiedClientCertificate } from '../tls/context.js';
import { underlyingSocket } from '../tunnel.js';

const outcomeOf = (status: number): AuditRecord['outcome'] =>
  status < 400 ? 'ok' : status === 401 || status === 403 ? 'denied' : 'error';

/**
 * Holds each response until its audit line is durable (F7: the line exists before the client
 * sees the answer), then sends it. If no sink can take the line, the response is replaced by
 * 503 `audit_unavailable`: nothing is answered unaudited (F1).
 */
export function auditRequests(audit: AuditLog): Step {
  return function auditRequests(req, res) {
    const end = res.end.bind(res) as (...args: unknown[]) => unknown;
    res.end = ((...args: unknown[]) => {
      const identity = res.locals.identity;
      const status = res.statusCode;
      const record: AuditRecord = {
        request_id: res.locals.requestId,
        identity: identity?.id ?? res.locals.loginIdentity ?? null,
        groups: identity?.groups ?? [],
        operation: `${req.method} ${routePattern(req)}`,
        path: res.locals.auditPath ?? null,
        status,
        outcome: outcomeOf(status),
        client: res.locals.clientAddress ?? req.socket.remoteAddress ?? 'unknown',
        ...(res.locals.errorCode ? { error_code: res.locals.errorCode } : {}),
        ...(res.locals.auditPaths ? { paths: res.locals.auditPaths } : {}),
      };
      // mTLS: who the connection proved to be, beside who the token says (a stolen token used
      // from another runner shows up as a mismatch).
      const socket = underlyingSocket(req.socket);
      const clientCert = socket instanceof TLSSocket ? verifiedClientCertificate(socket) : undefined;
      if (clientCert) record.client_cert = clientCert;
      const entries = res.locals.auditEntries; // a batch write: a line per secret (entryRecords)
      const written = entries
        ? Promise.all(entryRecords(record, entries).map((r) => audit.record(r)))
        : audit.record(record);
      written.then(
        () => end(...args),
        () => {
          if (res.headersSent) return void res.destroy();
          const refused = new CofferError('audit_unavailable', 'the audit log cannot be written: request refused');
          const { status, body } = errorResponse(refused, res.locals);
          const text = JSON.stringify(body);
          res.statusCode = status;
          res.removeHeader('Content-Length');
          res.setHeader('Content-Type', 'application/json; charset=utf-8');
          end(text);
        },
      );
      return res;
    }) as typeof res.end;
  };
}

/**
 * A batch write's lines: one per secret, as if each had been written alone (its status and
 * error code), plus the request's own line when the request as a whole failed.
 */
function entryRecords(record: AuditRecord, entries: AuditEntry[]): AuditRecord[] {
  const { error_code: _requestError, ...base } = record;
  return [
    ...entries.map(({ path, status, error_code }) => ({
      ...base,
      path,
      status,
      outcome: outcomeOf(status),
      ...(error_code ? { error_code } : {}),
    })),
    ...(record.status >= 400 ? [record] : []),
  ];
}
