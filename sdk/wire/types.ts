import type { SecretType } from './constants.js';
import type { ReplicationErrorCode } from './errors.js';

export type { SecretType };

/** Request and response shapes of the HTTP API (docs/api.md); the server may `import type` them. */

export interface Secret {
  path: string;
  version: number;
  type: SecretType;
  data: Record<string, string>;
  metadata: Record<string, string>;
  created_at: string;
  expires_at: string | null;
}

export interface PutSecretRequest {
  type?: SecretType;
  data: Record<string, string>;
  metadata?: Record<string, string>;
  expires_at?: string;
  cas?: number;
  generate?: { key: string; length?: number; charset?: 'alphanumeric' | 'symbols' | 'hex' | 'digits' };
}

export interface PutSecretResult {
  path: string;
  version: number;
  created_at: string;
}

export interface SecretMetadata {
  path: string;
  type: SecretType;
  current_version: number;
  metadata: Record<string, string>;
  created_at: string;
  updated_at: string;
  versions: { version: number; type: SecretType; created_at: string; deleted_at: string | null; destroyed: boolean; expires_at: string | null }[];
}

export interface ListResult {
  keys: string[];
  next: string | null;
}

export interface BatchResult {
  secrets: Record<string, Secret>;
  errors: Record<string, { code: string; message: string }>;
}

export interface SealStatus {
  initialized: boolean;
  sealed: boolean;
  threshold: number;
  shares: number;
  progress: number;
  provider: string;
  /** Returned to whoever submits shares while an unseal is in progress; `reset` must show it. */
  nonce?: string;
  /** The current master key version while unsealed; imported material may expire (BYOK `valid_to`). */
  master_key?: { version: number; imported: boolean; exportable: boolean; valid_to: string | null; expired: boolean };
}

export interface Health {
  initialized: boolean;
  sealed: boolean;
  role: 'primary' | 'replica';
  version: string;
  /** A primary that saw another server promoted: it refuses writes (health answers 503). */
  fenced?: boolean;
  /** Conditions an operator must act on (e.g. expired master key material); absent when none. */
  warnings?: string[];
}

export interface LoginResult {
  /** From a renewal: the same token that was renewed (renewal extends it in place). */
  token: string;
  /** The effective expiry now; renewals move it, never past the token's max TTL (the JWT `exp`). */
  expires_at: string;
  groups: string[];
  policies: string[];
  identity: string;
}

export interface TokenSelf {
  identity: string;
  groups: string[];
  policies: string[];
  /** The effective expiry, renewals applied. */
  expires_at: string;
  jti: string;
}

export interface RewrapProgress {
  namespace: string;
  state: 'running' | 'done' | 'failed';
  target_version: number;
  total: number;
  scanned: number;
  rewrapped: number;
  started_at: string;
  finished_at: string | null;
}

export interface KeyringStatus {
  namespace: string;
  master_version: number;
  current: number;
  versions: { version: number; created_at: number; wraps: number; master_version: number }[];
  rewrap: RewrapProgress | null;
}

export interface TransitKeyInfo {
  name: string;
  latest_version: number;
  min_decryption_version: number;
  exportable: boolean;
  usage: ('encrypt' | 'decrypt' | 'datakey')[];
  versions: { version: number; created_at: string }[];
}

/** GET /v1/sys/replication (see docs/api.md; extra fields may be added). */
export interface ReplicationStatus {
  role: 'primary' | 'replica' | 'standalone';
  epoch: number;
  last_seq: number;
  /** This server's node id in the replication stream (stable across restarts). */
  node: string;
  targets: { url: string; epoch: number; last_shipped_seq: number; ok: boolean; error: string | null; last_ok_at: number | null; lease_until: number | null; snapshot_seq: number | null }[];
  primary: string;
  lag_seq: number;
  lag_ms: number;
  stale: boolean;
  fenced: string | null;
  writes_from?: number | null;
  replica?: {
    epoch: number;
    applied_seq: number;
    head_seq: number | null;
    verified_head_at: number | null;
    bootstrapping: boolean;
    error: { code: ReplicationErrorCode; message: string; at: number } | null;
  } | null;
}
