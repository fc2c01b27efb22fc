import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { configSchema, type ServerConfig } from '../../../server/config.js';
import { startServer, type RunningServer } from '../../../server/main.js';
import { tempDir } from '../../helpers.js';
import { call } from '../../integration/load-helpers.js';

export interface Node {
  server: RunningServer;
  dir: string;
  url: string;
  /** Structured log lines the server wrote (for asserting that problems are logged). */
  logs: { level: number; msg: string; [k: string]: unknown }[];
  call(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/** Fast settings for tests: short polls, batches and leases. */
export const FAST = {
  poll_interval: 0.1,
  replication_batch_ms: 20,
  replication_lease_s: 3,
  replication_clock_skew_ms: 200,
  max_staleness_s: 5,
};

/**
 * A real server (startServer: LevelDB, HTTP on loopback) in dev mode with an explicit key
 * file, so a replica can be opened with the same master key. Logs are captured, not printed.
 */
export async function startNode(
  options: Partial<ServerConfig> & {
    dir?: string;
    kekFile?: string;
    env?: NodeJS.ProcessEnv;
    onLog?: (line: Node['logs'][number]) => void;
  },
): Promise<Node> {
  const { dir: given, kekFile, env = {}, onLog, ...rest } = options;
  const dir = given ?? (await tempDir('coffer-repl-'));
  const logs: Node['logs'] = [];
  const log = pino(
    { level: 'info' },
    {
      write: (line: string) => {
        const parsed = JSON.parse(line) as Node['logs'][number];
        logs.push(parsed);
        onLog?.(parsed); // synchronously, while the server waits on the log call
      },
    },
  );
  const config = configSchema.parse({
    dev: true,
    listen: '127.0.0.1:0',
    data_dir: dir,
    log_level: 'info',
    audit_files: [join(dir, 'audit.log')],
    ...(kekFile ? { kek: `file:${kekFile}` } : {}),
    ...rest,
  });
  const server = await startServer(config, { log, env });
  return {
    server,
    dir,
    url: server.url,
    logs,
    call: (method, path, body, token) => call(server.url, method, path, token, body),
    async stop() {
      await server.close();
    },
  };
}

/** What a test starts, for its teardown (`stopAll`). */
export interface Track {
  nodes: Node[];
  dirs: string[];
}

/**
 * A primary shipping to a new file bucket and a replica of it (same master key), with FAST
 * settings and the primary's `settings` over them; both nodes and every directory are added
 * to `track` for the caller's teardown.
 */
export async function startPair(
  track: Track,
  settings: Partial<ServerConfig> = {},
): Promise<{ bucket: string; primary: Node; replica: Node }> {
  const bucket = await tempDir('coffer-bucket-');
  track.dirs.push(bucket);
  const primary = await startNode({ replicate_to: [`file://${bucket}`], ...FAST, ...settings });
  track.nodes.push(primary);
  track.dirs.push(primary.dir);
  const replica = await startNode({ replica_of: `file://${bucket}`, kekFile: join(primary.dir, 'kek.key'), ...FAST });
  track.nodes.push(replica);
  track.dirs.push(replica.dir);
  return { bucket, primary, replica };
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Stops what `track` holds, newest node first, then removes its directories. */
export async function stopAll(track: Track): Promise<void> {
  for (const n of track.nodes.splice(0).reverse()) await n.stop().catch(() => undefined);
  for (const d of track.dirs.splice(0)) await removeDir(d);
}

/** Polls `node` until it answers a read of the secret at `path` with 200; returns the body. */
export function readWhenThere(node: Node, token: string, path: string, ms = 15_000): Promise<any> {
  return until(
    async () => {
      const r = await node.call('GET', `/v1/secrets/${path}`, undefined, token);
      return r.status === 200 ? r.body : undefined;
    },
    ms,
    `${path} readable on ${node.url}`,
  );
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
export async function until<T>(check: () => Promise<T> | T, ms = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
