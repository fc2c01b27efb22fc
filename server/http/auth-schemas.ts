import { z } from 'zod';
import { CAPABILITIES } from '../auth/access.js';
import { POLICY_NAME } from '../auth/policy.js';
import { ttl } from '../auth/ttl.js';

const name = z.string().regex(POLICY_NAME, 'expected 1 to 64 characters of [a-z0-9_-]');

export const policyBody = z.strictObject({
  rules: z
    .array(z.strictObject({ path: z.string().min(1).max(512), capabilities: z.array(z.enum(CAPABILITIES)).min(1).max(CAPABILITIES.length) }))
    .min(1)
    .max(256),
});

export const groupBody = z.strictObject({
  policies: z.array(name).max(64),
  members: z.array(z.string().regex(/^[A-Za-z0-9:@._/-]{1,256}$/, 'expected an identity such as user:alice')).max(1000).optional(),
});

export const tokenCreateBody = z.strictObject({
  identity: z.string().regex(/^[A-Za-z0-9:@._/-]{1,200}$/, 'expected an identity such as svc:deployer'),
  groups: z.array(name).max(64).default([]),
  policies: z.array(name).max(64).default([]),
  /** Absent: one hour, cut to what the minter may grant. */
  ttl: ttl.optional(),
  max_ttl: ttl.optional(),
  /** Outside the minter's tree (survives its revocation): needs admin on sys/auth/token/create-orphan. */
  orphan: z.boolean().default(false),
});

export const tokenRevokeBody = z.strictObject({ token: z.string().min(1).max(8192).optional() });

const settings = {
  groups: z.array(name).max(64).default([]),
  policies: z.array(name).max(64).default([]),
  token_ttl: ttl.default(3600),
  token_max_ttl: ttl.default(86_400),
};

export const userBody = z.strictObject({ password: z.string().min(12).max(1024).optional(), ...settings });

export const appRoleBody = z.strictObject({
  ...settings,
  secret_id_ttl: ttl.optional(),
  secret_id_num_uses: z.number().int().min(0).max(1_000_000).default(0),
  bound_cidrs: z.array(z.string().max(64)).max(32).default([]),
});

export const userpassLoginBody = z.strictObject({ username: z.string().min(1).max(64), password: z.string().min(1).max(1024) });
export const appRoleLoginBody = z.strictObject({ role_id: z.string().min(1).max(64), secret_id: z.string().min(1).max(128) });
export const jwtLoginBody = z.strictObject({ role: z.string().min(1).max(64), jwt: z.string().min(1).max(16_384) });
export const rotateSigningBody = z.strictObject({ retire_previous: z.boolean().default(false) });
