import type { KeyObject } from 'node:crypto';
import { SignJWT, exportJWK, jwtVerify, type JWK } from 'jose';
import { z } from 'zod';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { createSealedKeyPair, openSealedKeyPair, sealedKeyPairShape } from '../keys/sealed-keypair.js';
import { CofferError } from '../errors.js';
import type { Principal } from './access.js';
import type { SealManager, UnsealedKeys, VaultStore } from '../keys/seal.js';
import type { Table, Tx } from '../store/barrier.js';
import { decimalCodec, decodeStored, jsonCodec } from '../store/codec.js';
import { CHILDREN_PREFIX, CUTOFF_PREFIX, RENEWED_PREFIX, REVOKED_PREFIX, SIGNING_PREFIX } from '../store/keys.js';

/**
 * Coffer-issued tokens: EdDSA JWTs (`typ: coffer+jwt`) with `iss` and `aud` bound to this
 * cluster, signed by a key kept in the vault under the `sys` keyring. Verification pins the
 * algorithm, type, issuer and audience (RFC 8725); a verified token's claims are cached, and
 * on every use its expiry is re-evaluated and its `jti` (and its ancestors') checked against
 * the revocation set.
 *
 * Lifetime: the JWT `exp` is the hard bound (the max TTL) and `ttl_exp` the expiry when issued.
 * Renewing extends the same token by writing `auth/renewed/<jti>` (the new soft expiry), kept,
 * loaded and replicated with the revocation set; the effective expiry is
 * `min(exp, max(ttl_exp, renewed))`. Logins stay write-free; a renewal is one small write.
 *
 * Tree: a token minted by another (token/create) carries `parent` (the minter's jti) and is
 * indexed under `auth/children/<parent>/<child>`; revoking a token revokes its descendants in
 * one batch, and verification also refuses a token whose ancestor is revoked (closing the race
 * of a child minted while its parent is being revoked). A token holds at most `maxChildren`
 * (config `token_max_children`) live children: not revoked and before their hard `exp`.
 *
 * Bounded state (SECURITY-CASES J13): every record's value is the time (seconds) after which it
 * no longer matters: a revocation and a tree edge the token's hard `exp`, a renewal the soft
 * expiry it set (past it the token is dead and can never be renewed again). Memory drops an entry
 * at that time; on a server that may write (the primary) the sweep, every `sweepIntervalMs`,
 * deletes the record from the store `SWEEP_GRACE_SECONDS` later, in bounded batches. Replicas
 * never delete: the primary's deletes reach them through replication, and `applyChanged`
 * applies each shipped change from its key alone, so a replica's apply cost does not grow with
 * the history.
 */
export const TOKEN_TYPE = 'coffer+jwt';
const CACHE_LIMIT = 10_000;
/** Tokens minted between two sweeps of expired in-memory state. */
const SWEEP_EVERY = 1024;
/** A tree deeper than this is refused at mint (and bounds the ancestor walk on every use). */
export const MAX_TREE_DEPTH = 32;
/** The default of config `token_max_ttl_s`. */
export const DEFAULT_TOKEN_MAX_TTL = 32 * 86_400;
/** The default of config `token_max_children`: live children one token may hold. */
export const DEFAULT_TOKEN_MAX_CHILDREN = 1000;
/**
 * A record is deleted from the store this long after it stopped mattering, so that a replica
 * whose clock runs a little behind the primary's has dropped it from memory by then.
 */
export const SWEEP_GRACE_SECONDS = 300;
const SWEEP_INTERVAL_MS = 60_000;
/** Deletes per batch (one `store.mutate`, one change-log record), and batches per sweep. */
const SWEEP_BATCH = 500;
const SWEEP_BATCHES = 20;
/** Expired records remembered for deletion; beyond it, the sweep pages through the store for them. */
const EXPIRED_LIMIT = 100_000;
const RESCAN_PAGE = 5_000;
const RESCAN_PAGES = 20;

/** The signed claims. All times are seconds since the epoch. */
export interface TokenClaims {
  sub: string;
  groups: string[];
  policies: string[];
  iat: number;
  /** Hard expiry: the token's maximum lifetime; no renewal goes past it. */
  exp: number;
  /** Expiry when issued (renewals move it later, up to `exp`). Absent on tokens signed before renew-in-place: then `exp`. */
  ttl_exp?: number | undefined;
  /** Only on tokens signed before renew-in-place (their soft `exp` had to stay within it). */
  max_exp?: number | undefined;
  jti: string;
  method: string;
  root?: boolean | undefined;
  /** The jti of the token that minted this one: revoking that one revokes this one. */
  parent?: string | undefined;
  /** Identity details copied from the login (jwt `claim_mappings`), for self and the audit. */
  meta?: Record<string, string> | undefined;
  /**
   * The principals a minted token is confined within: its minter's, then theirs (token/create,
   * mint.ts). A request is allowed only if each of them would be allowed too, with their groups
   * as they are at that request, so no child reaches past a deny or a withdrawn membership of
   * its minter.
   */
  within?: Principal[] | undefined;
}

/** The claims of a valid token plus its effective expiry now (the server's renewal record applied). */
export type ActiveClaims = TokenClaims & { readonly expires: number };

const JTI = /^[A-Za-z0-9_-]{16,64}$/;

