import type { NextFunction, Request, Response, Router } from 'express';
import { CofferError, isCofferError, type ErrorCode } from '../../errors.js';
import { checkPath } from '../../paths.js';
import { identityOf, writeCheck } from '../authenticate.js';
import { jsonBodyWithin } from '../body.js';
import type { AppDeps } from '../deps.js';
import type { AuditEntry } from '../locals.js';
import { methods } from '../router.js';
import { validate } from '../validate.js';
import { MAX_BATCH_WRITE_BYTES, MAX_BATCH_WRITE_ENTRIES } from '../../../sdk/wire/constants.js';
import { batchWriteBody, batchWriteEntry } from '../../../sdk/wire/schemas.js';
import type { BatchWriteOutcome, BatchWriteResult } from '../../../sdk/wire/types.js';

/**
 * What one entry can fail by on its own. Anything else (a replica, a lost lease, a full or
 * failing disk) is the server's state, not the entry's: it fails the request as a whole.
 */
const ENTRY_ERRORS: ReadonlySet<ErrorCode> = new Set([
  'invalid_request',
  'invalid_path',
  'too_large',
  'forbidden',
  'cas_mismatch',
]);

/**
 * `POST /v1/secrets:batch-write` (docs/api.md "Secrets"): up to 1,000 secrets, each checked and
 * written as a single PUT would be (path rule, body, create or update, check-and-set), each as
 * its own store mutation, so group commit shares the syncs while every secret stays one atomic
 * version. One audit line per secret (server/http/audit.ts), durable before the answer.
 */
export function batchWriteRoute(router: Router, deps: AppDeps): void {
  const { secrets, access } = deps;

  const writeOne = async (entry: { path: string }, identity: ReturnType<typeof identityOf>) => {
    const path = checkPath(entry.path);
    const { path: _path, ...input } = validate(batchWriteEntry, entry);
    return secrets.put(path, input, { authorize: writeCheck(access, identity, path) });
  };

  /** A caller who may write nowhere is refused before a body of up to 16 MiB is read. */
  const mayWriteSomewhere = (req: Request, res: Response, next: NextFunction) => {
    const identity = identityOf(res);
    if (!access.authorizeBelow(identity, 'create', '') && !access.authorizeBelow(identity, 'update', '')) {
      req.resume();
      throw new CofferError('forbidden', 'permission denied: this token may create or update no secret');
    }
    next();
  };

  methods(router, '/v1/secrets\\:batch-write', {
    post: [
      mayWriteSomewhere,
      jsonBodyWithin({ bytes: MAX_BATCH_WRITE_BYTES, entries: MAX_BATCH_WRITE_ENTRIES }),
      async (req, res) => {
        const { secrets: entries } = validate(batchWriteBody, req.body);
        refuseRepeatedPaths(entries.map((e) => e.path));
        const identity = identityOf(res);
        // Started together: the mutations queue in entry order and share group commits.
        const outcomes = await Promise.all(
          entries.map(async (entry) => {
            try {
              return { path: entry.path, written: await writeOne(entry, identity) };
            } catch (e) {
              if (isCofferError(e) && ENTRY_ERRORS.has(e.code)) return { path: entry.path, refused: e };
              return { path: entry.path, failure: e as Error };
            }
          }),
        );
        const results: BatchWriteOutcome[] = [];
        const audited: AuditEntry[] = [];
        for (const { path, written, refused } of outcomes) {
          if (written) {
            results.push(written);
            audited.push({ path, status: 200 });
          } else if (refused) {
            const { code, message, status } = refused;
            results.push({ path, error: { code, message } });
            // An invalid path is not put on record as if it named a secret.
            audited.push({ path: code === 'invalid_path' ? null : path, status, error_code: code });
          }
        }
        // Written entries are on record even when the request as a whole fails.
        res.locals.auditEntries = audited;
        const failed = outcomes.find((o) => o.failure);
        if (failed?.failure) throw failed.failure;
        res.json({ results } satisfies BatchWriteResult);
      },
    ],
  });
}

/** Two entries for one path would make each one's outcome depend on the other: refused before anything is written. */
function refuseRepeatedPaths(paths: string[]): void {
  const first = new Map<string, number>();
  paths.forEach((path, i) => {
    const seen = first.get(path);
    if (seen !== undefined)
      throw new CofferError(
        'invalid_request',
        `secrets.${i}.path repeats secrets.${seen}.path: send each path once per batch`,
      );
    first.set(path, i);
  });
}
