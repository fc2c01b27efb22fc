import { Gauge, type Registry } from 'prom-client';
import type { ReplicationTarget } from '../../sdk/wire/types.js';

/** What the gauges read, at each scrape. */
export interface ReplicationGauges {
  lag(): { seq: number; ms: number };
  refusesReads(): boolean;
  targets(): readonly ReplicationTarget[];
  fenced(): boolean;
}

export function registerReplicationMetrics(registry: Registry, source: ReplicationGauges): void {
  const registers = [registry];
  new Gauge({
    name: 'coffer_replication_lag_records',
    help: 'Records the replica has not applied yet',
    registers,
    collect() {
      this.set(source.lag().seq);
    },
  });
  new Gauge({
    name: 'coffer_replication_lag_ms',
    help: 'How long the replica has been behind the head (ms)',
    registers,
    collect() {
      this.set(source.lag().ms);
    },
  });
  new Gauge({
    name: 'coffer_replication_stale',
    help: '1 while the replica refuses reads as stale',
    registers,
    collect() {
      this.set(source.refusesReads() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'coffer_replication_shipped_seq',
    help: 'Last sequence shipped, per target',
    labelNames: ['target'],
    registers,
    collect() {
      for (const t of source.targets()) this.set({ target: t.url }, t.last_shipped_seq);
    },
  });
  new Gauge({
    name: 'coffer_replication_fenced',
    help: '1 once this server was fenced',
    registers,
    collect() {
      this.set(source.fenced() ? 1 : 0);
    },
  });
}
