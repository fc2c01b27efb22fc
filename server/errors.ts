import { ERROR_STATUS, type ErrorCode } from '../sdk/wire/errors.js';

export type { ErrorCode };

/**
 * The one error type of the server. `message` is shown to clients, so it must never hold a
 * secret value, a token, key material or a stack trace; put diagnostics in `detail`, which
 * goes to the log only.
 */
export class CofferError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string | undefined;

  constructor(code: ErrorCode, message: string, detail?: string) {
    super(message);
    this.name = 'CofferError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.detail = detail;
  }
}

export const isCofferError = (e: unknown, code?: ErrorCode): e is CofferError =>
  e instanceof CofferError && (code === undefined || e.code === code);
