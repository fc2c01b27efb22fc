import type { SealStatus } from '../../sdk/wire/types.js';
import { constantTimeEqual, encodeContext, fromBase64, toBase64, zeroize } from '../crypto/bytes.js';
import { KEY_LENGTH } from '../crypto/aead.js';
import { envelopeKeyVersion, openEnvelope, sealEnvelope } from '../crypto/envelope.js';
import { assertRandomHealthy, systemRandom, type RandomSource } from '../crypto/random.js';
import { combine, decodeShare, sameSet, split, type Share } from '../crypto/shamir.js';
import { CofferError, isCofferError } from '../errors.js';
import type { Logger } from 'pino';
import { z } from 'zod';
import { Barrier, type SealedStore } from '../store/barrier.js';
import { decodeStored, jsonCodec } from '../store/codec.js';
import type { Store, Tx } from '../store/db.js';
import { FORMAT_KEY, MASTER_PREFIX, SEAL_KEY } from '../store/keys.js';
import { CURRENT_FORMAT, formatCodec } from '../store/migrate.js';
import { Keyrings, type KeyringOptions } from './keyring.js';
import { GovernedProvider } from './material.js';
import type { MasterKeyProvider } from './provider.js';
import { loadRootKey, type RootKeySource } from './root-key.js';
import { SoftwareProvider } from './software.js';

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
type SealConfig = z.infer<typeof sealConfig>;
export const sealConfigCodec = jsonCodec(sealConfig);

/** What engines read and write: the storage barrier, with the keys of the unsealed vault. */
export type VaultStore = SealedStore<UnsealedKeys>;


export interface UnsealedKeys {
  clusterId: string;
  provider: GovernedProvider;
  keyrings: Keyrings;
}

export interface SealOptions {
  source: RootKeySource;
  log?: Pick<Logger, 'warn' | 'info' | 'error'>;
  env: NodeJS.ProcessEnv;
  keyring: Partial<KeyringOptions>;
  random: RandomSource;
  now: () => number;
  /**
   * Whether an unseal opens the storage barrier (default). `coffer restore` opens the keys of a
   * staging store that holds only the backup's identity, and must not migrate or mark it.
   */
  storage: boolean;
}

const RECOVERY_CHECK = 'coffer recovery key check';
const RETRY_MS = [1_000, 2_000, 5_000, 10_000, 30_000];
const AUTO_UNSEAL: RootKeySource['kind'][] = ['file', 'env', 'passphrase', 'pkcs11'];

/**
 * The seal state machine: not initialized -> sealed <-> unsealed. While sealed no key material
 * is in memory. Shamir vaults unseal with `threshold` shares of the root key; auto-unseal
 * sources (key file, env, passphrase, HSM) unseal at start and, after a manual seal, with
 * `threshold` shares of the recovery key issued at init.
 */
export class SealManager {
  private config: SealConfig | undefined;
  private unsealed: UnsealedKeys | undefined;
  private progress: Share[] = [];
  /** Handed to whoever submits the first share of an unseal; a reset must show it (issue 10). */
  private progressNonce: string | undefined;
  private busy = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly options: SealOptions;
  private readonly unsealListeners: ((keys: UnsealedKeys) => Promise<void> | void)[] = [];
  private readonly sealListeners: (() => void)[] = [];

  /** The storage barrier engines use; open while unsealed, refusing everything otherwise. */
  readonly barrier: Barrier<UnsealedKeys>;

  constructor(private readonly store: Store, options: Partial<SealOptions> & { source: RootKeySource }) {
    this.options = { env: process.env, keyring: {}, random: systemRandom, now: Date.now, storage: true, ...options };
    this.barrier = new Barrier<UnsealedKeys>(store, () => this.refusal(), this.options.log);
    this.config = readConfig(store.get(SEAL_KEY));
    const stored = this.config?.source;
    if (stored && !compatibleSources(stored, options.source.kind)) {
      throw new CofferError(
        'invalid_request',
        `this vault was initialized with --kek ${stored}: and cannot be opened with --kek ${options.source.kind}:`,
      );
    }
  }