/**
 * An identity is at most this long: a CI login's is `jwt:<role>:<sub>`, and a GitHub `sub`
 * names the repository and the ref (`repo:<org>/<repo>:ref:refs/heads/<branch>`), whose parts
 * may be 39, 100 and 255 characters long.
 */
export const MAX_IDENTITY_LENGTH = 1024;

const principalSchema = z.strictObject({
  sub: z.string().min(1).max(MAX_IDENTITY_LENGTH),
  groups: z.array(z.string().max(64)).max(64),
  policies: z.array(z.string().max(64)).max(64),
});

const claimsSchema = z
  .object({
    sub: z.string().min(1).max(MAX_IDENTITY_LENGTH),
    groups: z.array(z.string().max(64)).max(64),
    policies: z.array(z.string().max(64)).max(64),
    iat: z.number().int().nonnegative(),
    exp: z.number().int().positive(),
    ttl_exp: z.number().int().positive().optional(),
    max_exp: z.number().int().positive().optional(),
    jti: z.string().regex(JTI),
    method: z.string().max(32),
    root: z.boolean().optional(),
    parent: z.string().regex(JTI).optional(),
    meta: z.record(z.string().max(64), z.string().max(512)).optional(),
    within: z.array(principalSchema).min(1).max(MAX_TREE_DEPTH).optional(),
  })
  .refine((c) => (c.ttl_exp === undefined || c.ttl_exp <= c.exp) && (c.max_exp === undefined || c.exp <= c.max_exp));

export interface TokenOptions {
  now?: () => number;
  /** Config `token_max_ttl_s`: no token but the root token from init lives longer. */
  maxTtlSeconds?: number;
  /** Config `token_max_children`: live children one token may hold (the root token's too). */
  maxChildren?: number;
  /**
   * Whether this server may write: false on a replica, which never sweeps the store (the
   * primary's deletes reach it through replication). Default: always.
   */
  writable?: () => boolean;
  /** Between two sweeps of expired token state (default a minute; 0: only when `sweepStore` is called). */
  sweepIntervalMs?: number;
}

const PURPOSE = 'token-signing';

/** A token whose signature and claims were checked: its claims and the key that signed it. */
interface VerifiedToken {
  claims: TokenClaims;
  kid: string;
}

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
  record: SigningRecord;
}

/** Stored per signing key: the sealed pair, how long its tokens may live, when it retires. */
const signingRecord = z.object({
  ...sealedKeyPairShape,
  /** Upper bound (seconds) of the `max_exp` of every token this key signed; kept an hour ahead. */
  signed_until: z.number(),
  /** Once past (seconds), tokens signed by this key are refused and it leaves the JWKS. */
  retire_at: z.number().optional(),
});
type SigningRecord = z.infer<typeof signingRecord>;

/** A token-state record's value: the time (seconds) it matters until. */
const untilOf = (key: string, raw: Uint8Array) => decodeStored(decimalCodec, raw, 'token state record', key);

/** The longest token a request may carry (longer ones are refused unread, and never issued). */
const MAX_TOKEN_LENGTH = 8192;

/**
 * What a deletion cuts off (TokenService.cutOff): a login source (its tokens are refused) or a
 * group (tokens issued before carry it no longer, so a group made again under the name of a
 * deleted one grants nothing to tokens that named the old one).
 */
const LOGIN_SOURCE = /^(user|approle|jwt|group):[a-z0-9._-]{1,64}$/;

/** The login source of an identity (`user:alice`, `approle:ci`, `jwt:<role>` of `jwt:<role>:<sub>`); none for minted identities. */
export function loginSourceOf(sub: string): string | undefined {
  const [kind, name] = sub.split(':', 2);
  if ((kind === 'user' || kind === 'approle' || kind === 'jwt') && name) return `${kind}:${name}`;
  return undefined;
}

/** A cut-off record's id is `<source>@<at>` (sources hold no `@`: LOGIN_SOURCE). */
function parseCutoff(id: string): { source: string; at: number } | undefined {
  const sep = id.lastIndexOf('@');
  const at = Number(id.slice(sep + 1));
  return sep > 0 && Number.isSafeInteger(at) ? { source: id.slice(0, sep), at } : undefined;
}

export interface IssueRequest {
  sub: string;
  groups: string[];
  policies?: string[];
  ttlSeconds: number;
  maxTtlSeconds: number;
  method: string;
  root?: boolean;
  /** The minter's jti (token/create); absent for logins and orphans. */
  parent?: string;
  meta?: Record<string, string>;
  /** token/create: the minter's principal and those it is confined within (TokenClaims.within). */
  within?: Principal[];
  /**
   * A login: when it began (seconds), before it read its user or role. A cut-off of its source
   * at or after then (the login deleted while the password hash or the JWKS fetch ran) refuses it.
   */
  loginStartedAt?: number;
}

