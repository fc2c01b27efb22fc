import { encodeContext, zeroize } from '../crypto/bytes.js';
import { KEY_LENGTH } from '../crypto/aead.js';
import { envelopeKeyVersion, openEnvelope, sealEnvelope } from '../crypto/envelope.js';
import { CofferError } from '../errors.js';
import type { Keyrings } from '../keys/keyring.js';
import type { Tx } from '../store/barrier.js';
import type { RandomSource } from '../crypto/random.js';

/**
 * One stored secret version:
 *
 *   format (1 byte = 1) | wrapped DEK length (u16 BE) | wrapped DEK | sealed value
 *
 * The DEK is fresh for every version and seals exactly one value. Its wrap (an envelope under
 * the namespace keyring, naming the keyring version) binds cluster, namespace, path and version;
 * the value's envelope binds the same plus the secret type. A record copied to another path or
 * version, or given another version's DEK, fails to open.
 */
const RECORD_FORMAT = 1;

export interface VersionAddress {
  clusterId: string;
  namespace: string;
  path: string;
  version: number;
}

const dekContext = (a: VersionAddress) => encodeContext('coffer/dek', a.clusterId, a.namespace, a.path, a.version);
const valueContext = (a: VersionAddress, type: string) =>
  encodeContext('coffer/value', a.clusterId, a.path, a.version, type);

export async function sealVersion(
  tx: Tx,
  keyrings: Keyrings,
  address: VersionAddress,
  type: string,
  plaintext: Uint8Array,
  random: RandomSource,
): Promise<Uint8Array> {
  const { version: keyringVersion, key } = await keyrings.encryptionKey(tx, address.namespace);
  const dek = random(KEY_LENGTH);
  try {
    const wrappedDek = sealEnvelope(key, keyringVersion, dek, dekContext(address), random);
    // The value is sealed after room for the record's head and wrapped DEK: one buffer, no copy.
    const record = sealEnvelope(dek, 1, plaintext, valueContext(address, type), random, 3 + wrappedDek.length);
    writeRecordHead(record, wrappedDek);
    return record;
  } finally {
    zeroize(dek);
  }
}

export async function openVersion(
  keyrings: Keyrings,
  address: VersionAddress,
  type: string,
  record: Uint8Array,
): Promise<Uint8Array> {
  const { wrappedDek, value } = decodeRecord(record);
  const key = await keyrings.decryptionKey(address.namespace, envelopeKeyVersion(wrappedDek));
  const dek = openEnvelope(key, wrappedDek, dekContext(address));
  try {
    return openEnvelope(dek, value, valueContext(address, type));
  } finally {
    zeroize(dek);
  }
}

/** The keyring version a record's DEK is wrapped under. */
export const recordKeyringVersion = (record: Uint8Array): number => envelopeKeyVersion(decodeRecord(record).wrappedDek);

/** Re-wraps a record's DEK under the current keyring version; the sealed value is untouched. */
export async function rewrapVersion(
  tx: Tx,
  keyrings: Keyrings,
  address: VersionAddress,
  record: Uint8Array,
): Promise<Uint8Array> {
  const { wrappedDek, value } = decodeRecord(record);
  const oldKey = await keyrings.decryptionKey(address.namespace, envelopeKeyVersion(wrappedDek));
  const dek = openEnvelope(oldKey, wrappedDek, dekContext(address));
  try {
    const { version, key } = await keyrings.encryptionKey(tx, address.namespace);
    return encodeRecord(sealEnvelope(key, version, dek, dekContext(address)), value);
  } finally {
    zeroize(dek);
  }
}

function encodeRecord(wrappedDek: Uint8Array, value: Uint8Array): Uint8Array {
  const record = new Uint8Array(3 + wrappedDek.length + value.length);
  record.set(value, 3 + wrappedDek.length);
  writeRecordHead(record, wrappedDek);
  return record;
}

/** Fills the first 3 + wrapped DEK length bytes of a record: format, the DEK's length, the DEK. */
function writeRecordHead(record: Uint8Array, wrappedDek: Uint8Array): void {
  if (wrappedDek.length > 0xffff) throw new RangeError('a wrapped DEK is at most 65535 bytes');
  record[0] = RECORD_FORMAT;
  record[1] = wrappedDek.length >>> 8;
  record[2] = wrappedDek.length;
  record.set(wrappedDek, 3);
}

function decodeRecord(record: Uint8Array): { wrappedDek: Uint8Array; value: Uint8Array } {
  if (record.length < 3 || record[0] !== RECORD_FORMAT) throw new CofferError('decryption_failed', 'decryption failed');
  const length = (record[1]! << 8) | record[2]!;
  if (record.length < 3 + length) throw new CofferError('decryption_failed', 'decryption failed');
  return { wrappedDek: record.subarray(3, 3 + length), value: record.subarray(3 + length) };
}
