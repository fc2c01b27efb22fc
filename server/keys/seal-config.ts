import { z } from 'zod';
import { fromBase64 } from '../crypto/bytes.js';
import { decodeStored, jsonCodec } from '../store/codec.js';
import { SEAL_KEY } from '../store/keys.js';
import type { RootKeySource } from './root-key.js';

/** Stored in `sys/seal` (clear: read before unseal); its presence means the vault is initialized. */
const sealConfig = z.object({
  format: z.literal(1),
  cluster_id: z.string(),
  source: z.enum(['shamir', 'file', 'env', 'passphrase', 'pkcs11']),
  shares: z.number().int(),
  threshold: z.number().int(),
  /** Set id of the current share split (shamir: root key; others: recovery key). */
  share_set: z.string(),
  /** Recovery key check for auto-unseal sources: an envelope only the recovery key opens. */
  recovery_check: z.string().optional(),
  passphrase_salt: z.string().optional(),
  created_at: z.number(),
});
export type SealConfig = z.infer<typeof sealConfig>;
export const sealConfigCodec = jsonCodec(sealConfig);

export function readSealConfig(raw: Uint8Array | undefined): SealConfig | undefined {
  return raw ? decodeStored(sealConfigCodec, raw, 'seal configuration', SEAL_KEY) : undefined;
}

/** A key file and an env var hold the same raw root key: either opens a vault made with the other. */
export function compatibleSources(stored: RootKeySource['kind'], given: RootKeySource['kind']): boolean {
  const raw = ['file', 'env'];
  return stored === given || (raw.includes(stored) && raw.includes(given));
}

export function passphraseSalt(config: Pick<SealConfig, 'passphrase_salt'>): Uint8Array | undefined {
  return config.passphrase_salt ? fromBase64(config.passphrase_salt) : undefined;
}
