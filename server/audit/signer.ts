import type { SealManager } from '../keys/seal.js';
import { createSealedKeyPair, openSealedKeyPair, type SealedKeyPairRecord } from '../keys/sealed-keypair.js';
import type { Store } from '../store/db.js';
import { AUDIT_SIGNING_KEY as AUDIT_KEY } from '../store/keys.js';
import type { AuditLog } from './log.js';

const PURPOSE = 'audit-checkpoint';

/**
 * The audit checkpoint key: an Ed25519 key of its own (never the token-signing key), sealed in
 * the vault, handed to the log while unsealed. Its public half verifies checkpoints offline.
 */
export class AuditSigner {
  private publicPem: string | undefined;

  constructor(store: Store, seal: SealManager, log: AuditLog, now: () => number = Date.now) {
    seal.onUnseal(async (keys) => {
      const raw = store.get(AUDIT_KEY);
      let record = raw ? (JSON.parse(Buffer.from(raw).toString()) as SealedKeyPairRecord) : undefined;
      if (!record) {
        const created = await store.mutate(async (tx) => {
          const made = await createSealedKeyPair(tx, keys, PURPOSE, now());
          tx.put(AUDIT_KEY, Buffer.from(JSON.stringify(made.record)));
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
