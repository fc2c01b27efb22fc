import type { CofferError } from '../../errors.js';
import { ERROR_STATUS, type ErrorCode } from '../../../sdk/wire/errors.js';

/** Vault's error body: a list of messages, empty for a plain 404 (docs/vault-compatibility.md "Errors"). */
export interface VaultErrorBody {
  errors: string[];
}

/**
 * A Coffer error as Vault answers it. The code and message are the catalogue's (sdk/wire/errors.ts);
 * only the status differs where Vault's clients branch on it: Vault has no 401 (a missing or bad
 * token is 403), a check-and-set mismatch is 400, and a missing secret is 404 with no message
 * (the Go client and consul-template read that as "no secret", not as a failure).
 */
export function vaultError(error: CofferError): { status: number; body: VaultErrorBody } {
  const status = vaultStatus(error.code);
  if (error.code === 'not_found') return { status, body: { errors: [] } };
  return {
    status,
    body: { errors: [error.code === 'unauthenticated' ? `permission denied: ${error.message}` : error.message] },
  };
}

/** The status a Vault route answers for a catalogue code (also what the OpenAPI document lists for them). */
export function vaultStatus(code: ErrorCode): number {
  return code === 'unauthenticated' ? 403 : code === 'cas_mismatch' ? 400 : ERROR_STATUS[code];
}
