import type { SealManager, VaultStore } from '../keys/seal.js';
import { createSealedKeyPair, openSealedKeyPair, sealedKeyPairCodec } from '../keys/sealed-keypair.js';
import { AUDIT_SIGNING_KEY } from '../store/keys.js';
import type { AuditLog } from './log.js';

const PURPOSE = 'audit-checkpoint';

/**
 * The audit checkpoint key: an Ed25519 key of its own (never the token-signing key), sealed in
 * the vault, handed to the log while unsealed. Its public half verifies checkpoints offline.
 */
export class AuditSigner {
  private publicPem: string | undefined;

  constructor(store: VaultStore, seal: SealManager, log: AuditLog, now: () => number = Date.now) {
    const table = store.table(AUDIT_SIGNING_KEY, sealedKeyPairCodec, 'audit checkpoint key');
    seal.onUnseal(async (keys) => {
      let record = await table.get('', keys);
      if (!record) {
        const created = await store.mutate(async (tx) => {
          const made = await createSealedKeyPair(tx, keys, PURPOSE, now());
          table.write(tx, '', made.record);
          return made.record;
        });
        record = created;
      }
      log.setSigner(await openSealedKeyPair(keys, record, PURPOSE));
      this.publicPem = record.public_pem;
    });
    seal.onSeal(() => log.setSigner(undefined));
  }

  /** PEM of the checkpoint public key (available once the vault has been unsealed). */
  publicKeyPem(): string | undefined {
    return this.publicPem;
  }
}
