import type { Logger } from 'pino';
import { KEY_LENGTH } from '../crypto/aead.js';
import type { RandomSource } from '../crypto/random.js';
import type { Store } from '../store/db.js';
import type { MasterKeyProvider } from './provider.js';
import { loadRootKey, type RootKeySource } from './root-key.js';
import { passphraseSalt, type SealConfig } from './seal-config.js';
import { SoftwareProvider } from './software.js';

export interface ProviderContext {
  store: Store;
  source: RootKeySource;
  env: NodeJS.ProcessEnv;
  random: RandomSource;
  log?: Pick<Logger, 'warn' | 'info' | 'error'> | undefined;
}

/** Sources that unseal by themselves at start (the rest unseal with Shamir shares of the root key). */
export const AUTO_UNSEAL: readonly RootKeySource['kind'][] = ['file', 'env', 'passphrase', 'pkcs11'];

/**
 * At init: a fresh master key under the configured source. Shamir: under a fresh root key, which
 * is what gets split (`splitKey`); the others: under their own root key or HSM, and `splitKey` is
 * a fresh recovery key. The caller splits and zeroizes `splitKey`.
 */
export async function createProvider(
  ctx: ProviderContext,
  config: Pick<SealConfig, 'passphrase_salt'>,
  clusterId: string,
): Promise<{ provider: MasterKeyProvider; splitKey: Uint8Array }> {
  if (ctx.source.kind === 'shamir') {
    const splitKey = ctx.random(KEY_LENGTH);
    return {
      provider: await SoftwareProvider.create(ctx.store, Uint8Array.from(splitKey), clusterId, ctx.random),
      splitKey,
    };
  }
  const provider = await openAutoProvider(ctx, config, clusterId, true);
  return { provider, splitKey: ctx.random(KEY_LENGTH) };
}

/** A Shamir vault's provider under the root key its shares combined to (the provider owns `rootKey`). */
export function openShamirProvider(
  ctx: ProviderContext,
  rootKey: Uint8Array,
  clusterId: string,
): Promise<MasterKeyProvider> {
  return SoftwareProvider.open(ctx.store, rootKey, clusterId, ctx.random);
}

/**
 * The provider of an auto-unseal source: the software provider under a root key from a file,
 * env var or passphrase, or the HSM (loaded only when configured: it is a native module).
 */
export async function openAutoProvider(
  ctx: ProviderContext,
  config: Pick<SealConfig, 'passphrase_salt'>,
  clusterId: string,
  create = false,
): Promise<MasterKeyProvider> {
  const { source } = ctx;
  if (source.kind === 'pkcs11') {
    const [{ Pkcs11Provider }, { parsePkcs11Uri }] = await Promise.all([
      import('./pkcs11/provider.js'),
      import('./pkcs11/uri.js'),
    ]);
    return Pkcs11Provider.open(parsePkcs11Uri(source.uri), {
      env: ctx.env,
      random: ctx.random,
      ...(ctx.log ? { log: ctx.log } : {}),
    });
  }
  const rootKey = await loadRootKey(source, ctx.env, passphraseSalt(config));
  return create
    ? SoftwareProvider.create(ctx.store, rootKey, clusterId, ctx.random)
    : SoftwareProvider.open(ctx.store, rootKey, clusterId, ctx.random);
}
