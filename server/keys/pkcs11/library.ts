import { existsSync } from 'node:fs';
import * as graphene from 'graphene-pk11';
import { CofferError } from '../../errors.js';

/** CKF_OS_LOCKING_OK: the library may use native locks; without it SoftHSM2 can hang. */
const CKF_OS_LOCKING_OK = 2;

/**
 * A loaded PKCS#11 library. C_Initialize is process-wide per library, so every token of one
 * module shares one instance (reference counted). `generation` grows on each re-initialisation,
 * which invalidates every session and object handle the tokens hold.
 */
export class Pkcs11Library {
  generation = 0;
  private users = 0;

  private constructor(
    readonly path: string,
    private readonly module: graphene.Module,
  ) {}

  private static readonly loaded = new Map<string, Pkcs11Library>();

  static acquire(path: string): Pkcs11Library {
    let library = Pkcs11Library.loaded.get(path);
    if (!library) {
      if (!existsSync(path))
        throw new CofferError(
          'invalid_request',
          `PKCS#11 module ${path} does not exist: install the HSM client library or fix module=`,
        );
      let module: graphene.Module;
      try {
        module = graphene.Module.load(path);
        module.initialize({ flags: CKF_OS_LOCKING_OK });
      } catch (e) {
        throw new CofferError('invalid_request', `PKCS#11 module ${path} cannot be loaded: ${(e as Error).message}`);
      }
      library = new Pkcs11Library(path, module);
      Pkcs11Library.loaded.set(path, library);
    }
    library.users++;
    return library;
  }

  /** The slot whose token carries `label`; slot ids change across initialisations, labels do not. */
  findSlot(label: string): graphene.Slot | undefined {
    const slots = this.module.getSlots(true);
    for (let i = 0; i < slots.length; i++) {
      const slot = slots.items(i);
      try {
        if (slot.getToken().label.trim() === label) return slot;
      } catch {
        // a slot whose token cannot be read is not the one we want
      }
    }
    return undefined;
  }

  /**
   * Finalizes and initializes the library again: the only way SoftHSM2 (and some network HSM
   * clients) notice a token that went away and came back.
   */
  reinitialize(): void {
    try {
      this.module.finalize();
    } catch {
      // already finalized by a failed attempt
    }
    this.module.initialize({ flags: CKF_OS_LOCKING_OK });
    this.generation++;
  }

  release(): void {
    if (--this.users > 0) return;
    Pkcs11Library.loaded.delete(this.path);
    try {
      this.module.finalize();
    } catch {
      // nothing left to release
    }
  }
}
