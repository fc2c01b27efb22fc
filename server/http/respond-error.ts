import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { CofferError, isCofferError } from '../errors.js';
import type { ErrorBody } from '../../sdk/wire/errors.js';
import { vaultError } from './vault/errors.js';
import { sendJson, type HttpResponse } from './respond.js';

/**
 * The one place errors become HTTP. Coffer errors keep their code and message (which never hold
 * secrets); anything else is `500 internal error` with the request id, details to the log only.
 */
export function respondError(log: Logger) {
  return (err: unknown, res: HttpResponse): void => {
    const requestId = res.locals.requestId ?? '';
    let error: CofferError;
    if (isCofferError(err)) {
      // Internal failures say only `internal error`; the other 5xx codes carry fixed messages.
      error =
        err.code === 'internal' || err.code === 'decryption_failed' ? new CofferError(err.code, 'internal error') : err;
      if (err.status >= 500)
        log.error({ request_id: requestId, code: err.code, detail: err.detail ?? err.message }, 'request failed');
    } else if (err instanceof URIError) {
      // The router's own percent-decoding of route parameters failed (e.g. `%zz`, `%C0%AE`).
      error = new CofferError('invalid_path', 'path is invalid: it holds a malformed percent-encoding');
    } else if (isClientAbort(err)) {
      error = new CofferError('invalid_request', 'request could not be read');
    } else {
      log.error({ request_id: requestId, err: describe(err) }, 'unhandled error');
      error = new CofferError('internal', 'internal error');
    }
    res.locals.errorCode = error.code;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const { status, body } = errorResponse(error, res.locals);
    sendJson(res, body, status);
  };
}

/**
 * The status and body of an error answer in the shape the caller reads: Coffer's, Vault's on
 * the Vault routes, both on the paths the two APIs share (`locals.vaultErrors`, vault/index.ts).
 */
export function errorResponse(
  error: CofferError,
  locals: Pick<Express.Locals, 'requestId' | 'vaultErrors'>,
): { status: number; body: unknown } {
  const body: ErrorBody = { error: { code: error.code, message: error.message, request_id: locals.requestId ?? '' } };
  if (!locals.vaultErrors) return { status: error.status, body };
  const vault = vaultError(error);
  if (locals.vaultErrors === 'only') return vault;
  return { status: error.status, body: { ...body, ...vault.body } };
}

/** `respondError` as express's error middleware. */
export function errorHandler(log: Logger) {
  const respond = respondError(log);
  return (err: unknown, _req: Request, res: Response, _next: NextFunction): void => respond(err, res);
}

function isClientAbort(err: unknown): boolean {
  const type = (err as { type?: string })?.type;
  return type === 'request.aborted' || type === 'stream.not.readable';
}

/** Name, message and stack of an unexpected error, for the log (never sent to clients). */
function describe(err: unknown): object {
  if (err instanceof Error) return { name: err.name, message: err.message, stack: err.stack };
  return { value: typeof err };
}
