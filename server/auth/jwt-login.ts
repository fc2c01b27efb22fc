import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
} from 'jose';
import { z } from 'zod';
import { CofferError, isCofferError } from '../errors.js';
import { parseStrictJson } from '../json.js';
import type { UnsealedKeys, VaultStore } from '../keys/seal.js';
import type { Table } from '../store/barrier.js';
import { jsonCodec, stringCodec } from '../store/codec.js';
import { JWT_JTI_PREFIX as SEEN_JTI_PREFIX, JWT_ROLE_PREFIX as ROLE_PREFIX } from '../store/keys.js';
import { checkName } from './directory.js';
import { globMatch } from './glob.js';
import { LOGIN_NAME, checkLoginName, type Grant } from './logins.js';
import { safeFetch } from './safe-fetch.js';
import { MAX_IDENTITY_LENGTH } from './tokens.js';
import { jwtRoleSchema } from '../../sdk/wire/schemas.js';
import type { JwtRole } from '../../sdk/wire/types.js';

/**
 * JWT roles for CI identity tokens (GitHub Actions, GitLab CI `id_tokens`, Kubernetes service
 * accounts, any OIDC issuer). A role pins the issuer, the keys (a JWKS URL or inline keys), the
 * algorithms, the audiences and the claims a token must carry; it grants groups. Refusals are
 * `401 unauthenticated`; see `JWT_REFUSED` for what the body says and why.
 */
const MAX_JWT_LENGTH = 8192;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const FORBIDDEN_HEADERS = ['jku', 'x5u', 'jwk', 'x5c', 'crit', 'zip', 'p2c', 'p2s', 'enc', 'b64'];

export type { JwtRole };

/** A stored role: what `put` validated (the wire schema, defaults filled in), with its name. */
const storedRole = jsonCodec(
  z.looseObject({ name: z.string() }).transform((record, ctx): JwtRole => {
    const { name, ...role } = record;
    const parsed = jwtRoleSchema.safeParse(role);
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', message: `not a jwt role: ${parsed.error.issues[0]?.path.join('.') ?? ''}` });
      return z.NEVER;
    }
    return { ...parsed.data, name };
  }),
);

type KeySet = ReturnType<typeof createRemoteJWKSet> | ReturnType<typeof createLocalJWKSet>;

/**
 * What a refused JWT login tells the caller (issue 18 against SECURITY-CASES A30). Everything
 * decided BEFORE the signature is known good (an unknown role, a malformed token, a refused
 * header or algorithm, an unknown kid, a bad signature) is this one message, so the endpoint is
 * no oracle for role names, keys or forgeries. A refusal decided only AFTER the signature
 * verified against the role's keys (expired, audience, issuer, lifetime, subject, a bound claim,
 * a replayed jti) names the claim: the caller then holds a genuine token from the IdP, and the
 * claim's name (never the expected or presented value) is what it needs to fix its pipeline.
 * The precise reason always goes to the server log.
 */
export const JWT_REFUSED =
  'token not accepted: unknown role, or a signature, key or algorithm the role does not accept';

/** A refusal after the signature verified: `message` is safe for the response body. */
class ClaimRefused extends Error {}

const refusedBody = (e: unknown): string => {
  if (e instanceof ClaimRefused) return e.message;
  if (e instanceof joseErrors.JWTExpired) return e.claim === 'iat' ? 'token too old (iat)' : 'token expired';
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.reason === 'missing') return `token has no ${e.claim} claim`;
    if (e.claim === 'aud') return 'audience not accepted';
    if (e.claim === 'iss') return 'issuer not accepted';
    if (e.claim === 'nbf') return 'token not yet valid (nbf)';
    if (e.claim === 'iat') return 'token issued in the future (iat)';
    return `claim ${e.claim} not accepted`;
  }
  return JWT_REFUSED;
};

