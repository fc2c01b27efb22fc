import { createRequire } from 'node:module';
import { rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tempDir } from '../../helpers.js';

const require = createRequire(import.meta.url);

interface KoaContext {
  method: string;
  path: string;
  querystring: string;
  query: Record<string, string | undefined>;
  req: NodeJS.ReadableStream & { socket: { destroy(): void }; headers: Record<string, string | string[] | undefined> };
  status: number;
  type: string;
  body: unknown;
  set(name: string, value: string): void;
}
type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface S3rverInstance {
  middleware: Middleware[];
  store: {
    existsObject(b: string, k: string): Promise<boolean>;
    getMetadata(b: string, k: string): Promise<{ etag: string }>;
    listObjects(
      b: string,
      o: { prefix: string; startAfter: string; maxKeys: number },
    ): Promise<{ objects: { key: string; size: number; metadata: Record<string, string> }[]; isTruncated: boolean }>;
  };
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  configureBuckets(): Promise<void>;
}

export const TEST_BUCKET = 'coffer-test';

export interface TestS3 {
  endpoint: string;
  /** Where s3rver keeps the objects (for scanning what a bucket holds). */
  directory: string;
  /** `s3://coffer-test/<prefix>?endpoint=…` */
  url(prefix: string): string;
  /** While true, every connection is reset (the bucket is unreachable). */
  down: boolean;
  /** Requests answered, by method (for tests that count round trips). */
  requests: Record<string, number>;
  close(): Promise<void>;
}

/**
 * An S3-protocol server (`@20minutes/s3rver`) in this process on 127.0.0.1, port 0, with the
 * conditional writes real S3 honours added in front of it: s3rver ignores If-None-Match and
 * If-Match and overwrites. The middleware serialises writes per key, compares the stored ETag
 * and answers 412 PreconditionFailed with S3's XML error, after draining the request body.
 */
export async function startS3(): Promise<TestS3> {
  process.env.AWS_ACCESS_KEY_ID ??= 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'S3RVER';
  const directory = await tempDir('coffer-s3rver-');
  const S3rver = require('@20minutes/s3rver') as new (o: object) => S3rverInstance;
  const s3 = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    allowMismatchedSignatures: true,
    configureBuckets: [{ name: TEST_BUCKET }],
  });
  const state: TestS3 = {
    endpoint: '',
    directory,
    url: (prefix) => `s3://${TEST_BUCKET}/${prefix}?endpoint=${encodeURIComponent(state.endpoint)}&region=us-east-1`,
    down: false,
    requests: {},
    close: async () => {
      await s3.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
  const locks = new Map<string, Promise<void>>();
  const conditional: Middleware = async (ctx, next) => {
    if (state.down) return ctx.req.socket.destroy();
    state.requests[ctx.method] = (state.requests[ctx.method] ?? 0) + 1;
    if (ctx.method === 'GET' && ctx.query['list-type'] === '2') return listV2(ctx);
    const match = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
    if (!match || !['PUT', 'DELETE'].includes(ctx.method) || ctx.querystring.includes('uploadId')) return next();
    const [, bucket, rawKey] = match;
    const key = decodeURIComponent(rawKey!);
    const id = `${bucket}/${key}`;
    const previous = locks.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const chained = previous.then(() => mine);
    locks.set(id, chained);
    await previous;
    try {
      const ifNoneMatch = header(ctx, 'if-none-match');
      const ifMatch = header(ctx, 'if-match');
      if (ctx.method === 'PUT' && (ifNoneMatch !== undefined || ifMatch !== undefined)) {
        const exists = await s3.store.existsObject(bucket!, key);
        const etag = exists ? (await s3.store.getMetadata(bucket!, key)).etag : undefined;
        const failed = (ifNoneMatch === '*' && exists) || (ifMatch !== undefined && etag !== ifMatch);
        if (failed) {
          for await (const _chunk of ctx.req) void _chunk; // drain, or the client sees a reset
          ctx.status = 412;
          ctx.type = 'application/xml';
          ctx.body =
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>' +
            `<Message>At least one of the pre-conditions you specified did not hold</Message><Condition>${ifNoneMatch !== undefined ? 'If-None-Match' : 'If-Match'}</Condition></Error>`;
          return;
        }
      }
      await next();
    } finally {
      release();
      if (locks.get(id) === chained) locks.delete(id);
    }
  };
  /**
   * ListObjectsV2 over s3rver's own store: s3rver builds continuation tokens with DES, which
   * Node 20's OpenSSL 3 refuses, so any truncated listing fails with InternalError. Coffer
   * pages with StartAfter, so the answer here leaves the token out.
   */
  const listV2 = async (ctx: KoaContext) => {
    const bucket = /^\/([^/]+)\/?$/.exec(ctx.path)?.[1] ?? '';
    const prefix = ctx.query.prefix ?? '';
    const maxKeys = Math.min(1000, Number(ctx.query['max-keys'] ?? 1000));
    const result = await s3.store.listObjects(bucket, { prefix, startAfter: ctx.query['start-after'] ?? '', maxKeys });
    const contents = result.objects
      .map(
        (o) =>
          `<Contents><Key>${xml(o.key)}</Key><ETag>${xml(o.metadata.etag ?? '')}</ETag><Size>${o.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
      )
      .join('');
    ctx.status = 200;
    ctx.type = 'application/xml';
    ctx.body =
      `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${xml(bucket)}</Name>` +
      `<Prefix>${xml(prefix)}</Prefix><KeyCount>${result.objects.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${result.isTruncated}</IsTruncated>${contents}</ListBucketResult>`;
  };
  s3.middleware.unshift(conditional);
  const address = await s3.run();
  state.endpoint = `http://127.0.0.1:${address.port}`;
  return state;
}

function header(ctx: KoaContext, name: string): string | undefined {
  const v = ctx.req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
