import type { ErrorCode } from './wire/errors.js';

/**
 * An error answered by a Coffer server (`code` from sdk/wire/errors.ts, docs/api.md "Errors"), or `unavailable` when the server
 * could not be reached at all. Messages never contain secret values.
 */
export class CofferError extends Error {
  constructor(
    readonly code: ErrorCode | 'unavailable' | 'unexpected_response',
    message: string,
    readonly status: number,
    readonly requestId?: string,
  ) {
    super(message);
    this.name = 'CofferError';
  }
}

const has = (e: unknown, ...codes: string[]): e is CofferError => e instanceof CofferError && codes.includes(e.code);
export const isNotFound = (e: unknown) => has(e, 'not_found');
export const isForbidden = (e: unknown) => has(e, 'forbidden');
export const isUnauthenticated = (e: unknown) => has(e, 'unauthenticated');
export const isSealed = (e: unknown) => has(e, 'sealed', 'not_initialized');
export const isUnavailable = (e: unknown) =>
  has(e, 'unavailable', 'sealed', 'not_initialized', 'rate_limited', 'storage_full', 'storage_unavailable');
export const isCasMismatch = (e: unknown) => has(e, 'cas_mismatch');
