import type { SealManager } from '../keys/seal.js';
import type { TokenService } from './tokens.js';

export interface Initialized {
  /** The unseal shares (one recovery share for auto-unseal providers). */
  shares: string[];
  rootToken: string;
}

/**
 * The one init sequence, for `POST /v1/sys/init`, the dev server's first start and tests: the
 * master key, the sys keyring and the root token's signing key commit in one batch, so a vault is
 * never initialized without a way in.
 */
export async function initializeVault(
  seal: SealManager,
  tokens: TokenService,
  shape: { shares: number; threshold: number },
): Promise<Initialized> {
  let rootToken = '';
  const shares = await seal.init(shape.shares, shape.threshold, async (tx, keys) => {
    rootToken = await tokens.createRoot(tx, keys);
  });
  return { shares, rootToken };
}
