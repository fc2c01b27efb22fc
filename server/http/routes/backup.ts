import type { Router } from 'express';
import { startBackup } from '../../backup/backup.js';
import { CofferError } from '../../errors.js';
import { identityOf, requireCapability } from '../authenticate.js';
import type { AppDeps } from '../deps.js';
import { methods } from '../router.js';

/**
 * GET /v1/sys/backup (admin on sys/backup): one consistent, online snapshot of the store as an
 * encrypted backup file (server/backup/format.ts), streamed with backpressure.
 *
 * Audit: the usual line is written when the response ends, which for a stream is after the
 * bytes went out; so a first line is made durable before the first byte (fail closed: no audit,
 * no backup). That line is written before `startBackup`, so a refused backup never wraps a
 * key or pins a snapshot; and once started, the backup is disposed of (its iterator closed, its
 * working keys zeroized) on every path: finished, cut, client gone, or failed before the first
 * byte. A stream that fails midway is cut (the socket destroyed): the file then has no
 * end marker and `coffer restore` refuses it as truncated.
 */
export function backupRoutes(router: Router, deps: AppDeps): void {
  methods(router, '/v1/sys/backup', {
    get: async (req, res) => {
      requireCapability(deps.access, res, 'admin', 'sys/backup');
      const keys = deps.seal.keys();
      if (req.method === 'HEAD') return void res.status(200).type('application/octet-stream').end();
      const identity = identityOf(res);
      const auditLine = (operation: string, outcome: 'ok' | 'error', errorCode?: string) =>
        deps.audit.record({
          request_id: res.locals.requestId,
          identity: identity.id,
          groups: identity.groups,
          operation,
          path: 'sys/backup',
          status: outcome === 'ok' ? 200 : 500,
          outcome,
          client: res.locals.clientAddress ?? req.socket.remoteAddress ?? 'unknown',
          ...(errorCode ? { error_code: errorCode } : {}),
        });
      // Fail closed before any work: no audit, no backup key, no snapshot.
      await auditLine('GET /v1/sys/backup (start)', 'ok');
      let closed = false;
      res.once('close', () => {
        closed = true;
      });
      const { info, body, dispose } = await startBackup(deps.store, keys.provider, keys.clusterId);
      // A client that stops reading holds the stream on `drain`; a seal must not wait for it to
      // forget the backup key: it wakes the stream, which then stops as sealed.
      const sealedDuring = new AbortController(); // also marks a seal the stream saw none of
      const stopWatchingSeal = deps.seal.onSeal(() => sealedDuring.abort());
      try {
        deps.log.info(
          { request_id: res.locals.requestId, identity: identity.id, backup: info.backup, seq: info.seq },
          'backup started',
        );
        res.status(200).setHeaders(
          new Map([
            ['Content-Type', 'application/octet-stream'],
            ['Content-Disposition', `attachment; filename="coffer-${info.vault}-${info.seq}.backup"`],
            ['X-Coffer-Vault-Id', info.vault],
            ['X-Coffer-Backup-Id', info.backup],
            ['X-Coffer-Backup-Seq', String(info.seq)],
          ]),
        );
        let bytes = 0;
        try {
          for await (const piece of body) {
            // Sealing means "forget every key": stop instead of streaming on under the backup key.
            if (deps.seal.sealed || sealedDuring.signal.aborted)
              throw new CofferError('sealed', 'vault sealed during the backup'); // even if unsealed again since
            if (closed) break;
            bytes += piece.length;
            if (!res.write(piece))
              await new Promise<void>((done) => {
                const go = () => {
                  res.off('close', go);
                  res.off('drain', go);
                  sealedDuring.signal.removeEventListener('abort', go);
                  done();
                };
                res.once('drain', go).once('close', go);
                sealedDuring.signal.addEventListener('abort', go);
              });
          }
        } catch (e) {
          deps.log.error(
            { request_id: res.locals.requestId, backup: info.backup, error: (e as Error).message },
            'backup stream failed: cut',
          );
          await dispose();
          res.destroy(); // never end() it: a cleanly ended response would look complete
          await auditLine('GET /v1/sys/backup (cut)', 'error', e instanceof CofferError ? e.code : 'internal').catch(
            () => undefined,
          );
          return;
        }
        if (closed) {
          await dispose();
          deps.log.warn({ request_id: res.locals.requestId, backup: info.backup, bytes }, 'backup client went away');
          await auditLine('GET /v1/sys/backup (client went away)', 'error', 'client_closed').catch(() => undefined);
          return;
        }
        deps.log.info(
          { request_id: res.locals.requestId, backup: info.backup, seq: info.seq, bytes },
          'backup finished',
        );
        res.end();
      } finally {
        stopWatchingSeal();
        await dispose(); // every path, including a body never started (its own finally never runs)
      }
    },
  });
}
