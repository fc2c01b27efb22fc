import { CofferError } from '../../errors.js';
import { Pkcs11Library } from './library.js';
import { readPin } from './provider.js';
import { HsmToken, PinRefused } from './token.js';
import type { Pkcs11Settings } from './uri.js';

export interface HsmInitResult {
  key: string;
  tokens: string[];
  version: number;
  source: 'generated' | 'imported';
}

/**
 * `coffer hsm init`: creates master key version 1 in each listed token. It refuses a token that
 * already holds the label (never overwrites), and a cluster without `material`, since keys
 * generated separately in each member would differ. Every token is checked before any is written.
 */
export function initHsmKey(settings: Pkcs11Settings, env: NodeJS.ProcessEnv, material?: Uint8Array): HsmInitResult {
  if (!material && settings.members.length > 1) {
    throw new CofferError(
      'invalid_request',
      'the tokens of a cluster must hold the same key: pass --key-file with 32 key bytes to put into each of them',
    );
  }
  const libraries = new Map<string, Pkcs11Library>();
  const tokens: HsmToken[] = [];
  try {
    for (const member of settings.members) {
      let library = libraries.get(member.module);
      if (!library) libraries.set(member.module, (library = Pkcs11Library.acquire(member.module)));
      const token = new HsmToken(library, member.token, settings.keyLabel, () => readPin(member, env));
      try {
        token.open();
      } catch (e) {
        if (e instanceof PinRefused)
          throw new CofferError('unseal_failed', `${e.message}: check the PIN (it was tried once, not retried)`);
        throw e;
      }
      tokens.push(token);
      if (token.versions().length > 0) {
        throw new CofferError(
          'already_exists',
          `HSM token "${member.token}" already holds key "${settings.keyLabel}": refusing to overwrite it`,
        );
      }
    }
    for (const token of tokens) {
      if (!token.supportsGcm())
        throw new CofferError('invalid_request', `HSM token "${token.label}" does not offer CKM_AES_GCM`);
    }
    for (const token of tokens) {
      if (material) token.create(1, material);
      else token.generate(1);
    }
    return {
      key: settings.keyLabel,
      tokens: tokens.map((t) => t.label),
      version: 1,
      source: material ? 'imported' : 'generated',
    };
  } finally {
    for (const t of tokens) t.close();
    for (const l of libraries.values()) l.release();
  }
}
