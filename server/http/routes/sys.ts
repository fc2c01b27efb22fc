import type { Request, Response, Router } from 'express';
import { initializeVault } from '../../auth/bootstrap.js';
import { CofferError } from '../../errors.js';
import { identityOf, requireCapability } from '../authenticate.js';
import { jsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import { SEGMENT } from '../../paths.js';
import {
  auditLinesQuery,
  emptyBody,
  healthQuery,
  initBody,
  keyringRotateBody,
  unsealBody,
} from '../../../sdk/wire/schemas.js';
import { recentLines } from '../../audit/recent.js';
import type {
  AuditInfo,
  Health,
  InitResult,
  KeyringRotation,
  KeyringStatus,
  MasterRotation,
} from '../../../sdk/wire/types.js';
import { timestamp } from '../../../sdk/wire/time.js';
import { validate, validateQuery } from '../validate.js';
import { methods } from '../router.js';
import { rateLimit } from '../rate-limit.js';
import { vaultHealthFields } from '../vault/sys.js';

/** Routes that answer while sealed or uninitialized: health, seal-status, init, unseal. */
export function publicSysRoutes(router: Router, deps: AppDeps): void {
  const { seal } = deps;
  // Unseal and init are unauthenticated: bound how fast one client may guess or reset.
  const ceremonyLimit = rateLimit({ max: 30, windowMs: 60_000 });

  methods(router, '/v1/sys/health', {
    get: (req, res) => {
      const flags = validateQuery(healthQuery, req);
      const replica = deps.replication?.role === 'replica'; // 429: unsealed, but not the active node
      const warnings = [...seal.warnings(), ...deps.audit.warnings()];
      const storage = deps.store.storageFailure; // writes refused: not a node to send traffic to
      const draining = deps.lifecycle?.draining === true;
      const auditDown = !deps.audit.available; // no sink takes lines: every audited request is refused
      const fenced = deps.replication?.fenced === true; // another server was promoted: this one refuses writes
      const body: Health = {
        initialized: seal.initialized,
        sealed: seal.sealed,
        role: replica ? 'replica' : 'primary',
        version: deps.version,
        ...(storage ? { storage: { error: storage.code, since: timestamp(storage.since) } } : {}),
        ...(draining ? { draining: true } : {}),
        ...(fenced ? { fenced: true } : {}),
        ...(auditDown ? { audit: 'unavailable' } : {}),
        ...(warnings.length ? { warnings } : {}),
      };
      const standby = !seal.initialized || seal.sealed ? false : replica;
      const status = !seal.initialized
        ? (flags.uninitcode ?? 501)
        : seal.sealed
          ? (flags.sealedcode ?? 503)
          : storage || draining || auditDown || fenced
            ? 503
            : replica
              ? flags.replicaok || flags.standbyok
                ? (flags.activecode ?? 200)
                : (flags.replicacode ?? flags.standbycode ?? 429)
              : (flags.activecode ?? 200);
      // Vault's fields too, so Vault's load balancer checks and clients read it (vault/sys.ts).
      res.status(status).json({ ...body, ...vaultHealthFields(standby, Date.now()) });
    },
  });

  methods(router, '/v1/sys/seal-status', { get: (_req, res) => void res.json(seal.status()) });

  methods(router, '/v1/sys/init', {
    post: [
      ceremonyLimit,
      jsonBody,
      async (req, res) => {
        const { shares, threshold } = validate(initBody, req.body);
        const initialized = await initializeVault(seal, deps.access.tokens, { shares, threshold });
        deps.log.info({ shares, threshold, provider: seal.status().provider }, 'vault initialized');
        res.json({ shares: initialized.shares, root_token: initialized.rootToken } satisfies InitResult);
      },
    ],
  });

  methods(router, '/v1/sys/unseal', {
    post: [
      ceremonyLimit,
      jsonBody,
      async (req, res) => {
        const body = validate(unsealBody, req.body);
        if ('reset' in body) {
          const status = seal.resetUnseal(body.nonce);
          deps.log.warn({ request_id: res.locals.requestId }, 'unseal progress reset');
          return void res.json(status);
        }
        const wasSealed = seal.sealed;
        try {
          res.json(await seal.submitShare(body.share));
        } catch (e) {
          deps.log.warn({ request_id: res.locals.requestId, code: (e as CofferError).code }, 'unseal share refused');
          throw e;
        }
        if (wasSealed && !seal.sealed) deps.log.info('vault unsealed');
      },
    ],
  });
}

/** Admin routes under /v1/sys that need an unsealed vault and a token. */
export function sysRoutes(router: Router, deps: AppDeps): void {
  const { seal, access } = deps;
  const admin = (res: Response, what: string) => requireCapability(access, res, 'admin', `sys/${what}`);

  methods(router, '/v1/sys/seal', {
    post: [
      jsonBody,
      async (req, res) => {
        validate(emptyBody, req.body);
        admin(res, 'seal');
        await seal.seal();
        deps.log.warn({ request_id: res.locals.requestId, identity: identityOf(res).id }, 'vault sealed');
        res.status(204).end();
      },
    ],
  });

  methods(router, '/v1/sys/audit', {
    get: (_req, res) => {
      admin(res, 'audit');
      // The checkpoint bounds let `coffer audit verify` hold a log's unsigned tail to what this server leaves unsigned.
      const interval = deps.audit.checkpointIntervalMs;
      res.json({
        public_key_pem: deps.auditSigner.publicKeyPem() ?? null,
        last_seq: deps.audit.lastSeq,
        sinks: deps.audit.sinkCount,
        failed_writes: deps.audit.failedWrites,
        // Per sink: state (ok, failing, stalled), since when, the last error, how far behind.
        sink_status: deps.audit.sinkStatus(),
        checkpoint_every: deps.audit.checkpointEvery,
        checkpoint_interval_s: interval === undefined ? null : interval / 1000,
      } satisfies AuditInfo);
    },
  });

  methods(router, '/v1/sys/audit/lines', {
    get: async (req, res) => {
      admin(res, 'audit');
      const query = validateQuery(auditLinesQuery, req);
      res.json(
        await recentLines(
          deps.audit.firstFile,
          { ...query, limit: query.limit ?? 100 },
          deps.auditSigner.publicKeyPem(),
        ),
      );
    },
  });

  methods(router, '/v1/sys/rotate', {
    post: [
      jsonBody,
      async (req, res) => {
        validate(emptyBody, req.body);
        admin(res, 'rotate');
        const { provider, keyrings } = seal.keys();
        const version = await provider.rotate();
        const rewrapped = await keyrings.rewrapUnderCurrentMaster();
        deps.log.info({ master_version: version, keyrings: rewrapped }, 'master key rotated');
        res.json({ master_version: version, keyrings_rewrapped: rewrapped } satisfies MasterRotation);
      },
    ],
  });

  const namespaceOf = (req: Request) => {
    const ns = req.params.ns;
    if (typeof ns !== 'string' || !SEGMENT.test(ns))
      throw new CofferError('invalid_path', 'namespace is invalid: one path segment of [A-Za-z0-9._-]');
    return ns;
  };

  methods(router, '/v1/sys/keyrings/:ns', {
    get: async (req, res) => {
      const ns = namespaceOf(req);
      admin(res, `keyrings/${ns}`);
      const keyring = seal.keys().keyrings.describe(ns);
      if (!keyring) throw new CofferError('not_found', `namespace ${ns} has no keyring yet`);
      const versions = keyring.versions.map((v) => ({ ...v, created_at: timestamp(v.created_at) }));
      res.json({
        namespace: ns,
        master_version: seal.keys().provider.currentVersion(),
        ...keyring,
        versions,
        rewrap: (await deps.rewrap.progress(ns)) ?? null,
      } satisfies KeyringStatus);
    },
  });

  methods(router, '/v1/sys/keyrings/:ns/rotate', {
    post: [
      jsonBody,
      async (req, res) => {
        const ns = namespaceOf(req);
        const body = validate(keyringRotateBody, req.body);
        admin(res, `keyrings/${ns}`);
        const version = await seal.keys().keyrings.rotate(ns);
        const rewrap = body.rewrap ? await deps.rewrap.start(ns, version) : null;
        deps.log.info({ namespace: ns, version, rewrap: Boolean(rewrap) }, 'keyring rotated');
        res.json({ namespace: ns, version, rewrap } satisfies KeyringRotation);
      },
    ],
  });
}

/** /v1/sys/metrics: admin on sys/metrics, or public when configured. */
export function metricsRoute(router: Router, deps: AppDeps): void {
  methods(router, '/v1/sys/metrics', {
    get: async (_req, res) => {
      if (!deps.metricsPublic) requireCapability(deps.access, res, 'admin', 'sys/metrics');
      res.type(deps.metrics.contentType).send(await deps.metrics.metrics());
    },
  });
}
