import { readFileSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { concatBytes, zeroize } from '../../crypto/bytes.js';
import { systemRandom, type RandomSource } from '../../crypto/random.js';
import { CofferError, isCofferError } from '../../errors.js';
import type { HsmImport, MasterKeyProvider } from '../provider.js';
import { Pkcs11Library } from './library.js';
import { GCM_IV_LENGTH, GCM_TAG_LENGTH, HsmToken, PinRefused, pkcs11Code } from './token.js';
import type { HsmMember, PinSource, Pkcs11Settings } from './uri.js';

/**
 * A key wrapped by the HSM names its format, algorithm and master version, authenticated as
 * AAD together with the caller's context:
 *
 *   format 0x01 | algorithm 0x10 (AES-256-GCM in the HSM) | version (u32 BE) | IV (12) | ciphertext | tag (16)
 */
const FORMAT = 0x01;
const ALG_HSM_AES_GCM = 0x10;
const HEADER_LENGTH = 6;
const BACKOFF_MS = [1_000, 2_000, 5_000, 10_000, 30_000];

interface Member {
  token: HsmToken;
  /** Set when the token refused the PIN: never retried until the next unseal. */
  refused?: string;
  failures: number;
  retryAt: number;
}

export interface Pkcs11Options {
  env: NodeJS.ProcessEnv;
  log?: Pick<Logger, 'warn' | 'info' | 'error'>;
  random?: RandomSource;
  now?: () => number;
}

/** Counts of HSM operations, for the benchmark and metrics. */
export interface HsmCalls {
  encrypt: number;
  decrypt: number;
}

/**
 * Master key versions held in PKCS#11 tokens. Keyrings are wrapped with AES-256-GCM inside the
 * token; the key never leaves it. Tokens listed together are a cluster holding the same key:
 * operations use the first healthy one and fail over in order, logging each failover; a failed
 * token is retried with backoff (re-initialising its library when every token of it failed, the
 * only way some clients see a token come back). When none answers: `hsm_unavailable` (503).
 */
export class Pkcs11Provider implements MasterKeyProvider, HsmImport {
  readonly kind = 'pkcs11';
  readonly calls: HsmCalls = { encrypt: 0, decrypt: 0 };
  readonly hsmImport: HsmImport = this;
  private current = 0;
  private closed = false;
  private readonly random: RandomSource;
  private readonly now: () => number;

  private constructor(
    private readonly members: Member[],
    private readonly libraries: Pkcs11Library[],
    private readonly options: Pkcs11Options,
  ) {
    this.random = options.random ?? systemRandom;
    this.now = options.now ?? Date.now;
  }

  /**
   * Connects to every listed token. At least one must open and hold the key; a token that
   * refuses the PIN is reported and never retried (so a wrong PIN cannot lock it).
   */
  static open(settings: Pkcs11Settings, options: Pkcs11Options): Pkcs11Provider {
    const libraries: Pkcs11Library[] = [];
    const members: Member[] = [];
    try {
      for (const m of settings.members) {
        let library = libraries.find((l) => l.path === m.module);
        if (!library) {
          library = Pkcs11Library.acquire(m.module);
          libraries.push(library);
        }
        members.push({
          token: new HsmToken(library, m.token, settings.keyLabel, () => readPin(m, options.env)),
          failures: 0,
          retryAt: 0,
        });
      }
    } catch (e) {
      for (const l of libraries) l.release();
      throw e;
    }
    const provider = new Pkcs11Provider(members, libraries, options);
    const problems: string[] = [];
    for (const member of members) {
      try {
        provider.connect(member);
      } catch (e) {
        problems.push(describe(e));
      }
    }
    const open = members.filter((m) => m.token.isOpen);
    const versions = open.map((m) => m.token.versions());
    provider.current = Math.max(0, ...versions.flat());
    if (open.length === 0 || provider.current === 0) {
      provider.close();
      const why =
        open.length === 0
          ? problems.join('; ')
          : `key "${settings.keyLabel}" not found in ${open.map((m) => `"${m.token.label}"`).join(', ')}: create it with \`coffer hsm init\``;
      throw new CofferError(
        problems.some((p) => p.includes('PIN')) || open.length > 0 ? 'unseal_failed' : 'hsm_unavailable',
        `cannot open the HSM master key: ${why}`,
      );
    }
    for (const member of open) {
      if (!member.token.supportsGcm()) {
        provider.close();
        throw new CofferError(
          'invalid_request',
          `HSM token "${member.token.label}" does not offer CKM_AES_GCM, which Coffer needs to wrap keyrings inside the token`,
        );
      }
      if (Math.max(0, ...member.token.versions()) !== provider.current) {
        options.log?.warn(
          { token: member.token.label },
          'HSM cluster member lacks the newest master key version: it can only serve older versions',
        );
      }
    }
    for (const p of problems) options.log?.warn({ problem: p }, 'HSM cluster member unavailable at start');
    return provider;
  }

  currentVersion(): number {
    return this.current;
  }

  async wrap(key: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
    const header = headerOf(this.current);
    const iv = this.random(GCM_IV_LENGTH);
    const sealed = this.withToken((t) => t.encrypt(this.current, iv, concatBytes(header, context), key));
    this.calls.encrypt++;
    return concatBytes(header, iv, sealed);
  }

  async unwrap(wrapped: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
    const version = this.versionOf(wrapped);
    const header = wrapped.subarray(0, HEADER_LENGTH);
    const iv = wrapped.subarray(HEADER_LENGTH, HEADER_LENGTH + GCM_IV_LENGTH);
    const body = wrapped.subarray(HEADER_LENGTH + GCM_IV_LENGTH);
    const plain = this.withToken((t) => t.decrypt(version, iv, concatBytes(header, context), body));
    this.calls.decrypt++;
    const key = Uint8Array.from(plain);
    plain.fill(0);
    return key;
  }

  versionOf(wrapped: Uint8Array): number {
    if (
      wrapped.length < HEADER_LENGTH + GCM_IV_LENGTH + GCM_TAG_LENGTH ||
      wrapped[0] !== FORMAT ||
      wrapped[1] !== ALG_HSM_AES_GCM
    ) {
      throw new CofferError('decryption_failed', 'decryption failed');
    }
    const version = new DataView(wrapped.buffer, wrapped.byteOffset, wrapped.byteLength).getUint32(2);
    if (version < 1) throw new CofferError('decryption_failed', 'decryption failed');
    return version;
  }

  /** A new version generated inside the token. A cluster cannot: its members would diverge. */
  async rotate(): Promise<number> {
    this.checkOpen();
    if (this.members.length > 1) {
      throw new CofferError(
        'invalid_request',
        'an HSM cluster cannot generate a shared key version: import the same new key into every member (`coffer hsm init --key-file`, or BYOK on a single token)',
      );
    }
    return this.onEveryMember((t, version) => t.generate(version));
  }

  /** Puts given material (already in memory) into every member as a non-extractable version. */
  async importVersion(material: Uint8Array): Promise<number> {
    this.checkOpen();
    if (material.length !== 32) throw new CofferError('invalid_request', 'imported key material must be 256 bits');
    return this.onEveryMember((t, version) => t.create(version, material));
  }

  exportCurrent(): { version: number; material: Uint8Array } {
    throw new CofferError(
      'not_exportable',
      'the master key lives in the HSM as a non-extractable key: it cannot be exported',
    );
  }

  async wrappingPublicKeyPem(): Promise<string> {
    this.checkOpen();
    this.requireSingleToken('BYOK');
    return this.withToken((t) => t.wrappingPublicKeyPem());
  }

  async importWrapped(ephemeral: Uint8Array, material: Uint8Array, oaepHash: 'sha256' | 'sha1'): Promise<number> {
    this.checkOpen();
    this.requireSingleToken('BYOK import');
    return this.onEveryMember((t, version) => t.unwrapImport(version, ephemeral, material, oaepHash));
  }

  /** Whether every listed token answers (for health). */
  healthy(): boolean {
    return this.members.every((m) => m.token.isOpen);
  }

  problems(): string[] {
    return this.members
      .filter((m) => !m.token.isOpen)
      .map((m) =>
        m.refused
          ? `HSM token "${m.token.label}" refused the PIN: fix it and restart`
          : `HSM token "${m.token.label}" is unavailable: failing over (retried with backoff)`,
      );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const m of this.members) m.token.close();
    for (const l of this.libraries) l.release();
  }

  private connect(member: Member): void {
    try {
      member.token.open();
    } catch (e) {
      if (e instanceof PinRefused) member.refused = e.message;
      throw e;
    }
  }

  /** Runs `op` on the first healthy token, failing over in order. */
  private withToken<T>(op: (token: HsmToken) => T): T {
    this.checkOpen();
    const failures: string[] = [];
    for (const member of this.members) {
      if (member.refused) {
        failures.push(member.refused);
        continue;
      }
      if (!member.token.isOpen && !this.reconnect(member)) {
        failures.push(`"${member.token.label}" is down`);
        continue;
      }
      try {
        const result = op(member.token);
        member.failures = 0;
        return result;
      } catch (e) {
        if (isCofferError(e)) {
          if (!isCofferError(e, 'hsm_unavailable')) throw e;
        }
        this.markDown(member, e);
        failures.push(`"${member.token.label}": ${describe(e)}`);
      }
    }
    this.options.log?.error({ failures }, 'no HSM token is available');
    throw new CofferError(
      'hsm_unavailable',
      'no HSM token is available: check the HSM and its network, the vault retries by itself',
    );
  }

  /** Runs `op` on every member with the next version number; all must be reachable. */
  private onEveryMember(op: (token: HsmToken, version: number) => void): number {
    const version = this.current + 1;
    for (const member of this.members) {
      if (!member.token.isOpen && !this.reconnect(member)) {
        throw new CofferError(
          'hsm_unavailable',
          `HSM token "${member.token.label}" is unavailable: every cluster member must be reachable to add a key version`,
        );
      }
    }
    for (const member of this.members) op(member.token, version);
    this.current = version;
    return version;
  }

  private reconnect(member: Member): boolean {
    if (this.now() < member.retryAt) return false;
    const library = member.token.library;
    try {
      try {
        this.connect(member);
      } catch (first) {
        // A library whose every token failed is re-initialised: SoftHSM2 and some network HSM
        // clients only notice a returning token that way. Never while a sibling still works.
        const siblings = this.members.filter((m) => m.token.library === library);
        if (first instanceof PinRefused || siblings.some((m) => m.token.isOpen)) throw first;
        library.reinitialize();
        this.connect(member);
      }
      this.options.log?.info({ token: member.token.label }, 'HSM token is available again');
      member.failures = 0;
      return true;
    } catch (e) {
      this.markDown(member, e);
      return false;
    }
  }

  private markDown(member: Member, e: unknown): void {
    const wasOpen = member.token.isOpen;
    member.token.close();
    member.retryAt = this.now() + BACKOFF_MS[Math.min(member.failures, BACKOFF_MS.length - 1)]!;
    member.failures++;
    if (wasOpen || member.failures === 1) {
      this.options.log?.warn(
        { token: member.token.label, error: describe(e) },
        'HSM token failed: failing over to the next cluster member',
      );
    }
  }

  private requireSingleToken(what: string): void {
    if (this.members.length > 1)
      throw new CofferError(
        'invalid_request',
        `${what} runs on a single HSM token; seed a cluster with \`coffer hsm init --key-file\` on each member`,
      );
  }

  private checkOpen(): void {
    if (this.closed) throw new CofferError('sealed', 'vault is sealed');
  }
}