export class TokenService {
  /** Store prefixes whose replicated changes a replica passes to `applyChanged` (wired in main.ts). */
  static readonly STATE_PREFIXES: readonly string[] = [
    SIGNING_PREFIX,
    REVOKED_PREFIX,
    RENEWED_PREFIX,
    CHILDREN_PREFIX,
    CUTOFF_PREFIX,
  ];
  /** Config `token_max_ttl_s`. */
  readonly maxTtlSeconds: number;
  /** Config `token_max_children`. */
  readonly maxChildren: number;
  private keys = new Map<string, SigningKey>();
  private current: SigningKey | undefined;
  /** Revoked jti → until when the record matters (the token's hard `exp`). */
  private revoked = new Map<string, number>();
  /** jti → soft expiry set by the last renewal. */
  private renewed = new Map<string, number>();
  /**
   * Cut-offs, source → when it was deleted and until when that matters (every token issued
   * before has expired by then): a login source's tokens issued until `at` are refused, and
   * every token minted below one; a group is no longer carried by tokens issued until `at`.
   * One per source: a newer deletion covers all an older one did (its record replaces it).
   */
  private cutoffs = new Map<string, { at: number; until: number }>();
  /** The token tree: child jti → its parent and hard expiry, and parent jti → children. */
  private parentOf = new Map<string, { parent: string; exp: number }>();
  private childrenOf = new Map<string, Set<string>>();
  private sinceSweep = 0;
  /** Store keys of records found past their time (key → that time), for the sweep to delete. */
  private readonly expired = new Map<string, number>();
  /** Set when `expired` overflowed or this server became writable: the sweep pages through the store. */
  private rescan: { prefix: number; after?: string } | undefined;
  private wasWritable: boolean | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> | undefined;
  private readonly writable: () => boolean;
  private readonly sweepIntervalMs: number;
  private readonly verified = new Map<string, VerifiedToken>();
  private issuer = '';
  private unsealed: UnsealedKeys | undefined;
  /** Writes of signing records run one at a time, so each starts from the last one's result. */
  private recordWrites: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;
  private readonly signing: Table<SigningRecord, UnsealedKeys>;
  private readonly revocations: Table<number, UnsealedKeys>;
  private readonly renewals: Table<number, UnsealedKeys>;
  /** Tree edges, `<parent>/<child>`: until the child's hard `exp`. */
  private readonly edges: Table<number, UnsealedKeys>;
  private readonly cutoffRecords: Table<number, UnsealedKeys>;

  /** `clock` is the clock itself (tests) or the options. */
  constructor(
    private readonly store: VaultStore,
    seal: SealManager,
    clock: (() => number) | TokenOptions = {},
    private readonly random: RandomSource = systemRandom,
  ) {
    const options = typeof clock === 'function' ? { now: clock } : clock;
    this.now = options.now ?? Date.now;
    this.maxTtlSeconds = options.maxTtlSeconds ?? DEFAULT_TOKEN_MAX_TTL;
    this.maxChildren = options.maxChildren ?? DEFAULT_TOKEN_MAX_CHILDREN;
    this.writable = options.writable ?? (() => true);
    this.sweepIntervalMs = options.sweepIntervalMs ?? SWEEP_INTERVAL_MS;
    this.signing = store.table(SIGNING_PREFIX, jsonCodec(signingRecord), 'token-signing key');
    this.revocations = store.table(REVOKED_PREFIX, decimalCodec, 'token revocation');
    this.renewals = store.table(RENEWED_PREFIX, decimalCodec, 'token renewal');
    this.edges = store.table(CHILDREN_PREFIX, decimalCodec, 'token tree edge');
    this.cutoffRecords = store.table(CUTOFF_PREFIX, decimalCodec, 'login cut-off');
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
    return this.signClaims(
      key,
      this.claimsFor({
        sub: 'root',
        groups: [],
        policies: [],
        ttlSeconds: ROOT_TTL,
        maxTtlSeconds: ROOT_TTL,
        method: 'root',
        root: true,
      }),
    );
  }

  /**
   * Signs a token. Lifetimes are capped at `token_max_ttl_s` (a login role asking for more gets
   * the cap; token/create refuses before it gets here). A token with a `parent` is entered in
   * the tree before it is handed out, and refused if that parent was revoked meanwhile or
   * already holds `maxChildren` live children (403).
   */
  async issue(request: IssueRequest): Promise<{ token: string; claims: ActiveClaims }> {
    const key = this.requireCurrent();
    const maxTtlSeconds = Math.min(request.maxTtlSeconds, this.maxTtlSeconds);
    const { loginStartedAt, ...rest } = request;
    const claims = this.claimsFor({
      ...rest,
      maxTtlSeconds,
      ttlSeconds: Math.min(rest.ttlSeconds, maxTtlSeconds),
    });
    // Checked in the same turn as `iat` is set: a deletion after this has a cut-off at or past
    // `iat`. A login counts from when it began, before it read its user or role.
    if (this.isCutOff(claims, loginStartedAt))
      throw new CofferError('unauthenticated', 'this login was deleted while it ran, or a moment before: log in again');
    if (claims.parent) this.checkChildQuota(claims.parent); // before any write (adopt counts again, atomically)
    await this.coverLifetime(key, claims.exp);
    if (claims.parent) await this.adopt(claims.parent, claims.jti, claims.exp);
    const token = await this.signClaims(key, claims);
    if (token.length > MAX_TOKEN_LENGTH)
      throw new CofferError(
        'invalid_request',
        `the token would be ${token.length} characters, over the ${MAX_TOKEN_LENGTH} a request may carry: grant fewer groups or policies`,
      );
    // The claims just signed go into the verify cache as a presented token's would, through the
    // same schema: verifying the server's own signature again would cost an Ed25519 verify per
    // login. The checks of every use (revocation of the parent meanwhile, key retired) still run.
    const active = this.activeOf(token, this.remember(token, { claims: claimsSchema.parse(claims), kid: key.kid }));
    if (!active) throw new CofferError('unauthenticated', 'the minting token was revoked: log in again');
    return { token, claims: active };
  }

