import { createHash } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { constantTimeEqual } from '../crypto/bytes.js';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { CofferError } from '../errors.js';
import { z } from 'zod';
import type { UnsealedKeys, VaultStore } from '../keys/seal.js';
import type { Table } from '../store/barrier.js';
import { jsonCodec, stringCodec } from '../store/codec.js';
import {
  APPROLE_ID_PREFIX as ROLE_ID_PREFIX,
  APPROLE_PREFIX as ROLE_PREFIX,
  APPROLE_SECRET_PREFIX as SECRET_ID_PREFIX,
  USER_PREFIX,
} from '../store/keys.js';
import { checkName } from './directory.js';
import { DECOY_HASH, hashPassword, needsRehash, verifyPassword } from './password-hash.js';
import type { IssueRequest } from './tokens.js';

/** What a login method grants: the token service turns it into a token. */
export type Grant = Omit<IssueRequest, 'method'>;

export const LOGIN_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const tokenSettings = {
  groups: z.array(z.string()),
  policies: z.array(z.string()),
  token_ttl: z.number(),
  token_max_ttl: z.number(),
};
export type TokenSettings = z.infer<z.ZodObject<typeof tokenSettings>>;

const userRecord = z.object({ ...tokenSettings, name: z.string(), password_hash: z.string() });
export type User = z.infer<typeof userRecord>;

const appRoleRecord = z.object({
  ...tokenSettings,
  name: z.string(),
  role_id: z.string(),
  secret_id_ttl: z.number(),
  secret_id_num_uses: z.number(),
  bound_cidrs: z.array(z.string()),
});
export type AppRole = z.infer<typeof appRoleRecord>;

const secretIdRecord = z.object({
  created_at: z.number(),
  expires_at: z.number().nullable(),
  uses_left: z.number().nullable(),
});
type SecretIdRecord = z.infer<typeof secretIdRecord>;
const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex');

export function checkLoginName(kind: string, name: unknown): string {
  if (typeof name !== 'string' || !LOGIN_NAME.test(name))
    throw new CofferError('invalid_request', `${kind} name must be 1 to 64 characters of [a-z0-9._-]`);
  return name;
}

function checkSettings(s: TokenSettings): void {
  for (const g of s.groups) checkName('group', g);
  for (const p of s.policies) checkName('policy', p);
  if (s.token_ttl > s.token_max_ttl)
    throw new CofferError('invalid_request', 'token_ttl must not exceed token_max_ttl');
}

/**
 * Login refusals name a reason the caller may see (issue 18), chosen so that none of them tells
 * more than the caller already holds:
 * - userpass: an unknown user and a wrong password are one message, so names cannot be probed;
 * - approle: an unknown role_id and an unknown secret_id are one message; "already used or
 *   expired" and the address binding are named only to a caller who presented a secret_id that
 *   was genuinely issued for that role_id, i.e. who holds both credentials.
 * The precise reason goes to the server log (`detail`); no body ever holds a credential.
 */
export const USERPASS_REFUSED = 'username or password not valid';
export const APPROLE_REFUSED = 'role_id or secret_id not valid';
export const SECRET_ID_SPENT = 'secret_id already used or expired';
export const APPROLE_ADDRESS_REFUSED = "the client address is not in the role's bound_cidrs";
const refused = (message: string, detail: string) => new CofferError('unauthenticated', message, detail);

/** Username and password logins (people). Usernames are lower-case, so one name, one counter. */
export class UserpassMethod {
  private readonly users: Table<User, UnsealedKeys>;

  constructor(
    store: VaultStore,
    private readonly random: RandomSource = systemRandom,
  ) {
    this.users = store.table(USER_PREFIX, jsonCodec(userRecord), 'userpass user');
  }

  async put(
    name: string,
    input: Omit<User, 'name' | 'password_hash'> & { password?: string | undefined },
  ): Promise<Omit<User, 'password_hash'>> {
    checkLoginName('user', name);
    checkSettings(input);
    const existing = await this.users.get(name);
    if (!existing && input.password === undefined)
      throw new CofferError('invalid_request', 'a new user needs a password');
    const password_hash =
      input.password !== undefined ? await hashPassword(input.password, this.random) : existing!.password_hash;
    const user: User = {
      name,
      groups: input.groups,
      policies: input.policies,
      token_ttl: input.token_ttl,
      token_max_ttl: input.token_max_ttl,
      password_hash,
    };
    await this.users.mutate((tx) => this.users.write(tx, name, user));
    return publicUser(user);
  }

