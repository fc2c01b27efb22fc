import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { CofferError } from '../errors.js';
import {
  BucketUnavailable,
  MAX_LIST_PAGE,
  PreconditionFailed,
  checkKey,
  checkPrefix,
  type Bucket,
  type ListOptions,
  type ListPage,
  type PutOptions,
} from './bucket.js';

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * A bucket in S3 or any S3-compatible store (MinIO, Ceph RGW, R2, GCS interop):
 * `s3://bucket/prefix?endpoint=http://host:port&region=R`. Credentials come from the standard
 * AWS chain (env, shared config, instance/container roles). An explicit endpoint implies
 * path-style addressing, which every S3-compatible store accepts. Checksums are only sent
 * where S3 requires them: several compatible stores reject or mangle the newer defaults.
 */
export class S3Bucket implements Bucket {
  private constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
    readonly url: string,
  ) {}

  static fromUrl(url: URL): S3Bucket {
    const bucket = url.hostname;
    if (!BUCKET_NAME.test(bucket))
      throw new CofferError('invalid_request', `invalid S3 bucket name ${JSON.stringify(bucket)}`);
    const prefix = decodeURIComponent(url.pathname.replace(/^\/+|\/+$/g, ''));
    if (prefix) checkKey(prefix);
    const endpoint = url.searchParams.get('endpoint') ?? undefined;
    if (endpoint !== undefined && !/^https?:\/\/[^\s/]+\/?$/.test(endpoint))
      throw new CofferError('invalid_request', 'S3 endpoint must be http(s)://host[:port]');
    for (const name of url.searchParams.keys()) {
      if (!['endpoint', 'region', 'path_style'].includes(name))
        throw new CofferError('invalid_request', `unknown S3 URL parameter ${name}`);
    }
    const region = url.searchParams.get('region') ?? process.env.AWS_REGION ?? 'us-east-1';
    const pathStyle = url.searchParams.get('path_style');
    // The SDK version is pinned (package.json): its notice about future releases needing
    // Node 22 is not actionable by an operator and would land in every server's stderr.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const client = new S3Client({
      region,
      ...(endpoint ? { endpoint } : {}),
      forcePathStyle: pathStyle ? pathStyle === 'true' : endpoint !== undefined,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Our callers retry with their own backoff; keep one SDK attempt bounded.
      maxAttempts: 2,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 30_000 },
    });
    const shown = new URL(url.href);
    shown.username = '';
    shown.password = '';
    return new S3Bucket(client, bucket, prefix ? `${prefix}/` : '', shown.href);
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<{ etag: string }> {
    checkKey(key);
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + checkKey(key),
          Body: body,
          ContentLength: body.length,
          ContentType: 'application/octet-stream',
          ...(options.ifNoneMatch ? { IfNoneMatch: options.ifNoneMatch } : {}),
          ...(options.ifMatch !== undefined ? { IfMatch: options.ifMatch } : {}),
        }),
      );
      if (!out.ETag) throw new BucketUnavailable(`S3 put of ${key} returned no ETag`);
      return { etag: out.ETag };
    } catch (e) {
      // 409 ConditionalRequestConflict: a concurrent conditional write on the same key won.
      if (status(e) === 412 || status(e) === 409) throw new PreconditionFailed(key);
      throw unavailable(e, 'put', key);
    }
  }

  async get(key: string): Promise<{ body: Uint8Array; etag: string } | undefined> {
    checkKey(key);
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + checkKey(key) }),
      );
      const body = await out.Body!.transformToByteArray();
      return { body, etag: out.ETag ?? '' };
    } catch (e) {
      if (status(e) === 404) return undefined;
      throw unavailable(e, 'get', key);
    }
  }

  async head(key: string): Promise<{ etag: string; size: number } | undefined> {
    checkKey(key);
    try {
      const out = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + checkKey(key) }),
      );
      return { etag: out.ETag ?? '', size: out.ContentLength ?? 0 };
    } catch (e) {
      if (status(e) === 404) return undefined;
      throw unavailable(e, 'head', key);
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    checkPrefix(prefix);
    const limit = Math.min(options.limit ?? MAX_LIST_PAGE, MAX_LIST_PAGE);
    try {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix + prefix,
          MaxKeys: limit,
          ...(options.startAfter !== undefined ? { StartAfter: this.prefix + options.startAfter } : {}),
        }),
      );
      const objects = (out.Contents ?? [])
        .filter((o) => o.Key?.startsWith(this.prefix))
        .map((o) => ({ key: o.Key!.slice(this.prefix.length), size: o.Size ?? 0 }));
      return out.IsTruncated && objects.length > 0 ? { objects, next: objects[objects.length - 1]!.key } : { objects };
    } catch (e) {
      throw unavailable(e, 'list', prefix);
    }
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + checkKey(key) }));
    } catch (e) {
      if (status(e) === 404) return;
      throw unavailable(e, 'delete', key);
    }
  }

  close(): void {
    this.client.destroy();
  }
}

function status(e: unknown): number | undefined {
  if (e instanceof S3ServiceException) return e.$metadata.httpStatusCode;
  return (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function unavailable(e: unknown, op: string, key: string): BucketUnavailable {
  const code = status(e);
  const name = (e as Error)?.name ?? 'Error';
  return new BucketUnavailable(`S3 ${op} ${key}: ${name}${code ? ` (HTTP ${code})` : ''}`);
}
