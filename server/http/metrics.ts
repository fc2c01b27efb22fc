import { routePattern } from './locals.js';
import type { Step } from './edge.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SealManager } from '../keys/seal.js';
import type { Store } from '../store/db.js';

/** A registry per app (tests build many apps in one process). */
export function createMetrics(withProcessMetrics = true): Registry {
  const registry = new Registry();
  if (withProcessMetrics) collectDefaultMetrics({ register: registry, prefix: 'coffer_' });
  return registry;
}

/**
 * Counts requests and their latency by route pattern (never the concrete path, which would
 * leak secret names into metrics and grow without bound). Label children are resolved once
 * per (method, route, status) and reused, which keeps this off the hot path's profile.
 */
export function requestMetrics(registry: Registry): Step {
  const requests = new Counter({
    name: 'coffer_http_requests_total',
    help: 'HTTP requests',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'coffer_http_request_duration_seconds',
    help: 'HTTP request latency',
    labelNames: ['route'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2],
    registers: [registry],
  });
  const children = new Map<string, { count: { inc(): void }; time: { observe(v: number): void } }>();
  return function requestMetrics(req, res) {
    const start = performance.now();
    res.once('finish', () => {
      const route = routePattern(req);
      const method = req.method ?? '';
      const key = `${method} ${route} ${res.statusCode}`;
      let child = children.get(key);
      if (!child) {
        child = { count: requests.labels(method, route, String(res.statusCode)), time: duration.labels(route) };
        children.set(key, child);
      }
      child.count.inc();
      child.time.observe((performance.now() - start) / 1e3);
    });
  };
}

/**
 * HSM operations since the last unseal, read from the provider at scrape time: keyrings are
 * cached, so this grows with keyrings and rotations, not with reads.
 */
export function keyProviderMetrics(registry: Registry, seal: SealManager): void {
  new Gauge({
    name: 'coffer_hsm_operations',
    help: 'PKCS#11 encrypt/decrypt operations since unseal (HSM provider only)',
    labelNames: ['op'],
    registers: [registry],
    collect() {
      const calls = seal.sealed
        ? undefined
        : (seal.keys().provider.inner as { calls?: { encrypt: number; decrypt: number } }).calls;
      if (!calls) return;
      this.set({ op: 'encrypt' }, calls.encrypt);
      this.set({ op: 'decrypt' }, calls.decrypt);
    },
  });
}

/** Whether the database refuses writes (disk full, I/O error), and how many batches failed. */
export function storeMetrics(registry: Registry, store: Store): void {
  new Gauge({
    name: 'coffer_storage_failed',
    help: '1 while database writes fail, labelled by reason (storage_full, storage_unavailable)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      const failure = store.storageFailure;
      for (const reason of ['storage_full', 'storage_unavailable'])
        this.set({ reason }, failure?.code === reason ? 1 : 0);
    },
  });
  new Gauge({
    name: 'coffer_storage_failed_writes',
    help: 'Database batches refused by a full disk or an I/O error since start',
    registers: [registry],
    collect() {
      this.set(store.failedWrites);
    },
  });
}

/** What auditSinkMetrics reads (AuditLog.sinkStatus), structurally, so metrics needs no audit import. */
interface AuditSinkSource {
  sinkStatus(): { name: string; state: string; behind: number; failed_writes: number }[];
}

/**
 * Per audit sink, labelled by its configured path (static config, so the label set is
 * bounded): up (1 while writes succeed; 0 failing or stalled), lines waiting for it, failed writes.
 */
export function auditSinkMetrics(registry: Registry, audit: AuditSinkSource): void {
  new Gauge({
    name: 'coffer_audit_sink_up',
    help: '1 while the audit sink takes lines, 0 while it fails or stalls',
    labelNames: ['sink'],
    registers: [registry],
    collect() {
      for (const s of audit.sinkStatus()) this.set({ sink: s.name }, s.state === 'ok' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'coffer_audit_sink_behind_lines',
    help: 'Audit lines waiting in memory for this sink (bounded; past the bound it gets a gap marker)',
    labelNames: ['sink'],
    registers: [registry],
    collect() {
      for (const s of audit.sinkStatus()) this.set({ sink: s.name }, s.behind);
    },
  });
  new Gauge({
    name: 'coffer_audit_sink_failed_writes',
    help: 'Failed writes to this audit sink since start',
    labelNames: ['sink'],
    registers: [registry],
    collect() {
      for (const s of audit.sinkStatus()) this.set({ sink: s.name }, s.failed_writes);
    },
  });
}
