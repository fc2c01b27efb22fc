import type { Logger } from 'pino';
import { z } from 'zod';
import { isCofferError } from '../errors.js';
import type { SealManager, UnsealedKeys, VaultStore } from '../keys/seal.js';
import type { Table } from '../store/barrier.js';
import { jsonCodec } from '../store/codec.js';
import { REWRAP_PREFIX, VERSION_PREFIX, parseVersionKey, prefixEnd } from '../store/keys.js';
import { recordKeyringVersion, rewrapVersion } from './record.js';
import type { RewrapProgress } from '../../sdk/wire/types.js';

/** Persisted (sealed, `rw/<ns>`) as is and answered by `GET /v1/sys/keyrings/{ns}` (sdk/wire/types.ts). */
export type { RewrapProgress };
const rewrapProgress: z.ZodType<RewrapProgress> = z.object({
  namespace: z.string(),
  state: z.enum(['running', 'done', 'failed']),
  target_version: z.number().int(),
  cursor: z.string().nullable(),
  total: z.number().int(),
  scanned: z.number().int(),
  rewrapped: z.number().int(),
  started_at: z.string(),
  finished_at: z.string().nullable(),
  error: z.string().optional(),
});

const BATCH = 64;

/**
 * Background re-wrap of every DEK of a namespace under its current keyring version, after a
 * keyring rotation. Values are never decrypted: only DEKs are unwrapped and wrapped again.
 * Progress is persisted with each batch, so a restart resumes where the last batch ended.
 */
export class RewrapJobs {
  private readonly running = new Map<string, Promise<void>>();
  /** Namespaces whose keyring wraps something else than secret versions, and how to re-wrap that. */
  private readonly others = new Map<string, () => Promise<{ total: number; rewrapped: number }>>();
  private readonly jobs: Table<RewrapProgress, UnsealedKeys>;

  constructor(
    private readonly store: VaultStore,
    seal: SealManager,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.jobs = store.table(REWRAP_PREFIX, jsonCodec(rewrapProgress), 'rewrap progress record');
    seal.onUnseal(() => this.resume());
  }

  /**
   * Hands a namespace's re-wrap to its owner (the transit keyring wraps transit keys, not
   * secret versions: TransitEngine.rewrapKeys). It runs at `start`, done before it answers.
   */
  handle(namespace: string, rewrap: () => Promise<{ total: number; rewrapped: number }>): void {
    this.others.set(namespace, rewrap);
  }

  async start(namespace: string, targetVersion: number): Promise<RewrapProgress> {
    const other = this.others.get(namespace);
    if (other) {
      const started_at = new Date(this.now()).toISOString();
      const { total, rewrapped } = await other();
      const done: RewrapProgress = {
        namespace,
        state: 'done',
        target_version: targetVersion,
        cursor: null,
        total,
        scanned: total,
        rewrapped,
        started_at,
        finished_at: new Date(this.now()).toISOString(),
      };
      await this.store.mutate((tx) => this.jobs.write(tx, namespace, done));
      return done;
    }
    const progress: RewrapProgress = {
      namespace,
      state: 'running',
      target_version: targetVersion,
      cursor: null,
      total: await this.countVersions(namespace),
      scanned: 0,
      rewrapped: 0,
      started_at: new Date(this.now()).toISOString(),
      finished_at: null,
    };
    await this.store.mutate((tx) => this.jobs.write(tx, namespace, progress));
    this.launch(namespace);
    return progress;
  }

  progress(namespace: string): Promise<RewrapProgress | undefined> {
    return this.jobs.get(namespace);
  }

  /** Restarts every job that was running when the server stopped or sealed. */
  async resume(): Promise<void> {
    for (const [namespace, progress] of await this.jobs.scan())
      if (progress.state === 'running') this.launch(namespace);
  }

  /** Resolves when every running job has stopped (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running.values());
  }

  private launch(namespace: string): void {
    if (this.running.has(namespace)) return;
    const job = this.run(namespace).finally(() => this.running.delete(namespace));
    this.running.set(namespace, job);
  }

  private async run(namespace: string): Promise<void> {
    try {
      for (;;) {
        const done = await this.step(namespace);
        if (done) return;
      }
    } catch (e) {
      if (isCofferError(e, 'sealed')) return; // resumes at the next unseal
      this.log.error({ namespace, err: (e as Error).message }, 'keyring rewrap failed');
      await this.store
        .mutate((tx) => {
          const p = this.jobs.read(tx, namespace);
          if (p)
            this.jobs.write(tx, namespace, {
              ...p,
              state: 'failed',
              error: 'rewrap failed; see the server log',
              finished_at: new Date(this.now()).toISOString(),
            });
        })
        .catch(() => undefined);
    }
  }

  /** One batch; true when the namespace is finished. */
  private async step(namespace: string): Promise<boolean> {
    const keys = this.store.keys();
    const progress = await this.jobs.get(namespace, keys);
    if (!progress || progress.state !== 'running') return true;
    const rows = await this.nextRows(namespace, progress.cursor);
    return this.store.mutate(async (tx) => {
      const p = { ...progress };
      for (const key of rows) {
        p.cursor = key;
        p.scanned++;
        const record = tx.get(key);
        const address = parseVersionKey(key);
        if (!record || !address) continue;
        if (recordKeyringVersion(record) >= p.target_version) continue;
        tx.put(
          key,
          await rewrapVersion(tx, keys.keyrings, { clusterId: keys.clusterId, namespace, ...address }, record),
        );
        p.rewrapped++;
      }
      const finished = rows.length < BATCH;
      if (finished) {
        p.state = 'done';
        p.finished_at = new Date(this.now()).toISOString();
      }
      this.jobs.write(tx, namespace, p);
      return finished;
    });
  }

  private async countVersions(namespace: string): Promise<number> {
    let total = 0;
    for (const prefix of [`${VERSION_PREFIX}${namespace}#`, `${VERSION_PREFIX}${namespace}/`])
      total += await this.store.count(prefix, prefixEnd(prefix));
    return total;
  }

  /** The keys of the next version records of `namespace` after `cursor`: `ver/<ns>#…` then `ver/<ns>/…`. */
  private async nextRows(namespace: string, cursor: string | null): Promise<string[]> {
    const rows: string[] = [];
    for (const prefix of [`${VERSION_PREFIX}${namespace}#`, `${VERSION_PREFIX}${namespace}/`]) {
      if (cursor !== null && cursor >= prefixEnd(prefix)) continue;
      const gte = cursor !== null && cursor >= prefix ? `${cursor}\u0000` : prefix;
      rows.push(...(await this.store.names(gte, prefixEnd(prefix), BATCH - rows.length)));
      if (rows.length >= BATCH) break;
    }
    return rows;
  }
}
