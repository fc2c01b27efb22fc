import { open, seal, KEY_LENGTH } from '../crypto/aead.js';
import { encodeContext, utf8 } from '../crypto/bytes.js';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { CofferError } from '../errors.js';

/** Cursors are `~` + base64url; a secret path cannot start with `~`, so `after` tells them apart (sdk/wire/constants.ts). */
export { LIST_CURSOR as CURSOR } from '../../sdk/wire/constants.js';

/**
 * Opaque continuation points for listings that stop inside a run of names the caller may not
 * see. Handing back such a name as `next` would disclose it (and walking the cursor would
 * enumerate them all), so the resume point is sealed under a key that lives only in this
 * process, bound to the prefix and the caller. A restart invalidates open cursors: the client
 * lists again from the start, which is the documented behaviour (docs in README "Listing").
 */
export class ListCursors {
  private readonly key: Uint8Array;

  constructor(private readonly random: RandomSource = systemRandom) {
    this.key = random(KEY_LENGTH);
  }

  seal(resumeAfter: string, scope: ListScope): string {
    return `~${Buffer.from(seal(this.key, utf8(resumeAfter), aad(scope), this.random)).toString('base64url')}`;
  }

  /** The key to resume after, or `invalid_request` for a cursor this process did not issue to this caller. */
  open(cursor: string, scope: ListScope): string {
    try {
      return Buffer.from(open(this.key, Buffer.from(cursor.slice(1), 'base64url'), aad(scope))).toString('utf8');
    } catch {
      throw new CofferError(
        'invalid_request',
        'the listing cursor is not valid here (expired by a restart, or from another listing): list again without after',
      );
    }
  }
}

export interface ListScope {
  prefix: string;
  identity: string;
}

const aad = (scope: ListScope) => encodeContext('coffer/list-cursor', scope.prefix, scope.identity);
