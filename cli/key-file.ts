import { CliError } from './errors.js';

/** 32 bytes of key material given raw, as 64 hex digits or as base64 (whitespace ignored). */
export function decodeKeyFile(bytes: Buffer): Uint8Array {
  if (bytes.length === 32) return new Uint8Array(bytes);
  const text = bytes.toString('latin1').trim();
  const decoded = /^[0-9a-fA-F]{64}$/.test(text)
    ? Buffer.from(text, 'hex')
    : /^[A-Za-z0-9+/]{43}=$/.test(text)
      ? Buffer.from(text, 'base64')
      : undefined;
  if (!decoded || decoded.length !== 32)
    throw new CliError('invalid_input', 'the key file must hold 32 bytes (raw, 64 hex digits or base64)');
  return new Uint8Array(decoded);
}
