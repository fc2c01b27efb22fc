import type { KeyObject } from 'node:crypto';
import { SignJWT, exportJWK, jwtVerify, type JWK } from 'jose';
import { z } from 'zod';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { createSealedKeyPair, openSealedKeyPair, type SealedKeyPairRecord } from '../keys/sealed-keypair.js';
import { CofferError } from '../errors.js';
import type { SealManager, UnsealedKeys } from '../keys/seal.js';
import type { Store, Tx } from '../store/db.js';

/**
 * Coffer-issued tokens: EdDSA JWTs (`typ: coffer+jwt`) with `iss` and `aud` bound to this
 * cluster, signed by a key kept in the vault under the `sys` keyring. Verification pins the
 * algorithm, type, issuer and audience (RFC 8725); a verified token is cached until it expires,
 * and its `jti` is checked against the revocation set on every use.
 */
export const TOKEN_TYPE = 'coffer+jwt';
const SIGNING_PREFIX = 'auth/signing/';
const REVOKED_PREFIX = 'auth/revoked/';
const CACHE_LIMIT = 10_000;

export interface TokenClaims {
  sub: string;
  groups: string[];
  policies: string[];
  iat: number;
  exp: number;
  /** Renewals never extend `exp` past this (seconds since the epoch). */
  max_exp: number;
  jti: string;
  method: string;
  root?: boolean;
  /** Identity details copied from the login (jwt `claim_mappings`), for self and the audit. */
  meta?: Record<string, string>;
}

const claimsSchema = z.object({
  sub: z.string().min(1).max(256),
  groups: z.array(z.string().max(64)).max(64),
  policies: z.array(z.string().max(64)).max(64),
  iat: z.number().int().nonnegative(),
  exp: z.number().int().positive(),
  max_exp: z.number().int().positive(),
  jti: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
  method: z.string().max(32),
  root: z.boolean().optional(),
  meta: z.record(z.string().max(64), z.string().max(512)).optional(),
});

const PURPOSE = 'token-signing';

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
  record: SigningRecord;
}

/** Stored per signing key: the sealed pair, how long its tokens may live, when it retires. */
interface SigningRecord extends SealedKeyPairRecord {
  /** Upper bound (seconds) of the `max_exp` of every token this key signed; kept an hour ahead. */
  signed_until: number;
  /** Once past (seconds), tokens signed by this key are refused and it leaves the JWKS. */
  retire_at?: number;
}

export interface IssueRequest {
  sub: string;
  groups: string[];
  policies?: string[];
  ttlSeconds: number;
  maxTtlSeconds: number;
  method: string;
  root?: boolean;
  meta?: Record<string, string>;
}