function headerOf(version: number): Uint8Array {
  const h = new Uint8Array(HEADER_LENGTH);
  h[0] = FORMAT;
  h[1] = ALG_HSM_AES_GCM;
  new DataView(h.buffer).setUint32(2, version);
  return h;
}

function describe(e: unknown): string {
  const code = pkcs11Code(e);
  const message = e instanceof Error ? e.message.split('\n')[0]! : String(e);
  return code !== undefined && !message.startsWith('CKR_') ? `${message} (0x${code.toString(16)})` : message;
}

/** The PIN from its environment variable or file (owner-only), read at each login. */
export function readPin(member: Pick<HsmMember, 'pin' | 'token'>, env: NodeJS.ProcessEnv): string {
  const source: PinSource = member.pin;
  if ('env' in source) {
    const pin = env[source.env];
    if (!pin)
      throw new CofferError(
        'invalid_request',
        `environment variable ${source.env} (pin-env of HSM token "${member.token}") is not set`,
      );
    return pin;
  }
  let text: string;
  try {
    if ((statSync(source.file).mode & 0o077) !== 0) {
      throw new CofferError(
        'invalid_request',
        `PIN file ${source.file} is accessible by other users: run chmod 600 ${source.file}`,
      );
    }
    const raw = readFileSync(source.file);
    text = raw.toString('utf8').replace(/\r?\n$/, '');
    zeroize(raw);
  } catch (e) {
    if (isCofferError(e)) throw e;
    throw new CofferError(
      'invalid_request',
      `PIN file ${source.file} cannot be read: check the path and its permissions`,
    );
  }
  if (!text) throw new CofferError('invalid_request', `PIN file ${source.file} is empty`);
  return text;
}
