import { chmod, open, readFile, stat } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { scrypt } from 'node:crypto';
import { promisify } from 'node:util';
import { fromBase64, toBase64, zeroize } from '../crypto/bytes.js';
import { KEY_LENGTH } from '../crypto/aead.js';
import { systemRandom } from '../crypto/random.js';
import { CofferError } from '../errors.js';
import { parsePkcs11Uri } from './pkcs11/uri.js';

/**
 * Where the software provider's root key comes from, parsed from a `--kek` URI:
 *   shamir:               split into shares at init, submitted at unseal (default, non-dev)
 *   file:PATH             32 bytes (raw, base64 or hex) in a file that only its owner can read
 *   env:VAR               the same encodings in an environment variable
 *   passphrase:[VAR]      scrypt of a passphrase from VAR (default COFFER_KEK_PASSPHRASE)
 * A `pkcs11:` URI selects the HSM provider instead (server/keys/pkcs11).
 */
export type RootKeySource =
  | { kind: 'shamir' }
  | { kind: 'file'; path: string }
  | { kind: 'env'; variable: string }
  | { kind: 'passphrase'; variable: string }
  | { kind: 'pkcs11'; uri: string };

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function parseKekUri(uri: string): RootKeySource {
  const colon = uri.indexOf(':');
  const scheme = colon < 0 ? uri : uri.slice(0, colon);
  const rest = colon < 0 ? '' : uri.slice(colon + 1);
  switch (scheme) {
    case 'shamir':
      if (rest) break;
      return { kind: 'shamir' };
    case 'file':
      if (!rest) break;
      return { kind: 'file', path: rest };
    case 'env':
      if (!ENV_NAME.test(rest)) break;
      return { kind: 'env', variable: rest };
    case 'passphrase':
      if (rest && !ENV_NAME.test(rest)) break;
      return { kind: 'passphrase', variable: rest || 'COFFER_KEK_PASSPHRASE' };
    case 'pkcs11':
      parsePkcs11Uri(uri); // refuse a bad URI at start, not at the first unseal
      return { kind: 'pkcs11', uri };
  }
  throw new CofferError(
    'invalid_request',
    `invalid --kek "${scheme}:…": expected shamir:, file:PATH, env:VAR, passphrase:[VAR] or pkcs11:module=…;token=…;key=…;pin-env=VAR`,
  );
}

/** Parses 32 key bytes given raw, as base64 or as hex (surrounding whitespace ignored). */
export function decodeKeyMaterial(bytes: Uint8Array, where: string): Uint8Array {
  if (bytes.length === KEY_LENGTH) return Uint8Array.from(bytes);
  const text = Buffer.from(bytes).toString('latin1').trim();
  const decoded = /^[0-9a-fA-F]{64}$/.test(text) ? new Uint8Array(Buffer.from(text, 'hex')) : fromBase64(text);
  if (!decoded || decoded.length !== KEY_LENGTH) {
    throw new CofferError(
      'invalid_request',
      `${where} does not hold a 256-bit key (expected 32 raw bytes, 64 hex digits or base64)`,
    );
  }
  return Uint8Array.from(decoded);
}

/** Reads a key file, refusing one that others can read or that is missing. */
export async function readKeyFile(path: string): Promise<Uint8Array> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new CofferError('invalid_request', `key file ${path} cannot be read: check the path and its permissions`);
  }
  if (!info.isFile()) throw new CofferError('invalid_request', `key file ${path} is not a regular file`);
  if ((info.mode & 0o077) !== 0) {
    throw new CofferError(
      'invalid_request',
      `key file ${path} is accessible by other users (mode ${(info.mode & 0o777).toString(8)}): run chmod 600 ${path}`,
    );
  }
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch {
    throw new CofferError('invalid_request', `key file ${path} cannot be read: check the path and its permissions`);
  }
  try {
    return decodeKeyMaterial(raw, `key file ${path}`);
  } finally {
    raw.fill(0);
  }
}

/** Creates a fresh key file (mode 0600, exclusive create) and returns its key. */
export async function createKeyFile(path: string): Promise<Uint8Array> {
  const key = systemRandom(KEY_LENGTH);
  const handle = await open(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    await handle.writeFile(`${toBase64(key)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await chmod(path, 0o600);
  return key;
}

const scryptAsync = promisify(scrypt) as (pw: Buffer, salt: Uint8Array, len: number, opts: object) => Promise<Buffer>;
/** scrypt N=2^17, r=8, p=1: about 128 MiB and a few hundred ms, off the event loop. */
export const PASSPHRASE_KDF = { N: 2 ** 17, r: 8, p: 1, maxmem: 256 * 1024 * 1024 };

export async function deriveFromPassphrase(passphrase: string, salt: Uint8Array): Promise<Uint8Array> {
  if (passphrase.length < 12)
    throw new CofferError('invalid_request', 'the KEK passphrase must be at least 12 characters');
  const pw = Buffer.from(passphrase, 'utf8');
  try {
    const out = await scryptAsync(pw, salt, KEY_LENGTH, PASSPHRASE_KDF);
    const key = Uint8Array.from(out);
    out.fill(0);
    return key;
  } finally {
    zeroize(pw);
  }
}

/**
 * Loads the root key of an auto-unseal source. `salt` is the passphrase salt stored in the seal
 * configuration. Shamir keys come from shares instead, and never from here.
 */
export async function loadRootKey(
  source: RootKeySource,
  env: NodeJS.ProcessEnv,
  salt?: Uint8Array,
): Promise<Uint8Array> {
  switch (source.kind) {
    case 'file':
      return readKeyFile(source.path);
    case 'env': {
      const value = env[source.variable];
      if (!value)
        throw new CofferError(
          'invalid_request',
          `environment variable ${source.variable} (from --kek env:) is not set`,
        );
      return decodeKeyMaterial(Buffer.from(value, 'latin1'), `environment variable ${source.variable}`);
    }
    case 'passphrase': {
      const value = env[source.variable];
      if (!value)
        throw new CofferError(
          'invalid_request',
          `environment variable ${source.variable} (from --kek passphrase:) is not set`,
        );
      if (!salt) throw new CofferError('internal', 'passphrase salt missing from the seal configuration');
      return deriveFromPassphrase(value, salt);
    }
    default:
      throw new CofferError('invalid_request', `--kek ${source.kind}: does not unseal by itself`);
  }
}
