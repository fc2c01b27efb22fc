import type { Logger } from 'pino';
import { CofferError } from '../errors.js';
import type { Store } from '../store/db.js';
import { MASTER_PREFIX, REPL_IDENTITY_PENDING_KEY as PENDING_KEY, SEAL_KEY } from '../store/keys.js';
import type { Bucket } from './bucket.js';
import {
  MANIFEST,
  ReplicationError,
  fromB64,
  isIdentityKey,
  readManifestUnverified,
  type ManifestBody,
} from './format.js';

/**
 * The vault's identity in the local store (seal configuration and wrapped master keys): what a
 * primary puts in every manifest, and what a fresh replica copies from the bucket before it can
 * be unsealed. A copy stays marked unverified until the authenticated manifest confirms it.
 */
export class VaultIdentity {
  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /** A replica must copy the identity first: none yet, or a copy that was never confirmed. */
  get missing(): boolean {
    return !this.store.get(SEAL_KEY) || this.unconfirmed;
  }

  /** Copied from an unverified manifest, not yet confirmed by an authenticated one. */
  get unconfirmed(): boolean {
    return this.store.get(PENDING_KEY) !== undefined;
  }

  /** The identity as the manifest carries it (base64 values). */
  async forManifest(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [key, value] of await this.stored())
      if (isIdentityKey(key)) out[key] = Buffer.from(value).toString('base64');
    return out;
  }

  /**
   * Copies the identity out of the bucket's manifest, waiting (polling) for a first manifest.
   * Unverified (this replica cannot unseal yet): only the seal configuration and the wrapped
   * master keys are accepted (the schema refuses any other key).
   */
  async copyFrom(bucket: Bucket, pollMs: number, closed: () => boolean): Promise<void> {
    let waitingLogged = 0;
    for (;;) {
      let object: { body: Uint8Array } | undefined;
      try {
        object = await bucket.get(MANIFEST);
      } catch (e) {
        this.log.warn({ bucket: bucket.url, err: (e as Error).message }, 'replica: bucket unreachable; retrying');
      }
      if (object) return this.copy(bucket, object.body);
      if (this.now() - waitingLogged > 10_000) {
        waitingLogged = this.now();
        this.log.info({ bucket: bucket.url }, 'replica: waiting for the primary’s first manifest');
      }
      await new Promise<void>((r) => setTimeout(r, pollMs));
      if (closed()) throw new CofferError('internal', 'replication closed');
    }
  }

  private async copy(bucket: Bucket, manifest: Uint8Array): Promise<void> {
    let body: ManifestBody;
    try {
      ({ body } = readManifestUnverified(manifest));
    } catch (e) {
      throw new ReplicationError(
        e instanceof ReplicationError ? e.code : 'bad_format',
        `refusing to copy the vault identity from ${bucket.url}: ${(e as Error).message}`,
      );
    }
    const entries = Object.entries(body.identity);
    const foreign = entries.find(([key]) => !isIdentityKey(key));
    if (foreign)
      throw new ReplicationError(
        'bad_format',
        `the manifest's identity holds ${JSON.stringify(foreign[0])}, which is not identity`,
      );
    if (!body.identity[SEAL_KEY])
      throw new ReplicationError('bad_format', 'the manifest carries no seal configuration');
    await this.discard(); // a copy from an earlier start that was never confirmed
    await this.store.writeRaw([
      ...entries.map(([key, value]) => ({ type: 'put' as const, key, value: fromB64(value) })),
      { type: 'put', key: PENDING_KEY, value: Buffer.from(String(this.now())) },
    ]);
    this.log.info(
      { bucket: bucket.url },
      'replica: copied the vault identity from the bucket; unseal with the primary’s key to load the snapshot',
    );
  }

  /**
   * The copied identity must be exactly the one the authenticated manifest carries, byte for
   * byte; otherwise the replica refuses to go on and the caller discards the copy (a bucket
   * attacker must not get anything into this store).
   */
  async confirm(manifest: ManifestBody): Promise<void> {
    const copied = await this.stored();
    const verified = Object.entries(manifest.identity);
    const same =
      verified.length === copied.size &&
      verified.every(([key, value]) => {
        const mine = copied.get(key);
        return (
          isIdentityKey(key) &&
          mine !== undefined &&
          Buffer.compare(Buffer.from(mine), Buffer.from(fromB64(value))) === 0
        );
      });
    if (!same) {
      throw new ReplicationError(
        'identity_mismatch',
        'the vault identity (seal configuration, wrapped master keys) copied from the bucket differs from the authenticated manifest: the bucket was tampered with, or the primary changed its keys meanwhile. The copy was discarded; restart this replica to copy it again',
      );
    }
    await this.store.writeRaw([{ type: 'del', key: PENDING_KEY }]);
    this.log.info('replica: the copied vault identity matches the authenticated manifest');
  }

  /** Deletes a copy (nothing copied from the bucket stays unless confirmed). */
  async discard(): Promise<void> {
    const keys = [...(await this.stored()).keys()];
    await this.store.writeRaw([
      ...keys.map((key) => ({ type: 'del' as const, key })),
      { type: 'del', key: PENDING_KEY },
    ]);
  }

  private async stored(): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    const seal = this.store.get(SEAL_KEY);
    if (seal) out.set(SEAL_KEY, seal);
    for (const [key, value] of await this.store.scanPrefix(MASTER_PREFIX)) out.set(key, value);
    return out;
  }
}