  async get(name: string): Promise<Omit<User, 'password_hash'> | undefined> {
    const user = await this.users.get(name);
    return user && publicUser(user);
  }

  async delete(name: string): Promise<boolean> {
    if (!this.users.has(name)) return false;
    await this.users.mutate((tx) => this.users.delete(tx, name));
    return true;
  }

  async list(): Promise<string[]> {
    return this.users.ids();
  }

  /** The same error and about the same time for an unknown user and a wrong password. */
  async login(username: string, password: string): Promise<Grant> {
    const user = LOGIN_NAME.test(username) ? await this.users.get(username) : undefined;
    const ok = await verifyPassword(password, user?.password_hash ?? DECOY_HASH);
    if (!user || !ok) throw refused(USERPASS_REFUSED, user ? 'wrong password' : 'unknown user');
    // Best effort: a replica cannot write, and a full disk must not turn a right password away.
    if (needsRehash(user.password_hash)) await this.rehash(user, password).catch(() => undefined);
    return grantOf(`user:${user.name}`, user);
  }

  /**
   * A hash made with older parameters is replaced at the user's next login, the only time the
   * password is at hand; only if the record is still the one verified (an admin may have set a
   * new password meanwhile).
   */
  private async rehash(user: User, password: string): Promise<void> {
    const password_hash = await hashPassword(password, this.random);
    await this.users.mutate((tx) => {
      const current = this.users.read(tx, user.name);
      if (current?.password_hash === user.password_hash) this.users.write(tx, user.name, { ...current, password_hash });
    });
  }
}

/** role_id + secret_id logins for build servers without OIDC. */
export class AppRoleMethod {
  private readonly roles: Table<AppRole, UnsealedKeys>;
  private readonly roleIds: Table<string, UnsealedKeys>;
  private readonly secretIds: Table<SecretIdRecord, UnsealedKeys>;

  constructor(
    store: VaultStore,
    private readonly now: () => number = Date.now,
    private readonly random: RandomSource = systemRandom,
  ) {
    this.roles = store.table(ROLE_PREFIX, jsonCodec(appRoleRecord), 'approle role');
    this.roleIds = store.table(ROLE_ID_PREFIX, stringCodec, 'approle role_id');
    this.secretIds = store.table(SECRET_ID_PREFIX, jsonCodec(secretIdRecord), 'approle secret_id');
  }

  async put(name: string, input: Omit<AppRole, 'name' | 'role_id'>): Promise<AppRole> {
    checkLoginName('role', name);
    checkSettings(input);
    for (const cidr of input.bound_cidrs) parseCidr(cidr);
    return this.roles.mutate((tx) => {
      const existing = this.roles.read(tx, name);
      const role: AppRole = { ...input, name, role_id: existing?.role_id ?? crypto.randomUUID() };
      this.roles.write(tx, name, role);
      this.roleIds.write(tx, role.role_id, name);
      return role;
    });
  }

  get(name: string): Promise<AppRole | undefined> {
    return this.roles.get(name);
  }

  async delete(name: string): Promise<boolean> {
    const role = await this.get(name);
    if (!role) return false;
    const secretIds = await this.secretIds.ids(`${name}/`);
    await this.roles.mutate((tx) => {
      this.roles.delete(tx, name);
      this.roleIds.delete(tx, role.role_id);
      for (const id of secretIds) this.secretIds.delete(tx, id);
    });
    return true;
  }

  async list(): Promise<string[]> {
    return this.roles.ids();
  }

  /** A new secret_id, shown once; only its SHA-256 is stored. */
  async createSecretId(name: string): Promise<{ secret_id: string; expires_at: string | null; uses: number | null }> {
    const role = await this.get(name);
    if (!role) throw new CofferError('not_found', `role ${name} not found`);
    const secretId = `cof_sid_${Buffer.from(this.random(32)).toString('base64url')}`;
    const now = this.now();
    const record: SecretIdRecord = {
      created_at: now,
      expires_at: role.secret_id_ttl > 0 ? now + role.secret_id_ttl * 1000 : null,
      uses_left: role.secret_id_num_uses > 0 ? role.secret_id_num_uses : null,
    };
    await this.secretIds.mutate((tx) => this.secretIds.write(tx, `${name}/${sha256hex(secretId)}`, record));
    return {
      secret_id: secretId,
      expires_at: record.expires_at === null ? null : new Date(record.expires_at).toISOString(),
      uses: record.uses_left,
    };
  }