  /**
   * Runs `listener` after every unseal (engines load what they keep in memory, e.g. signing
   * keys). If a listener fails, the vault seals again and the unseal fails.
   */
  onUnseal(listener: (keys: UnsealedKeys) => Promise<void> | void): void {
    this.unsealListeners.push(listener);
  }

  /** Runs `listener` when the vault seals (engines drop key material). */
  onSeal(listener: () => void): void {
    this.sealListeners.push(listener);
  }

  get initialized(): boolean {
    return this.config !== undefined;
  }

  get sealed(): boolean {
    return this.unsealed === undefined;
  }

  get autoUnseal(): boolean {
    return AUTO_UNSEAL.includes(this.options.source.kind);
  }

  /** The unsealed keys, or `sealed` / `not_initialized`. */
  keys(): UnsealedKeys {
    if (this.unsealed) return this.unsealed;
    throw this.refusal();
  }

  /** Refuses (`sealed` / `not_initialized`) unless unsealed: the HTTP gate before any token is looked at. */
  requireUnsealed(): void {
    if (!this.unsealed) throw this.refusal();
  }

  private refusal(): CofferError {
    if (!this.config) return new CofferError('not_initialized', 'vault is not initialized: run `coffer init`');
    return new CofferError('sealed', 'vault is sealed: run `coffer unseal`');
  }

  /** Seal status; `nonce` only for the callers that submit shares, never for the public status. */
  status(withNonce = false): SealStatus {
    return {
      initialized: this.initialized,
      sealed: this.sealed,
      threshold: this.config?.threshold ?? 0,
      shares: this.config?.shares ?? 0,
      progress: this.progress.length,
      provider: this.options.source.kind,
      ...(withNonce && this.progressNonce ? { nonce: this.progressNonce } : {}),
      ...(this.unsealed ? { master_key: this.unsealed.provider.status() } : {}),
    };
  }

  /** Conditions an operator must act on, for health: expired imported key material, HSM tokens down. */
  warnings(): string[] {
    if (!this.unsealed) return [];
    const master = this.unsealed.provider.status();
    return [
      ...(master.expired ? [`master key version ${master.version} expired at ${master.valid_to} (BYOK valid_to): keyrings it wraps cannot be opened`] : []),
      ...(this.unsealed.provider.inner.problems?.() ?? []),
    ];
  }

  /**
   * Initializes the vault once. `stage` adds to the same batch as the seal configuration (the
   * root token's hash), so a crash never leaves a vault initialized without a root token.
   * Shamir vaults stay sealed afterwards; auto-unseal vaults are unsealed.
   */
  async init(shares: number, threshold: number, stage: (tx: Tx, keys: UnsealedKeys) => void | Promise<void>): Promise<string[]> {
    if (this.config) throw new CofferError('already_initialized', 'vault is already initialized');
    if (this.busy) throw new CofferError('conflict', 'vault initialization is in progress');
    this.busy = true;
    try {
      assertRandomHealthy(this.options.random);
      const random = this.options.random;
      const clusterId = Buffer.from(random(16)).toString('hex');
      const source = this.options.source;
      const config: Omit<SealConfig, 'share_set'> = { format: 1, cluster_id: clusterId, source: source.kind, shares, threshold, created_at: this.options.now() };
      let provider: MasterKeyProvider;
      let splitKey: Uint8Array;
      if (source.kind === 'shamir') {
        splitKey = random(KEY_LENGTH);
        provider = await SoftwareProvider.create(this.store, Uint8Array.from(splitKey), clusterId, random);
      } else {
        if (source.kind === 'passphrase') config.passphrase_salt = toBase64(random(16));
        provider = await this.openAutoProvider(config, clusterId, true);
        splitKey = random(KEY_LENGTH);
        config.recovery_check = toBase64(sealEnvelope(splitKey, 1, new TextEncoder().encode(RECOVERY_CHECK), encodeContext('coffer/recovery', clusterId), random));
      }
      const encodedShares = split(splitKey, shares, threshold, random);
      const shareSet = toBase64(decodeShare(encodedShares[0]!, KEY_LENGTH).setId);
      zeroize(splitKey);
      const full: SealConfig = { ...config, share_set: shareSet };
      const keys = this.unsealedKeys(clusterId, provider);
      try {
        // Through the barrier with the new keys: what `stage` writes (the first signing key) is sealed.
        await this.barrier.mutateWith(keys, async (tx) => {
          tx.put(SEAL_KEY, sealConfigCodec.encode(full));
          tx.put(FORMAT_KEY, formatCodec.encode(CURRENT_FORMAT));
          await stage(tx, keys);
        });
      } catch (e) {
        keys.keyrings.close();
        provider.close();
        throw e;
      }
      this.config = full;
      if (source.kind === 'shamir') {
        keys.keyrings.close();
        provider.close();
      } else {
        await this.becomeUnsealed(keys);
      }
      return encodedShares;
    } finally {
      this.busy = false;
    }
  }