function isLoopback(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export class JwtMethod {
  private readonly keySets = new Map<string, { fingerprint: string; keys: KeySet }>();

  constructor(
    store: VaultStore,
    private readonly log: { warn(o: object, m: string): void; info(o: object, m: string): void },
    private readonly now: () => number = Date.now,
  ) {
    this.roles = store.table(ROLE_PREFIX, storedRole, 'jwt role');
    this.seenJtis = store.table(SEEN_JTI_PREFIX, stringCodec, 'jwt single-use record');
  }

  private readonly roles: Table<JwtRole, UnsealedKeys>;
  /** A single-use role's jtis seen, each until the token's `exp` (`<role>/<jti base64url>`). */
  private readonly seenJtis: Table<string, UnsealedKeys>;

  async put(name: string, input: unknown): Promise<JwtRole> {
    checkLoginName('role', name);
    const parsed = jwtRoleSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new CofferError('invalid_request', `${issue.path.join('.') || 'role'}: ${issue.message}`);
    }
    const role: JwtRole = { ...parsed.data, name };
    for (const g of [...role.groups, ...Object.values(role.groups_claim_map)]) checkName('group', g);
    // What a login may carry (a token holds 64 groups): checked here, so no login fails on it later.
    const granted = new Set([...role.groups, ...Object.values(role.groups_claim_map)]).size;
    if (granted > 64)
      throw new CofferError(
        'invalid_request',
        `groups and groups_claim_map together grant ${granted} groups; a token holds at most 64`,
      );
    for (const p of role.policies) checkName('policy', p);
    if (role.token_ttl > role.token_max_ttl)
      throw new CofferError('invalid_request', 'token_ttl must not exceed token_max_ttl');
    for (const u of [role.issuer, role.jwks_url].filter((x): x is string => x !== undefined)) {
      const url = new URL(u);
      if (url.protocol === 'http:' && !isLoopback(url) && !role.allow_insecure_http) {
        throw new CofferError(
          'invalid_request',
          `${u}: plain http is refused for a non-loopback host (set allow_insecure_http to override)`,
        );
      }
    }
    if (role.jwks) createLocalJWKSet({ keys: role.jwks.keys }); // refuse malformed keys now
    if (!role.bound_subject && Object.keys(role.bound_claims).length === 0) {
      this.log.warn(
        { role: name },
        'jwt role binds no subject or claims: any token of the issuer and audience logs in',
      );
    }
    await this.roles.mutate((tx) => this.roles.write(tx, name, role));
    this.keySets.delete(name);
    return role;
  }

  get(name: string): Promise<JwtRole | undefined> {
    return this.roles.get(name);
  }

  async delete(name: string): Promise<boolean> {
    if (!this.roles.has(name)) return false;
    await this.roles.mutate((tx) => this.roles.delete(tx, name));
    this.keySets.delete(name);
    return true;
  }

  async list(): Promise<string[]> {
    return this.roles.ids();
  }

  async login(roleName: string, jwt: string): Promise<Grant> {
    const role = LOGIN_NAME.test(roleName) ? await this.get(roleName) : undefined;
    try {
      if (!role) throw new Error('unknown role');
      const payload = await this.verify(role, jwt);
      const sub = payload.sub!;
      if (role.bound_subject !== undefined && !this.matches(role, role.bound_subject, sub))
        throw new ClaimRefused('subject does not match the role');
      for (const [claim, bound] of Object.entries(role.bound_claims)) {
        const value = claimAt(payload, claim);
        const allowed = Array.isArray(bound) ? bound : [bound];
        if (typeof value !== 'string' || !allowed.some((b) => this.matches(role, b, value)))
          throw new ClaimRefused(`claim ${claim} does not match the role`);
      }
      const groups = new Set(role.groups);
      if (role.groups_claim) {
        const claimed = payload[role.groups_claim];
        const values =
          typeof claimed === 'string'
            ? [claimed]
            : Array.isArray(claimed)
              ? claimed.filter((v): v is string => typeof v === 'string')
              : [];
        for (const v of values) {
          const mapped = Object.hasOwn(role.groups_claim_map, v) ? role.groups_claim_map[v] : undefined;
          if (mapped) groups.add(mapped);
        }
      }
      if (role.single_use) await this.consumeJti(role, payload);
      const meta: Record<string, string> = {};
      for (const [claim, name] of Object.entries(role.claim_mappings)) {
        const value = claimAt(payload, claim);
        if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
          meta[name] = String(value).slice(0, 512);
      }
      return {
        meta,
        sub: `jwt:${role.name}:${sub}`,
        groups: [...groups],
        policies: role.policies,
        ttlSeconds: Math.min(role.token_ttl, role.token_max_ttl),
        maxTtlSeconds: role.token_max_ttl,
      };
    } catch (e) {
      if (isCofferError(e, 'idp_unavailable')) throw e;
      if (e instanceof joseErrors.JWKSTimeout)
        throw new CofferError('idp_unavailable', 'the identity provider could not be reached', 'JWKS timeout');
      this.log.warn({ role: roleName, reason: e instanceof Error ? e.message : 'invalid' }, 'jwt login refused');
      throw new CofferError('unauthenticated', refusedBody(e));
    }
  }

  private matches(role: JwtRole, bound: string, value: string): boolean {
    return role.bound_claims_type === 'glob' ? globMatch(bound, value) : bound === value;
  }

  /** Structure first (cheap, before any key lookup or fetch), then signature and claims. */
  private async verify(role: JwtRole, jwt: string): Promise<JWTPayload> {
    if (typeof jwt !== 'string' || jwt.length > MAX_JWT_LENGTH || !COMPACT_JWS.test(jwt))
      throw new Error('not a compact JWS');
    const [headerPart, payloadPart] = jwt.split('.');
    const header = strictJsonObject(headerPart!, 'header');
    strictJsonObject(payloadPart!, 'payload');
    for (const h of FORBIDDEN_HEADERS) if (h in header) throw new Error(`header ${h} refused`);
    const alg = decodeProtectedHeader(jwt).alg;
    if (typeof alg !== 'string' || !(role.allowed_algorithms as string[]).includes(alg))
      throw new Error('algorithm not allowed');
    const { payload } = await jwtVerify(jwt, this.keySet(role), {
      algorithms: role.allowed_algorithms,
      issuer: role.issuer,
      audience: role.bound_audiences,
      clockTolerance: role.leeway,
      currentDate: new Date(this.now()),
      requiredClaims: ['exp', 'iat', 'sub', 'aud'],
    });
    const nowSeconds = this.now() / 1000;
    if (typeof payload.iat !== 'number' || payload.iat > nowSeconds + role.leeway)
      throw new ClaimRefused('token issued in the future (iat)');
    if (payload.exp! - payload.iat > role.max_token_lifetime)
      throw new ClaimRefused("token lifetime (exp - iat) exceeds the role's max_token_lifetime");
    if (Array.isArray(payload.aud) && payload.aud.length > 1 && !role.allow_multiple_audiences)
      throw new ClaimRefused('token has several audiences and the role allows one');
    if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw new ClaimRefused('token has no sub claim');
    const room = MAX_IDENTITY_LENGTH - `jwt:${role.name}:`.length; // the identity it becomes
    if (payload.sub.length > room) throw new ClaimRefused(`sub claim is longer than ${room} characters`);
    return payload;
  }

  private keySet(role: JwtRole): KeySet {
    const fingerprint = role.jwks_url ?? JSON.stringify(role.jwks);
    const cached = this.keySets.get(role.name);
    if (cached && cached.fingerprint === fingerprint) return cached.keys;
    const keys = role.jwks_url
      ? createRemoteJWKSet(new URL(role.jwks_url), {
          timeoutDuration: 5_000,
          cooldownDuration: 30_000,
          cacheMaxAge: 10 * 60_000,
          [customFetch]: safeFetch,
        })
      : createLocalJWKSet({ keys: role.jwks!.keys });
    this.keySets.set(role.name, { fingerprint, keys });
    return keys;
  }

  private async consumeJti(role: JwtRole, payload: JWTPayload): Promise<void> {
    if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256)
      throw new ClaimRefused('the role is single-use and the token has no valid jti claim');
    const id = `${role.name}/${Buffer.from(payload.jti).toString('base64url')}`;
    const fresh = await this.seenJtis.mutate((tx) => {
      if (this.seenJtis.read(tx, id) !== undefined) return false;
      this.seenJtis.write(tx, id, String(payload.exp));
      return true;
    });
    if (!fresh) {
      this.log.warn({ role: role.name, jti: payload.jti }, 'jwt replayed');
      throw new ClaimRefused('token already used (the role is single-use)');
    }
  }
}

/** The claim at a '/'-separated path of own properties, or undefined. */
function claimAt(payload: JWTPayload, path: string): unknown {
  let value: unknown = payload;
  for (const part of path.split('/')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, part))
      return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** Decodes a base64url JSON object with the strict checks (no duplicate keys, no __proto__). */
function strictJsonObject(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseStrictJson(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(part, 'base64url')));
  } catch {
    throw new Error(`${what} is not strict JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what} is not an object`);
  return value as Record<string, unknown>;
}
