import { createHash } from 'node:crypto';
import { constantTimeEqual } from '../crypto/bytes.js';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import type { Store, Tx } from '../store/db.js';
import { ROOT_TOKEN_KEY } from '../store/keys.js';
import type { AccessControl, Capability, Identity } from './access.js';

const PREFIX = 'cof_root_';
const ROOT: Identity = Object.freeze({ id: 'root', groups: [], root: true }) as Identity;
const sha256 = (s: string) => new Uint8Array(createHash('sha256').update(s, 'utf8').digest());

/**
 * The root token: 256 random bits, shown once at init; only its SHA-256 is stored. Checking a
 * presented token hashes it and compares the digests in constant time, so neither the stored
 * value nor a prefix of it can be learned from timing.
 */
export class RootTokenAccess implements AccessControl {
  private hash: Uint8Array | undefined;

  constructor(private readonly store: Store, private readonly random: RandomSource = systemRandom) {
    const raw = store.get(ROOT_TOKEN_KEY);
    this.hash = raw ? Uint8Array.from(raw) : undefined;
  }

  /** Creates a root token and stages its hash in `tx`; returns the token (show it once). */
  issue(tx: Tx): string {
    const token = PREFIX + Buffer.from(this.random(32)).toString('base64url');
    const hash = sha256(token);
    tx.put(ROOT_TOKEN_KEY, hash);
    this.hash = hash;
    return token;
  }

  authenticate(token: string): Identity | undefined {
    const stored = this.hash ?? this.reload();
    if (!stored || token.length > 4096) return undefined;
    return constantTimeEqual(sha256(token), stored) ? ROOT : undefined;
  }

  authorize(identity: Identity, _capability: Capability, _path: string): boolean {
    return identity.root;
  }

  private reload(): Uint8Array | undefined {
    const raw = this.store.get(ROOT_TOKEN_KEY);
    this.hash = raw ? Uint8Array.from(raw) : undefined;
    return this.hash;
  }
}