  /**
   * Auto-unseal at start. An HSM that does not answer leaves the vault sealed and is retried
   * with backoff (never a fallback to another key source); a wrong PIN or key throws.
   */
  async startAutoUnseal(): Promise<void> {
    try {
      await this.autoUnsealNow();
    } catch (e) {
      if (!isCofferError(e, 'hsm_unavailable')) throw e;
      this.options.log?.warn({ error: e.message }, 'HSM unavailable at start: staying sealed and retrying');
      this.retryAutoUnseal(0);
    }
  }

  private retryAutoUnseal(attempt: number): void {
    this.retryTimer = setTimeout(() => {
      this.autoUnsealNow().then(
        () => this.options.log?.info('unsealed from the HSM'),
        (e: unknown) => {
          if (isCofferError(e, 'hsm_unavailable')) return this.retryAutoUnseal(attempt + 1);
          this.options.log?.error({ error: (e as Error).message }, 'auto-unseal failed: staying sealed');
        },
      );
    }, RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]);
    this.retryTimer.unref();
  }

  /** Stops retrying an auto-unseal (shutdown). */
  stopRetrying(): void {
    clearTimeout(this.retryTimer);
  }

  /** Unseals an auto-unseal vault from its key source (at start). */
  async autoUnsealNow(): Promise<void> {
    const config = this.requireConfig();
    if (!this.sealed) return;
    if (!this.autoUnseal) throw new CofferError('invalid_request', 'this vault unseals with shares, not by itself');
    assertRandomHealthy(this.options.random);
    const provider = await this.openAutoProvider(config, config.cluster_id, false);
    await this.becomeUnsealed(this.openKeys(provider));
  }

  /**
   * Adds one share. A malformed share, a share of another split or a repeated share is refused
   * and changes nothing. When the threshold is reached the shares are combined; if they do not
   * open the vault, progress is reset and nothing else happens.
   */
  async submitShare(encoded: string): Promise<SealStatus> {
    const config = this.requireConfig();
    if (!this.sealed) return this.status();
    if (this.busy) throw new CofferError('rate_limited', 'an unseal attempt is in progress: retry shortly');
    const share = decodeShare(encoded, KEY_LENGTH);
    if (toBase64(share.setId) !== config.share_set || share.threshold !== config.threshold) {
      throw new CofferError('invalid_request', 'share does not belong to this vault’s current key split');
    }
    if (this.progress.some((s) => s.x === share.x)) throw new CofferError('invalid_request', 'this share was already submitted');
    if (this.progress[0] && !sameSet(this.progress[0], share)) throw new CofferError('invalid_request', 'share does not match the shares already submitted');
    this.progress.push(share);
    this.progressNonce ??= Buffer.from(this.options.random(16)).toString('base64url');
    if (this.progress.length < config.threshold) return this.status(true);

    this.busy = true;
    const key = combine(this.progress);
    this.resetProgress();
    try {
      assertRandomHealthy(this.options.random);
      let provider: MasterKeyProvider;
      if (config.source === 'shamir') {
        provider = await SoftwareProvider.open(this.store, key, config.cluster_id, this.options.random);
      } else {
        checkRecoveryKey(config, key);
        zeroize(key);
        provider = await this.openAutoProvider(config, config.cluster_id, false);
      }
      await this.becomeUnsealed(this.openKeys(provider));
      return this.status();
    } catch (e) {
      zeroize(key);
      if (isCofferError(e, 'unseal_failed') || isCofferError(e, 'decryption_failed')) {
        throw new CofferError('unseal_failed', 'the submitted shares do not open this vault; unseal progress was reset');
      }
      throw e;
    } finally {
      this.busy = false;
    }
  }

  /**
   * Checks that `encoded` holds a quorum of this vault's current shares (for dangerous
   * operations such as key export). Throws `forbidden` otherwise; keeps nothing.
   */
  async verifyQuorum(encoded: string[]): Promise<void> {
    const config = this.requireConfig();
    const shares = encoded.map((e) => decodeShare(e, KEY_LENGTH));
    const refused = () => new CofferError('forbidden', `a quorum of ${config.threshold} distinct shares of this vault is required`);
    if (new Set(shares.map((s) => s.x)).size !== shares.length || shares.length < config.threshold) throw refused();
    if (shares.some((s) => toBase64(s.setId) !== config.share_set || s.threshold !== config.threshold)) throw refused();
    const key = combine(shares);
    try {
      if (config.source === 'shamir') {
        const first = (await this.store.scanPrefix(MASTER_PREFIX, undefined, 1))[0];
        if (!first) throw refused();
        zeroize(openEnvelope(key, first[1], encodeContext('coffer/master', config.cluster_id, envelopeKeyVersion(first[1]))));
      } else {
        checkRecoveryKey(config, key);
      }
    } catch {
      throw refused();
    } finally {
      zeroize(key);
      for (const s of shares) zeroize(s.y);
    }
  }

  /**
   * Forgets the shares submitted so far. The endpoint needs no token, so a reset of an unseal in
   * progress must show the nonce its first share returned: otherwise anyone who can reach the
   * vault could wipe the administrators' progress over and over.
   */
  resetUnseal(nonce: string | undefined): SealStatus {
    if (this.progress.length > 0) {
      if (nonce === undefined || !constantTimeEqual(Buffer.from(nonce), Buffer.from(this.progressNonce!))) {
        throw new CofferError('invalid_request', 'reset needs the nonce returned with the first share of this unseal (coffer unseal --reset --nonce N)');
      }
    }
    this.resetProgress();
    return this.status();
  }

  private resetProgress(): void {
    for (const s of this.progress) zeroize(s.y);
    this.progress = [];
    this.progressNonce = undefined;
  }

  /**
   * Seals: waits for in-flight mutations to finish, then zeroizes every key in memory. Reads
   * that were waiting on a key fail with `sealed`.
   */
  async seal(): Promise<void> {
    const keys = this.unsealed;
    if (!keys) return;
    this.unsealed = undefined;
    this.barrier.close();
    await this.store.mutate(() => undefined);
    for (const listener of this.sealListeners) listener();
    keys.keyrings.close();
    keys.provider.close();
  }

  private async becomeUnsealed(keys: UnsealedKeys): Promise<void> {
    this.unsealed = keys;
    try {
      if (this.options.storage) await this.barrier.open(keys); // migrates a store written before the barrier first
      for (const listener of this.unsealListeners) await listener(keys);
    } catch (e) {
      await this.seal();
      throw e;
    }
    void this.finishMasterRewrap(keys);
  }

  /**
   * A master rotation (or BYOK import) stores the new version first and then re-wraps the
   * keyrings one batch each: a crash in between leaves some keyrings under the previous version
   * while the new one is current. Every unseal finishes that re-wrap in the background, as the
   * DEK rewrap jobs resume. A replica cannot write: its primary finishes it and ships the result.
   */
  private async finishMasterRewrap(keys: UnsealedKeys): Promise<void> {
    for (let attempt = 0; this.unsealed === keys; attempt++) {
      try {
        const behind = await keys.keyrings.namespacesBehindMaster();
        if (behind.length === 0) return;
        if (attempt === 0) this.options.log?.warn({ keyrings: behind.length, master_version: keys.provider.currentVersion() }, 'an interrupted master key rotation left keyrings under an older master version: re-wrapping them');
        const changed = await keys.keyrings.rewrapUnderCurrentMaster();
        this.options.log?.info({ keyrings: changed, master_version: keys.provider.currentVersion() }, 'interrupted master key rotation finished');
        return;
      } catch (e) {
        if (isCofferError(e, 'sealed') || isCofferError(e, 'read_only_replica')) return;
        // A lease not yet taken, a full disk, an HSM away: retried a few times with backoff.
        const retry = attempt < RETRY_MS.length && !isCofferError(e, 'key_expired') && !isCofferError(e, 'decryption_failed');
        this.options.log?.[retry ? 'warn' : 'error']({ error: (e as Error).message }, `could not finish an interrupted master key rotation${retry ? ': retrying' : '; POST /v1/sys/rotate re-wraps every keyring'}`);
        if (!retry) return;
        await new Promise((r) => setTimeout(r, RETRY_MS[attempt]).unref());
      }
    }
  }

  /**
   * The provider of an auto-unseal source: the software provider under a root key from a file,
   * env var or passphrase, or the HSM (loaded only when configured: it is a native module).
   */
  private async openAutoProvider(config: Pick<SealConfig, 'passphrase_salt'>, clusterId: string, create: boolean): Promise<MasterKeyProvider> {
    const source = this.options.source;
    if (source.kind === 'pkcs11') {
      const [{ Pkcs11Provider }, { parsePkcs11Uri }] = await Promise.all([import('./pkcs11/provider.js'), import('./pkcs11/uri.js')]);
      return Pkcs11Provider.open(parsePkcs11Uri(source.uri), { env: this.options.env, random: this.options.random, ...(this.options.log ? { log: this.options.log } : {}) });
    }
    const rootKey = await loadRootKey(source, this.options.env, saltOf(config));
    return create
      ? SoftwareProvider.create(this.store, rootKey, clusterId, this.options.random)
      : SoftwareProvider.open(this.store, rootKey, clusterId, this.options.random);
  }

  private openKeys(provider: MasterKeyProvider): UnsealedKeys {
    return this.unsealedKeys(this.requireConfig().cluster_id, provider);
  }

  private unsealedKeys(clusterId: string, inner: MasterKeyProvider): UnsealedKeys {
    const provider = new GovernedProvider(inner, this.store, this.options.now);
    return { clusterId, provider, keyrings: new Keyrings(this.store, provider, clusterId, this.options.keyring) };
  }

  private requireConfig(): SealConfig {
    if (!this.config) throw new CofferError('not_initialized', 'vault is not initialized: run `coffer init`');
    return this.config;
  }
}

function checkRecoveryKey(config: SealConfig, key: Uint8Array): void {
  const check = fromBase64(config.recovery_check ?? '');
  if (!check) throw new CofferError('internal', 'recovery key check missing from the seal configuration');
  try {
    openEnvelope(key, check, encodeContext('coffer/recovery', config.cluster_id));
  } catch {
    throw new CofferError('unseal_failed', 'the key does not open this vault');
  }
}

function saltOf(config: { passphrase_salt?: string }): Uint8Array | undefined {
  return config.passphrase_salt ? fromBase64(config.passphrase_salt) : undefined;
}

function compatibleSources(stored: RootKeySource['kind'], given: RootKeySource['kind']): boolean {
  const raw = ['file', 'env'];
  return stored === given || (raw.includes(stored) && raw.includes(given));
}

function readConfig(raw: Uint8Array | undefined): SealConfig | undefined {
  return raw ? decodeStored(sealConfigCodec, raw, 'seal configuration', SEAL_KEY) : undefined;
}