export class TokenService {
  private keys = new Map<string, SigningKey>();
  private current: SigningKey | undefined;
  private revoked = new Map<string, number>();
  private readonly verified = new Map<string, { claims: TokenClaims; kid: string }>();
  private issuer = '';
  private unsealed: UnsealedKeys | undefined;
  /** Writes of signing records run one at a time, so each starts from the last one's result. */
  private recordWrites: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    seal: SealManager,
    private readonly now: () => number = Date.now,
    private readonly random: RandomSource = systemRandom,
  ) {
    seal.onUnseal((keys) => this.load(keys));
    seal.onSeal(() => this.unload());
  }

  /** Creates the first signing key and the root token inside init's batch. */
  async createRoot(tx: Tx, keys: UnsealedKeys): Promise<string> {
    this.issuer = issuerOf(keys.clusterId);
    const key = await this.createSigningKey(tx, keys);
    this.keys.set(key.kid, key);
    this.current = key;
    await this.coverLifetime(key, Math.floor(this.now() / 1000) + ROOT_TTL, tx);
    return this.sign(key, { sub: 'root', groups: [], policies: [], ttlSeconds: ROOT_TTL, maxTtlSeconds: ROOT_TTL, method: 'root', root: true });
  }

  async issue(request: IssueRequest): Promise<{ token: string; claims: TokenClaims }> {
    const key = this.requireCurrent();
    await this.coverLifetime(key, Math.floor(this.now() / 1000) + request.maxTtlSeconds);
    const token = await this.sign(key, request);
    return { token, claims: (await this.verify(token))! };
  }

  /**
   * The claims of a valid, unexpired, unrevoked token, or `undefined`. A cache hit costs a map
   * lookup, the expiry check and the revocation check.
   */
  async verify(token: string): Promise<TokenClaims | undefined> {
    if (token.length > 8192) return undefined;
    const nowSeconds = Math.floor(this.now() / 1000);
    let entry = this.verified.get(token);
    if (!entry) {
      if (this.keys.size === 0) return undefined;
      try {
        const { payload, protectedHeader } = await jwtVerify(token, (header) => this.publicKeyFor(header.kid), {
          algorithms: ['EdDSA'],
          typ: TOKEN_TYPE,
          issuer: this.issuer,
          audience: this.issuer,
          currentDate: new Date(this.now()),
          clockTolerance: 0,
          requiredClaims: ['exp', 'iat', 'jti', 'sub'],
        });
        const parsed = claimsSchema.safeParse(payload);
        if (!parsed.success || parsed.data.exp > parsed.data.max_exp) return undefined;
        entry = { claims: parsed.data, kid: protectedHeader.kid! };
      } catch {
        return undefined;
      }
      if (this.verified.size >= CACHE_LIMIT) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, entry);
    }
    const { claims } = entry;
    if (claims.exp <= nowSeconds || !this.isActive(this.keys.get(entry.kid), nowSeconds)) {
      this.verified.delete(token);
      return undefined;
    }
    if (this.revoked.has(claims.jti)) return undefined;
    return claims;
  }

  /**
   * Makes a new signing key current. The previous keys keep verifying the tokens they signed
   * until those expire (`signed_until`), or stop at once with `retirePrevious` (compromise):
   * then every older token dies, and the caller's own token is re-issued under the new key.
   */
  async rotateSigningKey(retirePrevious: boolean, caller?: TokenClaims): Promise<{ kid: string; token?: string }> {
    const keys = this.unsealedKeys();
    const nowSeconds = Math.floor(this.now() / 1000);
    await this.recordWrite(async () => {
      // Memory changes only once the write succeeded (a replica or a fenced primary refuses it).
      const retired = [...this.keys.values()].map((key) => ({
        key,
        record: { ...key.record, retire_at: Math.min(key.record.retire_at ?? Infinity, retirePrevious ? nowSeconds : key.record.signed_until) },
      }));
      const created = await this.store.mutate(async (tx) => {
        for (const { key, record } of retired) tx.put(SIGNING_PREFIX + key.kid, Buffer.from(JSON.stringify(record)));
        return this.createSigningKey(tx, keys);
      });
      for (const { key, record } of retired) key.record = record;
      this.keys.set(created.kid, created);
      this.current = created;
    });
    this.verified.clear();
    if (!retirePrevious || !caller) return { kid: this.current!.kid };
    // The caller's own token died with the old keys: hand back the same grant under the new key.
    const key = this.requireCurrent();
    await this.coverLifetime(key, caller.max_exp);
    const token = await this.signClaims(key, { ...caller, iat: nowSeconds, jti: this.newJti() });
    return { kid: key.kid, token };
  }
  /** A new token for the same identity, expiring at most at the original `max_exp`. */
  async renew(claims: TokenClaims, ttlSeconds: number): Promise<{ token: string; claims: TokenClaims }> {
    const nowSeconds = Math.floor(this.now() / 1000);
    if (nowSeconds >= claims.max_exp) throw new CofferError('forbidden', 'token reached its maximum lifetime: log in again');
    const key = this.requireCurrent();
    await this.coverLifetime(key, claims.max_exp);
    const exp = Math.min(nowSeconds + ttlSeconds, claims.max_exp);
    const token = await this.signClaims(key, { ...claims, iat: nowSeconds, exp, jti: this.newJti() });
    return { token, claims: (await this.verify(token))! };
  }

  /**
   * Reloads signing keys and revocations from the store: a replica calls it after applying
   * changes shipped by the primary, so a token revoked there stops working here too.
   */
  async reload(): Promise<void> {
    if (this.unsealed) await this.load(this.unsealed);
  }

  /** Revokes a token id until the token would have expired anyway. Idempotent. */
  async revoke(jti: string, exp: number): Promise<void> {
    if (this.revoked.has(jti)) return;
    await this.store.mutate((tx) => tx.put(REVOKED_PREFIX + jti, Buffer.from(String(exp))));
    this.revoked.set(jti, exp);
  }

  isRevoked(jti: string): boolean {
    return this.revoked.has(jti);
  }

  /** Public keys that still verify tokens. */
  jwks(): { keys: JWK[] } {
    const nowSeconds = Math.floor(this.now() / 1000);
    return { keys: [...this.keys.values()].filter((k) => this.isActive(k, nowSeconds)).map((k) => k.publicJwk) };
  }

  private isActive(key: SigningKey | undefined, nowSeconds: number): boolean {
    return key !== undefined && (key.record.retire_at === undefined || key.record.retire_at > nowSeconds);
  }

  private async load(keys: UnsealedKeys): Promise<void> {
    this.issuer = issuerOf(keys.clusterId);
    this.unsealed = keys;
    const loaded = new Map<string, SigningKey>();
    let newest: { key: SigningKey; created: number } | undefined;
    for (const [, raw] of await this.store.scanPrefix(SIGNING_PREFIX)) {
      const record = JSON.parse(Buffer.from(raw).toString('utf8')) as SigningRecord;
      const pair = await openSealedKeyPair(keys, record, PURPOSE);
      const signing = { ...pair, publicJwk: await publicJwk(pair.publicKey, pair.kid), record };
      loaded.set(record.kid, signing);
      if (record.retire_at === undefined && (!newest || record.created_at > newest.created)) newest = { key: signing, created: record.created_at };
    }
    if (!newest) {
      newest = { key: await this.store.mutate((tx) => this.createSigningKey(tx, keys)), created: this.now() };
      loaded.set(newest.key.kid, newest.key);
    }
    this.keys = loaded;
    this.current = newest.key;
    const nowSeconds = Math.floor(this.now() / 1000);
    this.revoked.clear();
    for (const [k, v] of await this.store.scanPrefix(REVOKED_PREFIX)) {
      const exp = Number(Buffer.from(v).toString());
      if (exp > nowSeconds) this.revoked.set(k.slice(REVOKED_PREFIX.length), exp);
    }
  }

  private unload(): void {
    this.unsealed = undefined;
    this.keys = new Map();
    this.current = undefined;
    this.verified.clear();
  }

  private async createSigningKey(tx: Tx, keys: UnsealedKeys): Promise<SigningKey> {
    const { record: sealed, pair } = await createSealedKeyPair(tx, keys, PURPOSE, this.now(), this.random);
    const record: SigningRecord = { ...sealed, signed_until: 0 };
    tx.put(SIGNING_PREFIX + record.kid, Buffer.from(JSON.stringify(record)));
    return { ...pair, publicJwk: await publicJwk(pair.publicKey, pair.kid), record };
  }

  /**
   * Raises the key's persisted `signed_until` before a token that outlives it is handed out,
   * an hour at a time, so most logins write nothing. The record in memory is raised only once
   * the write succeeded: a refused write (a replica, a fenced primary) must not let later
   * logins skip it. With `tx` (init's batch) the caller's batch is the write.
   */
  private async coverLifetime(key: SigningKey, maxExp: number, tx?: Tx): Promise<void> {
    if (maxExp <= key.record.signed_until) return;
    const raise = () => ({ ...key.record, signed_until: maxExp + 3600 });
    if (tx) {
      key.record = raise();
      tx.put(SIGNING_PREFIX + key.kid, Buffer.from(JSON.stringify(key.record)));
      return;
    }
    await this.recordWrite(async () => {
      if (maxExp <= key.record.signed_until) return; // a write that finished meanwhile covers it
      const record: SigningRecord = raise();
      await this.store.mutate((t) => t.put(SIGNING_PREFIX + key.kid, Buffer.from(JSON.stringify(record))));
      key.record = record;
    });
  }

  private recordWrite<T>(write: () => Promise<T>): Promise<T> {
    const run = this.recordWrites.then(write);
    this.recordWrites = run.catch(() => undefined);
    return run;
  }

  private unsealedKeys(): UnsealedKeys {
    if (!this.unsealed) throw new CofferError('sealed', 'vault is sealed');
    return this.unsealed;
  }

  private publicKeyFor(kid: string | undefined): KeyObject {
    const key = kid === undefined ? undefined : this.keys.get(kid);
    if (!key || !this.isActive(key, Math.floor(this.now() / 1000))) throw new CofferError('unauthenticated', 'unknown signing key');
    return key.publicKey;
  }

  private requireCurrent(): SigningKey {
    if (!this.current) throw new CofferError('sealed', 'vault is sealed');
    return this.current;
  }

  private sign(key: SigningKey, request: IssueRequest): Promise<string> {
    const iat = Math.floor(this.now() / 1000);
    const max_exp = iat + request.maxTtlSeconds;
    return this.signClaims(key, {
      sub: request.sub,
      groups: request.groups,
      policies: request.policies ?? [],
      iat,
      exp: Math.min(iat + request.ttlSeconds, max_exp),
      max_exp,
      jti: this.newJti(),
      method: request.method,
      ...(request.root ? { root: true } : {}),
      ...(request.meta && Object.keys(request.meta).length > 0 ? { meta: request.meta } : {}),
    });
  }

  private signClaims(key: SigningKey, claims: TokenClaims): Promise<string> {
    return new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'EdDSA', typ: TOKEN_TYPE, kid: key.kid })
      .setIssuer(this.issuer)
      .setAudience(this.issuer)
      .sign(key.privateKey);
  }

  private newJti(): string {
    return Buffer.from(this.random(16)).toString('base64url');
  }
}

/** Root tokens last ten years; they are revocable like any other token. */
const ROOT_TTL = 10 * 365 * 86_400;
const issuerOf = (clusterId: string) => `coffer:${clusterId}`;
const publicJwk = async (key: KeyObject, kid: string): Promise<JWK> => ({ ...(await exportJWK(key)), kid, alg: 'EdDSA', use: 'sig' });
