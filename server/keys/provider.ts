/**
 * A master-key provider holds the master key versions and wraps and unwraps keyring keys with
 * them. The software provider keeps them in memory while unsealed; the PKCS#11 provider keeps
 * them inside the HSM. Wrapped keys name the master version that wrapped them.
 */
export interface MasterKeyProvider {
  /** A short label for seal-status: `software` or `pkcs11`. */
  readonly kind: string;
  /** The version new wraps use. */
  currentVersion(): number;
  /** Wraps `key` under the current master version, binding `context`. */
  wrap(key: Uint8Array, context: Uint8Array): Promise<Uint8Array>;
  /** Unwraps a key wrapped by any version; failure is the opaque `decryption_failed`. */
  unwrap(wrapped: Uint8Array, context: Uint8Array): Promise<Uint8Array>;
  /** The master version that wrapped `wrapped`. */
  versionOf(wrapped: Uint8Array): number;
  /** Creates and persists a new master version and makes it current. */
  rotate(): Promise<number>;
  /** Installs given key material (BYOK) as a new current master version. */
  importVersion(material: Uint8Array): Promise<number>;
  /** A copy of the current master key material for a quorum-approved export; HSM keys refuse. */
  exportCurrent(): { version: number; material: Uint8Array };
  /** Forgets every key (zeroizes in-memory material). The provider is unusable afterwards. */
  close(): void;
  /** What an operator should know about the key's holder (e.g. an HSM cluster member down). */
  problems?(): string[];
  /** Set when BYOK import happens inside the provider (HSM) rather than in process memory. */
  readonly hsmImport?: HsmImport | undefined;
}

/**
 * BYOK inside the provider (HSM): the wrapping key pair lives in the token and the import is
 * unwrapped there, so the material never reaches process memory.
 */
export interface HsmImport {
  wrappingPublicKeyPem(): Promise<string>;
  /** Installs material wrapped as RSA-OAEP(ephemeral AES key) + AES-KWP(material); returns the new version. */
  importWrapped(
    wrappedEphemeral: Uint8Array,
    wrappedMaterial: Uint8Array,
    oaepHash: 'sha256' | 'sha1',
  ): Promise<number>;
}