  /**
   * Checks role_id, secret_id, expiry, remaining uses and CIDR binding. A use is consumed in
   * the same serialised mutation that checks it, so a one-use secret_id logs in exactly once
   * however many requests race.
   */
  async login(roleId: string, secretId: string, client: string): Promise<Grant> {
    const keys = this.roles.keys();
    const name = /^[0-9a-f-]{36}$/.test(roleId) ? await this.roleIds.get(roleId, keys) : undefined;
    const role = name ? await this.roles.get(name, keys) : undefined;
    if (!role || !constantTimeEqual(Buffer.from(role.role_id), Buffer.from(roleId)))
      throw refused(APPROLE_REFUSED, 'unknown role_id');
    const id = `${role.name}/${sha256hex(secretId)}`;
    if (role.bound_cidrs.length > 0 && !inCidrs(client, role.bound_cidrs)) {
      // Checked before a use is consumed; the reason is named only if the secret_id is one this
      // role issued (its key only: nothing consumed, nothing opened), so the binding is no oracle for a role_id alone.
      const known = this.secretIds.has(id);
      throw known
        ? refused(APPROLE_ADDRESS_REFUSED, `client ${client} outside bound_cidrs`)
        : refused(APPROLE_REFUSED, 'unknown secret_id');
    }
    const outcome = await this.secretIds.mutate((tx) => {
      const record = this.secretIds.read(tx, id);
      if (!record) return 'unknown';
      if (record.uses_left === 0) return 'spent';
      if (record.expires_at !== null && record.expires_at <= this.now()) {
        this.secretIds.write(tx, id, spent(record)); // expired: a tombstone, and the login fails
        return 'expired';
      }
      if (record.uses_left !== null)
        this.secretIds.write(
          tx,
          id,
          record.uses_left <= 1 ? spent(record) : { ...record, uses_left: record.uses_left - 1 },
        );
      return 'ok';
    });
    if (outcome === 'unknown') throw refused(APPROLE_REFUSED, 'unknown secret_id');
    if (outcome !== 'ok') throw refused(SECRET_ID_SPENT, `secret_id ${outcome}`);
    return grantOf(`approle:${role.name}`, role);
  }
}

/**
 * A used-up or expired secret_id stays as a tombstone (its hash and times, no uses) so a second
 * attempt can say "already used or expired" instead of "not valid"; tombstones go with the role.
 */
const spent = (record: SecretIdRecord): SecretIdRecord => ({ ...record, uses_left: 0 });

function publicUser(user: User): Omit<User, 'password_hash'> {
  const { password_hash: _omit, ...rest } = user;
  return rest;
}

function grantOf(sub: string, s: TokenSettings): Grant {
  return { sub, groups: s.groups, policies: s.policies, ttlSeconds: s.token_ttl, maxTtlSeconds: s.token_max_ttl };
}

/** Canonical prefix lengths only: "/", "/ 8", "/08" or "/0x8" must not silently become /0 or /8. */
const CIDR = /^([^/\s]+)\/(0|[1-9][0-9]{0,2})$/;

function parseCidr(cidr: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const match = CIDR.exec(cidr);
  const version = match ? isIP(match[1]!) : 0;
  const prefix = match ? Number(match[2]) : -1;
  if (!match || !version || prefix > (version === 4 ? 32 : 128)) {
    throw new CofferError('invalid_request', `bound_cidrs: "${cidr}" is not a CIDR block such as 10.0.0.0/8`);
  }
  return { address: match[1]!, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Matches the socket's peer address (never a forwarded header) against CIDR blocks. */
function inCidrs(client: string, cidrs: string[]): boolean {
  const list = new BlockList();
  for (const c of cidrs) {
    const { address, prefix, family } = parseCidr(c);
    list.addSubnet(address, prefix, family);
  }
  const mapped = client.startsWith('::ffff:') ? client.slice(7) : client;
  const family = isIP(mapped) === 6 ? 'ipv6' : 'ipv4';
  return isIP(mapped) !== 0 && list.check(mapped, family);
}
