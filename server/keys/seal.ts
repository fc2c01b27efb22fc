import type { Logger } from 'pino';
import type { SealStatus } from '../../sdk/wire/types.js';
import { toBase64, zeroize } from '../crypto/bytes.js';
import { assertRandomHealthy, systemRandom, type RandomSource } from '../crypto/random.js';
import { split } from '../crypto/shamir.js';
import { CofferError, isCofferError } from '../errors.js';
import { Barrier, type SealedStore } from '../store/barrier.js';
import type { Store, Tx } from '../store/db.js';
import { FORMAT_KEY, SEAL_KEY } from '../store/keys.js';
import { CURRENT_FORMAT, formatCodec } from '../store/migrate.js';
import { Keyrings, type KeyringOptions } from './keyring.js';
import { GovernedProvider } from './material.js';
import type { MasterKeyProvider } from './provider.js';
import {
  AUTO_UNSEAL,
  createProvider,
  openAutoProvider,
  openShamirProvider,
  type ProviderContext,
} from './provider-factory.js';
import { checkRecoveryKey, recoveryCheck, shareSetOf, UnsealProgress, verifyQuorum } from './quorum.js';
import type { RootKeySource } from './root-key.js';
import { compatibleSources, readSealConfig, sealConfigCodec, type SealConfig } from './seal-config.js';

export { sealConfigCodec } from './seal-config.js';

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

/**
 * When an unseal hook runs, in this order (in registration order within a phase):
 * - `storage`: what the store must hold before anything reads it (a replica loads its snapshot);
 * - `engines`: engines load what they keep in memory and may write (first signing key, audit key);
 * - `serving`: after every engine is ready (replication turns its lease requirement on and ships
 *   a first snapshot that already holds what the engines created).
 */
export const UNSEAL_PHASES = ['storage', 'engines', 'serving'] as const;
export type UnsealPhase = (typeof UNSEAL_PHASES)[number];
type UnsealHook = (keys: UnsealedKeys) => Promise<void> | void;

const RETRY_MS = [1_000, 2_000, 5_000, 10_000, 30_000];

/**
 * The seal state machine: not initialized -> sealed <-> unsealed. While sealed no key material
 * is in memory. Shamir vaults unseal with `threshold` shares of the root key; auto-unseal
 * sources (key file, env, passphrase, HSM) unseal at start and, after a manual seal, with
 * `threshold` shares of the recovery key issued at init.
 */
export class SealManager {
  private config: SealConfig | undefined;
  private unsealed: UnsealedKeys | undefined;
  private readonly progress: UnsealProgress;
  private busy = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly options: SealOptions;
  private readonly unsealHooks = new Map<UnsealPhase, UnsealHook[]>(UNSEAL_PHASES.map((phase) => [phase, []]));
  private readonly providers: ProviderContext;
  private readonly sealListeners: (() => Promise<void> | void)[] = [];

  /** The storage barrier engines use; open while unsealed, refusing everything otherwise. */
  readonly barrier: Barrier<UnsealedKeys>;

  constructor(
    private readonly store: Store,
    options: Partial<SealOptions> & { source: RootKeySource },
  ) {
    this.options = { env: process.env, keyring: {}, random: systemRandom, now: Date.now, storage: true, ...options };
    this.barrier = new Barrier<UnsealedKeys>(store, () => this.refusal(), this.options.log);
    this.progress = new UnsealProgress(this.options.random);
    this.providers = {
      store,
      source: this.options.source,
      env: this.options.env,
      random: this.options.random,
      log: this.options.log,
    };
    this.config = readSealConfig(store.get(SEAL_KEY));
    const stored = this.config?.source;
    if (stored && !compatibleSources(stored, options.source.kind)) {
      throw new CofferError(
        'invalid_request',
        `this vault was initialized with --kek ${stored}: and cannot be opened with --kek ${options.source.kind}:`,
      );
    }
  }

  /**
   * Runs `hook` after every unseal, in its phase (UNSEAL_PHASES; default `engines`: engines load
   * what they keep in memory, e.g. signing keys). If a hook fails, the vault seals again and the
   * unseal fails.
   */
  onUnseal(hook: UnsealHook, phase: UnsealPhase = 'engines'): void {
    this.unsealHooks.get(phase)?.push(hook);
  }