  /**
   * The claims of a valid, unexpired, unrevoked token, or `undefined`. A cache hit costs a map
   * lookup, the expiry check and the revocation check.
   */
  async verify(token: string): Promise<ActiveClaims | undefined> {
    if (token.length > MAX_TOKEN_LENGTH) return undefined;
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
        if (!parsed.success) return undefined;
        entry = this.remember(token, { claims: parsed.data, kid: protectedHeader.kid! });
      } catch {
        return undefined;
      }
    }
    return this.activeOf(token, entry);
  }

  /** Caches a token's checked claims; the oldest entry goes first past CACHE_LIMIT. */
  private remember(token: string, entry: VerifiedToken): VerifiedToken {
    if (this.verified.size >= CACHE_LIMIT) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, entry);
    return entry;
  }

  /** A verified token's claims if it is still active now: unexpired, its key active, not renewed past, not revoked. */
  private activeOf(token: string, entry: VerifiedToken): ActiveClaims | undefined {
    const nowSeconds = Math.floor(this.now() / 1000);
    const { claims } = entry;
    if (claims.exp <= nowSeconds || !this.isActive(this.keys.get(entry.kid), nowSeconds)) {
      this.verified.delete(token);
      return undefined;
    }
    // Decided on every use, cached or not: a renewal or a revocation takes effect at once.
    const expires = this.expiresOf(claims);
    if (expires <= nowSeconds || this.isRevokedTree(claims) || this.isCutOff(claims)) return undefined;
    return { ...claims, expires };
  }

  /**
   * Whether the token's login source, or that of a token it was minted below, was deleted at or
   * after `since` (its `iat`; a login being issued: when the login began). The same second
   * counts: refusing is the safe side.
   */
  private isCutOff(claims: TokenClaims, since = claims.iat): boolean {
    if (this.cutoffs.size === 0) return false;
    const cut = (sub: string) => {
      const source = loginSourceOf(sub);
      return source !== undefined && (this.cutoffs.get(source)?.at ?? -1) >= since;
    };
    return cut(claims.sub) || (claims.within ?? []).some((p) => cut(p.sub));
  }

  /**
   * Refuses, from now on, every token `source` issued until now (`user:<name>`,
   * `approle:<role>`, `jwt:<role>`): deleting a login ends the access it handed out, on this
   * server at once and on replicas when the record arrives.
   */
  async cutOff(source: string): Promise<void> {
    if (!LOGIN_SOURCE.test(source)) throw new CofferError('internal', `not a login source: ${source}`);
    const at = this.nowSeconds();
    // Until every token signed so far has expired: the signing keys' `signed_until` bounds them
    // even if token_max_ttl_s was larger when they were issued.
    let until = at + this.maxTtlSeconds;
    for (const key of this.keys.values()) until = Math.max(until, key.record.signed_until);
    const previous = this.cutoffs.get(source);
    if (previous && previous.at === at) until = Math.max(until, previous.until);
    // In memory before the write, so a login issuing while the write syncs is refused already.
    this.cutoffs.set(source, { at, until });
    try {
      await this.store.mutate((tx) => {
        this.cutoffRecords.write(tx, `${source}@${at}`, until);
        if (previous && previous.at !== at) this.cutoffRecords.delete(tx, `${source}@${previous.at}`);
      });
    } catch (e) {
      if (previous) this.cutoffs.set(source, previous);
      else this.cutoffs.delete(source);
      throw e;
    }
  }

  /** The groups of a token issued at `iat` that were not deleted since (no cut-off at or after `iat`). */
  liveGroups(groups: readonly string[], iat: number): string[] {
    if (this.cutoffs.size === 0) return groups as string[];
    return groups.filter((g) => !((this.cutoffs.get(`group:${g}`)?.at ?? -1) >= iat));
  }

  /** A cut-off record read from the store (`<source>@<at>` → until): kept if it is the source's newest. */
  private noteCutoff(id: string, until: number): void {
    const parsed = parseCutoff(id);
    if (!parsed) return;
    const held = this.cutoffs.get(parsed.source);
    if (!held || parsed.at > held.at) this.cutoffs.set(parsed.source, { at: parsed.at, until });
    else if (parsed.at === held.at) held.until = Math.max(held.until, until);
  }

  /** The effective expiry: the renewal record or the issued one, never past the hard `exp`. */
  private expiresOf(claims: TokenClaims): number {
    return Math.min(claims.exp, Math.max(claims.ttl_exp ?? claims.exp, this.renewed.get(claims.jti) ?? 0));
  }

  /** Whether the token or any ancestor is revoked: the parent from the signed claim, the rest from the tree. */
  private isRevokedTree(claims: TokenClaims): boolean {
    if (this.revoked.has(claims.jti)) return true;
    let parent = claims.parent;
    for (let depth = 0; parent !== undefined && depth <= MAX_TREE_DEPTH; depth++) {
      if (this.revoked.has(parent)) return true;
      parent = this.parentOf.get(parent)?.parent;
    }
    return false;
  }

  nowSeconds(): number {
    return Math.floor(this.now() / 1000);
  }

  /** How many ancestors a token has (its parent claim, then the tree). */
  depthOf(claims: { parent?: string }): number {
    let depth = 0;
    for (
      let parent = claims.parent;
      parent !== undefined && depth <= MAX_TREE_DEPTH;
      parent = this.parentOf.get(parent)?.parent
    )
      depth++;
    return depth;
  }

  /**
   * Makes a new signing key current. The previous keys keep verifying the tokens they signed
   * until those expire (`signed_until`), or stop at once with `retirePrevious` (compromise):
   * then every older token dies, and the caller's own token is re-issued under the new key.
   */
  async rotateSigningKey(retirePrevious: boolean, caller?: ActiveClaims): Promise<{ kid: string; token?: string }> {
    const keys = this.unsealedKeys();
    const nowSeconds = Math.floor(this.now() / 1000);
    await this.recordWrite(async () => {
      // Memory changes only once the write succeeded (a replica or a fenced primary refuses it).
      const retired = [...this.keys.values()].map((key) => ({
        key,
        record: {
          ...key.record,
          retire_at: Math.min(key.record.retire_at ?? Infinity, retirePrevious ? nowSeconds : key.record.signed_until),
        },
      }));
      const created = await this.store.mutate(async (tx) => {
        for (const { key, record } of retired) this.signing.write(tx, key.kid, record);
        return this.createSigningKey(tx, keys);
      });
      for (const { key, record } of retired) key.record = record;
      this.keys.set(created.kid, created);
      this.current = created;
    });
    this.verified.clear();
    if (!retirePrevious || !caller) return { kid: this.current!.kid };
    // The caller's own token died with the old keys: hand back the same grant under the new key,
    // with its current expiry, the same hard bound and the same place in the tree.
    const key = this.requireCurrent();
    await this.coverLifetime(key, caller.exp);
    const { expires, ...claims } = caller;
    // `iat` moves so that `ttl_exp - iat` stays the renewal increment (it is at most now).
    const ttlSeconds = (caller.ttl_exp ?? caller.exp) - caller.iat;
    const reissued: TokenClaims = {
      ...claims,
      max_exp: undefined,
      iat: expires - ttlSeconds,
      ttl_exp: expires,
      jti: this.newJti(),
    };
    if (reissued.parent) await this.adopt(reissued.parent, reissued.jti, reissued.exp, false); // the same grant: not a new child
    const token = await this.signClaims(key, reissued);
    return { kid: key.kid, token };
  }

  /**
   * Extends the same token by its original TTL from now, never past its hard `exp`. Refused once
   * the token already lives to `exp` (B6: renewal never makes a token outlive its max TTL).
   */
  async renew(claims: ActiveClaims): Promise<ActiveClaims> {
    const nowSeconds = Math.floor(this.now() / 1000);
    if (claims.expires >= claims.exp) {
      throw new CofferError(
        'forbidden',
        `token reached its maximum lifetime (expires ${new Date(claims.exp * 1000).toISOString()}): log in again`,
      );
    }
    const ttlSeconds = (claims.ttl_exp ?? claims.exp) - claims.iat;
    const next = Math.min(nowSeconds + ttlSeconds, claims.exp);
    if (next > claims.expires) {
      await this.store.mutate((tx) => this.renewals.write(tx, claims.jti, next));
      this.renewed.set(claims.jti, Math.max(next, this.renewed.get(claims.jti) ?? 0));
    }
    // Revoked while the write ran: the record is harmless (the revocation outlives `exp`).
    if (this.isRevokedTree(claims)) throw new CofferError('unauthenticated', 'token is not valid: log in again');
    return { ...claims, expires: this.expiresOf(claims) };
  }

  /**
   * Reloads signing keys, revocations, renewals and the tree from the store (every record: a
   * replica does it only after loading a snapshot; see `applyChanged`).
   */
  async reload(): Promise<void> {
    if (this.unsealed) await this.load(this.unsealed);
  }

  /**
   * A replica's apply of changes shipped by the primary, from the changed store keys alone:
   * each token-state key is read again (present: loaded, absent: dropped), so the cost is that
   * of the change, never of the history. `*` (a snapshot replaced the store) reloads
   * everything; a changed signing key re-reads the signing keys only. Other keys are ignored.
   * An absent revocation or tree edge (the primary's sweep deleted it) leaves memory only once
   * it is past its time by this server's clock too: a revocation never ends before its token.
   */
  async applyChanged(keys: readonly string[]): Promise<void> {
    const unsealed = this.unsealed;
    if (!unsealed) return; // sealed: the next unseal reads everything
    if (keys.includes('*')) return this.reload();
    const changed = [...new Set(keys)];
    if (changed.some((k) => k.startsWith(SIGNING_PREFIX))) {
      const signing = await this.readSigningKeys(unsealed);
      if (this.unsealed !== unsealed) return;
      this.keys = signing.keys;
      this.current = signing.current;
    }
    const nowSeconds = this.nowSeconds();
    for (const key of changed) {
      const prefix = [REVOKED_PREFIX, RENEWED_PREFIX, CHILDREN_PREFIX, CUTOFF_PREFIX].find((p) => key.startsWith(p));
      if (!prefix) continue;
      const raw = await this.store.get(key, unsealed);
      const until = raw === undefined ? undefined : untilOf(key, raw);
      if (until === undefined) this.expired.delete(key);
      else if (!(until > nowSeconds)) this.noteExpired(key, until);
      const live = until !== undefined && until > nowSeconds;
      const id = key.slice(prefix.length);
      if (prefix === CHILDREN_PREFIX) {
        const [parent, child] = id.split('/');
        if (!parent || !child) continue;
        if (live) this.link(parent, child, until);
        else if (this.parentOf.get(child)?.parent === parent && this.parentOf.get(child)!.exp <= nowSeconds)
          this.unlink(child);
        continue;
      }
      if (prefix === CUTOFF_PREFIX) {
        // An absent record was superseded by a newer one or swept; memory drops it only at its time.
        if (live) this.noteCutoff(id, until);
        continue;
      }
      const map = prefix === REVOKED_PREFIX ? this.revoked : this.renewed;
      if (live) map.set(id, Math.max(until, map.get(id) ?? 0));
      // A renewal is dropped at once (the token's expiry only comes sooner); a revocation only at its time.
      else if (prefix === RENEWED_PREFIX || (map.get(id) ?? 0) <= nowSeconds) map.delete(id);
    }
  }

  /**
   * Drops expired entries from memory and, on a server that may write, deletes the records of
   * tokens past their time (plus `SWEEP_GRACE_SECONDS`) from the store, at most `SWEEP_BATCH`
   * per batch and `SWEEP_BATCHES` batches per call; the timer calls it, and tests. Resolves
   * with the number of records deleted.
   */
  sweepStore(): Promise<number> {
    this.sweeping ??= this.runSweep().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private async runSweep(): Promise<number> {
    if (!this.unsealed) return 0;
    this.sweep();
    const writable = this.writable();
    // Promoted (or no longer fenced): what this server learnt as a replica was never noted.
    if (writable && this.wasWritable === false) this.rescan ??= { prefix: 0 };
    this.wasWritable = writable;
    if (!writable) return 0;
    if (this.rescan && this.expired.size < EXPIRED_LIMIT - RESCAN_PAGE) await this.rescanStore();
    const cutoff = this.nowSeconds() - SWEEP_GRACE_SECONDS;
    const due: string[] = [];
    for (const [key, until] of this.expired) {
      if (until > cutoff) continue;
      due.push(key);
      if (due.length >= SWEEP_BATCH * SWEEP_BATCHES) break;
    }
    let deleted = 0;
    for (let i = 0; i < due.length && this.unsealed; i += SWEEP_BATCH) {
      const batch = due.slice(i, i + SWEEP_BATCH);
      deleted += await this.store.mutate((tx) => {
        let n = 0;
        for (const key of batch) {
          const raw = tx.get(key);
          // Gone already, or written again meanwhile (then memory holds it and notes it again).
          if (raw === undefined || !(untilOf(key, raw) <= cutoff)) continue;
          tx.del(key);
          n++;
        }
        return n;
      });
      for (const key of batch) this.expired.delete(key);
    }
    return deleted;
  }

  /** Pages through the token state in the store (at most `RESCAN_PAGES` pages a sweep) for expired records `expired` does not hold. */
  private async rescanStore(): Promise<void> {
    const prefixes = [REVOKED_PREFIX, RENEWED_PREFIX, CHILDREN_PREFIX, CUTOFF_PREFIX];
    const nowSeconds = this.nowSeconds();
    let cursor = this.rescan!;
    for (
      let pages = 0;
      pages < RESCAN_PAGES && cursor.prefix < prefixes.length && this.expired.size < EXPIRED_LIMIT - RESCAN_PAGE;
      pages++
    ) {
      const page = await this.store.scanPrefix(prefixes[cursor.prefix]!, cursor.after, RESCAN_PAGE);
      for (const [key, value] of page) {
        const until = untilOf(key, value);
        if (until <= nowSeconds) this.noteExpired(key, until);
      }
      cursor =
        page.length < RESCAN_PAGE
          ? { prefix: cursor.prefix + 1 }
          : { prefix: cursor.prefix, after: page[page.length - 1]![0] };
    }
    this.rescan = cursor.prefix < prefixes.length ? cursor : undefined;
  }

  /** Remembers a record for deletion (only where this server may write; a replica never deletes). */
  private noteExpired(key: string, until: number): void {
    if (!Number.isFinite(until) || !this.writable()) return;
    if (this.expired.size >= EXPIRED_LIMIT && !this.expired.has(key)) {
      this.rescan ??= { prefix: 0 };
      return;
    }
    this.expired.set(key, until);
  }

  /**
   * Revokes a token id and every token below it in the tree, in one batch, each until it would
   * have expired anyway (`exp`: the hard expiry). Idempotent: nothing new to revoke writes nothing.
   */
  async revoke(jti: string, exp: number): Promise<void> {
    const victims = new Map<string, number>();
    const queue: [string, number][] = [[jti, exp]];
    const nowSeconds = Math.floor(this.now() / 1000);
    while (queue.length > 0) {
      const [id, until] = queue.pop()!;
      if (victims.has(id)) continue;
      victims.set(id, until);
      for (const child of [...(this.childrenOf.get(id) ?? [])]) {
        const entry = this.parentOf.get(child);
        if (entry && entry.exp > nowSeconds) queue.push([child, entry.exp]);
        else if (entry) this.dropEdge(child, entry);
      }
    }
    for (const id of victims.keys()) if (this.revoked.has(id)) victims.delete(id);
    if (victims.size === 0) return;
    await this.store.mutate((tx) => {
      for (const [id, until] of victims) this.revocations.write(tx, id, until);
    });
    for (const [id, until] of victims) this.revoked.set(id, until);
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
    this.wasWritable = this.writable();
    const signing = await this.readSigningKeys(keys);
    const nowSeconds = Math.floor(this.now() / 1000);
    // Past their time: left out of memory, and remembered for the sweep to delete.
    const live = async (table: Table<number, UnsealedKeys>) => {
      const out: [string, number][] = [];
      for (const [id, until] of await table.scan()) {
        if (until > nowSeconds) out.push([id, until]);
        else this.noteExpired(table.key(id), until);
      }
      return out;
    };
    const revoked = new Map(await live(this.revocations));
    const renewed = new Map(await live(this.renewals));
    const cutoffs = new Map(await live(this.cutoffRecords));
    const parentOf = new Map<string, { parent: string; exp: number }>();
    const childrenOf = new Map<string, Set<string>>();
    for (const [edge, exp] of await live(this.edges)) {
      const [parent, child] = edge.split('/');
      if (!parent || !child) continue;
      parentOf.set(child, { parent, exp });
      childrenOf.set(parent, (childrenOf.get(parent) ?? new Set()).add(child));
    }
    // Records leave the store only once past their time (the sweep), so what memory holds and
    // has not expired is kept: a revoke or renew that finished during the scans above must not
    // be lost when the maps are swapped.
    for (const [jti, until] of this.revoked) if (until > nowSeconds && !revoked.has(jti)) revoked.set(jti, until);
    for (const [jti, until] of this.renewed) if (until > (renewed.get(jti) ?? nowSeconds)) renewed.set(jti, until);
    const cutoffIds = [...this.cutoffs].map(([source, c]) => [`${source}@${c.at}`, c.until] as const);
    for (const [id, until] of cutoffIds) if (until > nowSeconds && !cutoffs.has(id)) cutoffs.set(id, until);
    for (const [child, edge] of this.parentOf) {
      if (edge.exp <= nowSeconds || parentOf.has(child)) continue;
      parentOf.set(child, edge);
      childrenOf.set(edge.parent, (childrenOf.get(edge.parent) ?? new Set()).add(child));
    }
    // Swapped in together after every read, so a request never sees half a reload.
    this.keys = signing.keys;
    this.current = signing.current;
    this.revoked = revoked;
    this.renewed = renewed;
    this.cutoffs = new Map();
    for (const [id, until] of cutoffs) this.noteCutoff(id, until);
    this.parentOf = parentOf;
    this.childrenOf = childrenOf;
    this.startSweeper();
  }

  /** The signing keys in the store, opened (one is created when none is current). */
  private async readSigningKeys(keys: UnsealedKeys): Promise<{ keys: Map<string, SigningKey>; current: SigningKey }> {
    const loaded = new Map<string, SigningKey>();
    let newest: { key: SigningKey; created: number } | undefined;
    for (const [, record] of await this.signing.scan()) {
      // A replica re-reads them on every shipped signing change: reuse a key already opened
      // from the same sealed pair (only its lifetime fields change) instead of unsealing it again.
      const known = this.keys.get(record.kid);
      const signing =
        known && sealedPart(known.record) === sealedPart(record)
          ? { ...known, record }
          : await openSealedKeyPair(keys, record, PURPOSE).then(async (pair) => ({
              ...pair,
              publicJwk: await publicJwk(pair.publicKey, pair.kid),
              record,
            }));
      loaded.set(record.kid, signing);
      if (record.retire_at === undefined && (!newest || record.created_at > newest.created))
        newest = { key: signing, created: record.created_at };
    }
    if (!newest) {
      newest = { key: await this.store.mutate((tx) => this.createSigningKey(tx, keys)), created: this.now() };
      loaded.set(newest.key.kid, newest.key);
    }
    return { keys: loaded, current: newest.key };
  }

  /** The periodic sweep: unref'd (never keeps the process alive), stopped on seal. */
  private startSweeper(): void {
    if (this.sweepTimer || this.sweepIntervalMs <= 0) return;
    this.sweepTimer = setInterval(() => void this.sweepStore().catch(() => undefined), this.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  /**
   * Enters a child in the tree (persisted before the token is handed out, so revoking the parent
   * later finds it, after a restart and on replicas too). With `quota`, refused (403) while the
   * parent holds `maxChildren` live children; the count and the entry in memory happen together,
   * before the write, so concurrent mints cannot all pass it (a failed write takes the entry out).
   */
  private async adopt(parent: string, child: string, exp: number, quota = true): Promise<void> {
    if (quota) this.checkChildQuota(parent);
    this.link(parent, child, exp);
    try {
      await this.store.mutate((tx) => this.edges.write(tx, `${parent}/${child}`, exp));
    } catch (e) {
      this.unlink(child);
      throw e;
    }
    if (++this.sinceSweep >= SWEEP_EVERY) this.sweep();
  }

  /** Live children: before their hard `exp` and not revoked. Expired ones found are dropped on the way. */
  private checkChildQuota(parent: string): void {
    const children = this.childrenOf.get(parent);
    if (!children || children.size < this.maxChildren) return;
    const nowSeconds = this.nowSeconds();
    let live = 0;
    let next = Infinity;
    for (const child of [...children]) {
      const edge = this.parentOf.get(child);
      if (!edge) continue;
      if (edge.exp <= nowSeconds) this.dropEdge(child, edge);
      else if (!this.revoked.has(child)) {
        live++;
        next = Math.min(next, edge.exp);
      }
    }
    if (live < this.maxChildren) return;
    throw new CofferError(
      'forbidden',
      `this token already has ${live} live child tokens (token_max_children: ${this.maxChildren}): revoke one, or wait until one reaches its max TTL (the next at ${new Date(next * 1000).toISOString()})`,
    );
  }

  private link(parent: string, child: string, exp: number): void {
    const known = this.parentOf.get(child);
    if (known && known.parent === parent && known.exp >= exp) return;
    this.parentOf.set(child, { parent, exp });
    this.childrenOf.set(parent, (this.childrenOf.get(parent) ?? new Set()).add(child));
  }

  private unlink(child: string): void {
    const edge = this.parentOf.get(child);
    if (!edge) return;
    this.parentOf.delete(child);
    const siblings = this.childrenOf.get(edge.parent);
    siblings?.delete(child);
    if (siblings?.size === 0) this.childrenOf.delete(edge.parent);
  }

  /** An expired edge leaves memory, and its record is remembered for the sweep. */
  private dropEdge(child: string, edge: { parent: string; exp: number }): void {
    this.unlink(child);
    this.noteExpired(`${CHILDREN_PREFIX}${edge.parent}/${child}`, edge.exp);
  }

  /**
   * Drops in-memory tree, renewal and revocation entries past their time (a reload does the
   * same): a busy server that never restarts must not grow without bound. Their records are
   * remembered for `sweepStore` to delete.
   */
  private sweep(): void {
    this.sinceSweep = 0;
    const nowSeconds = this.nowSeconds();
    for (const [child, edge] of this.parentOf) if (edge.exp <= nowSeconds) this.dropEdge(child, edge);
    for (const [map, prefix] of [
      [this.renewed, RENEWED_PREFIX],
      [this.revoked, REVOKED_PREFIX],
    ] as const) {
      for (const [jti, until] of map) {
        if (until > nowSeconds) continue;
        map.delete(jti);
        this.noteExpired(prefix + jti, until);
      }
    }
    for (const [source, { at, until }] of this.cutoffs) {
      if (until > nowSeconds) continue;
      this.cutoffs.delete(source);
      this.noteExpired(`${CUTOFF_PREFIX}${source}@${at}`, until);
    }
  }

  private unload(): void {
    this.unsealed = undefined;
    this.keys = new Map();
    this.current = undefined;
    this.verified.clear();
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private async createSigningKey(tx: Tx, keys: UnsealedKeys): Promise<SigningKey> {
    const { record: sealed, pair } = await createSealedKeyPair(tx, keys, PURPOSE, this.now(), this.random);
    const record: SigningRecord = { ...sealed, signed_until: 0 };
    this.signing.write(tx, record.kid, record);
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
      this.signing.write(tx, key.kid, key.record);
      return;
    }
    await this.recordWrite(async () => {
      if (maxExp <= key.record.signed_until) return; // a write that finished meanwhile covers it
      const record: SigningRecord = raise();
      await this.store.mutate((t) => this.signing.write(t, key.kid, record));
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
    if (!key || !this.isActive(key, Math.floor(this.now() / 1000)))
      throw new CofferError('unauthenticated', 'unknown signing key');
    return key.publicKey;
  }

  private requireCurrent(): SigningKey {
    if (!this.current) throw new CofferError('sealed', 'vault is sealed');
    return this.current;
  }

  private claimsFor(request: IssueRequest): TokenClaims {
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + request.maxTtlSeconds;
    return {
      sub: request.sub,
      groups: request.groups,
      policies: request.policies ?? [],
      iat,
      exp,
      ttl_exp: Math.min(iat + request.ttlSeconds, exp),
      jti: this.newJti(),
      method: request.method,
      ...(request.root ? { root: true } : {}),
      ...(request.parent ? { parent: request.parent } : {}),
      ...(request.meta && Object.keys(request.meta).length > 0 ? { meta: request.meta } : {}),
      ...(request.within && request.within.length > 0 ? { within: request.within } : {}),
    };
  }

  private signClaims(key: SigningKey, claims: TokenClaims): Promise<string> {
    const payload = Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
    return new SignJWT(payload)
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
const sealedPart = (record: SigningRecord) =>
  JSON.stringify({ ...record, signed_until: undefined, retire_at: undefined });
const issuerOf = (clusterId: string) => `coffer:${clusterId}`;
const publicJwk = async (key: KeyObject, kid: string): Promise<JWK> => ({
  ...(await exportJWK(key)),
  kid,
  alg: 'EdDSA',
  use: 'sig',
});