  /**
   * Runs `listener` when the vault seals (engines drop key material). Returns its removal, for
   * what lives only as long as one request (a backup stream).
   */
  onSeal(listener: () => Promise<void> | void): () => void {
    this.sealListeners.push(listener);
    return () => {
      const at = this.sealListeners.indexOf(listener);
      if (at >= 0) this.sealListeners.splice(at, 1);
    };
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
      progress: this.progress.count,
      provider: this.options.source.kind,
      ...(withNonce && this.progress.nonce ? { nonce: this.progress.nonce } : {}),
      ...(this.unsealed ? { master_key: this.unsealed.provider.status() } : {}),
    };
  }

  /** Conditions an operator must act on, for health: expired imported key material, HSM tokens down. */
  warnings(): string[] {
    if (!this.unsealed) return [];
    const master = this.unsealed.provider.status();
    return [
      ...(master.expired
        ? [
            `master key version ${master.version} expired at ${master.valid_to} (BYOK valid_to): keyrings it wraps cannot be opened`,
          ]
        : []),
      ...(this.unsealed.provider.inner.problems?.() ?? []),
    ];
  }

  /**
   * Initializes the vault once. `stage` adds to the same batch as the seal configuration (the
   * root token's hash), so a crash never leaves a vault initialized without a root token.
   * Shamir vaults stay sealed afterwards; auto-unseal vaults are unsealed.
   */
  async init(
    shares: number,
    threshold: number,
    stage: (tx: Tx, keys: UnsealedKeys) => void | Promise<void>,
  ): Promise<string[]> {
    if (this.config) throw new CofferError('already_initialized', 'vault is already initialized');
    if (this.busy) throw new CofferError('conflict', 'vault initialization is in progress');
    this.busy = true;
    try {
      assertRandomHealthy(this.options.random);
      const random = this.options.random;
      const clusterId = Buffer.from(random(16)).toString('hex');
      const source = this.options.source;
      const config: Omit<SealConfig, 'share_set'> = {
        format: 1,
        cluster_id: clusterId,
        source: source.kind,
        shares,
        threshold,
        created_at: this.options.now(),
      };
      if (source.kind === 'passphrase') config.passphrase_salt = toBase64(random(16));
      const { provider, splitKey } = await createProvider(this.providers, config, clusterId);
      if (source.kind !== 'shamir') config.recovery_check = recoveryCheck(splitKey, clusterId, random);
      let encodedShares: string[];
      try {
        encodedShares = split(splitKey, shares, threshold, random);
      } catch (e) {
        provider.close();
        throw e;
      } finally {
        zeroize(splitKey);
      }
      const full: SealConfig = { ...config, share_set: shareSetOf(encodedShares[0] ?? '') };
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
    this.retryTimer = setTimeout(
      () => {
        this.autoUnsealNow().then(
          () => this.options.log?.info('unsealed from the HSM'),
          (e: unknown) => {
            if (isCofferError(e, 'hsm_unavailable')) return void this.retryAutoUnseal(attempt + 1);
            this.options.log?.error({ error: (e as Error).message }, 'auto-unseal failed: staying sealed');
          },
        );
      },
      RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)],
    );
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
    const provider = await openAutoProvider(this.providers, config, config.cluster_id);
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
    const key = this.progress.add(config, encoded);
    if (!key) return this.status(true);

    this.busy = true;
    try {
      assertRandomHealthy(this.options.random);
      let provider: MasterKeyProvider;
      if (config.source === 'shamir') {
        provider = await openShamirProvider(this.providers, key, config.cluster_id);
      } else {
        checkRecoveryKey(config, key);
        zeroize(key);
        provider = await openAutoProvider(this.providers, config, config.cluster_id);
      }
      await this.becomeUnsealed(this.openKeys(provider));
      return this.status();
    } catch (e) {
      zeroize(key);
      if (isCofferError(e, 'unseal_failed') || isCofferError(e, 'decryption_failed')) {
        throw new CofferError(
          'unseal_failed',
          'the submitted shares do not open this vault; unseal progress was reset',
        );
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
    await verifyQuorum(this.store, this.requireConfig(), encoded);
  }

  /** Forgets the shares submitted so far (with shares pending, only with the first share's nonce). */
  resetUnseal(nonce: string | undefined): SealStatus {
    this.progress.reset(nonce);
    return this.status();
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
    for (const listener of [...this.sealListeners]) await listener(); // a copy: a listener may remove itself
    keys.keyrings.close();
    keys.provider.close();
  }

  private async becomeUnsealed(keys: UnsealedKeys): Promise<void> {
    this.unsealed = keys;
    try {
      if (this.options.storage) await this.barrier.open(keys); // migrates a store written before the barrier first
      for (const phase of UNSEAL_PHASES) for (const hook of this.unsealHooks.get(phase) ?? []) await hook(keys);
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
        if (attempt === 0)
          this.options.log?.warn(
            { keyrings: behind.length, master_version: keys.provider.currentVersion() },
            'an interrupted master key rotation left keyrings under an older master version: re-wrapping them',
          );
        const changed = await keys.keyrings.rewrapUnderCurrentMaster();
        this.options.log?.info(
          { keyrings: changed, master_version: keys.provider.currentVersion() },
          'interrupted master key rotation finished',
        );
        return;
      } catch (e) {
        if (isCofferError(e, 'sealed') || isCofferError(e, 'read_only_replica')) return;
        // A lease not yet taken, a full disk, an HSM away: retried a few times with backoff.
        const retry =
          attempt < RETRY_MS.length && !isCofferError(e, 'key_expired') && !isCofferError(e, 'decryption_failed');
        this.options.log?.[retry ? 'warn' : 'error'](
          { error: (e as Error).message },
          `could not finish an interrupted master key rotation${retry ? ': retrying' : '; POST /v1/sys/rotate re-wraps every keyring'}`,
        );
        if (!retry) return;
        await new Promise((r) => setTimeout(r, RETRY_MS[attempt]).unref());
      }
    }
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
