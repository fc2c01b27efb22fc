import { CofferError } from '../errors.js';

/**
 * The object store between a primary and its replicas. Two implementations (file.ts, s3.ts)
 * share one conformance suite. Everything read back from a bucket is untrusted: callers
 * authenticate and schema-check it before use.
 */
export interface Bucket {
  /** Where this bucket is, for status and logs (never credentials). */
  readonly url: string;
  /**
   * Stores `body` under `key`. `ifNoneMatch: '*'` creates only if absent; `ifMatch` replaces
   * only the version with that ETag. A failed condition throws `PreconditionFailed`.
   */
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<{ etag: string }>;
  get(key: string): Promise<{ body: Uint8Array; etag: string } | undefined>;
  head(key: string): Promise<{ etag: string; size: number } | undefined>;
  /** Keys under `prefix` in byte order, after `startAfter`, at most `limit` per page. */
  list(prefix: string, options?: ListOptions): Promise<ListPage>;
  delete(key: string): Promise<void>;
  close(): void;
}

export interface PutOptions {
  ifNoneMatch?: '*';
  ifMatch?: string;
}

export interface ListOptions {
  startAfter?: string;
  limit?: number;
}

export interface ListPage {
  objects: { key: string; size: number }[];
  /** Pass as `startAfter` for the next page; absent on the last page. */
  next?: string;
}

/** A conditional write lost: the object exists (If-None-Match) or changed (If-Match). */
export class PreconditionFailed extends Error {
  constructor(readonly key: string) {
    super(`precondition failed on ${key}`);
    this.name = 'PreconditionFailed';
  }
}

/** The bucket could not be reached or answered an error (retryable). */
export class BucketUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BucketUnavailable';
  }
}

/**
 * Object keys this code writes: ASCII letters, digits, `.`, `_`, `-` and `/` between
 * non-empty segments, never `.` or `..`. Checked on every call so a file bucket cannot be
 * steered outside its directory.
 */
const KEY = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;

export function checkKey(key: string): string {
  if (key.length > 512 || !KEY.test(key) || key.split('/').some((s) => s === '.' || s === '..')) {
    throw new CofferError('invalid_request', `invalid bucket key: ${JSON.stringify(key.slice(0, 80))}`);
  }
  return key;
}

export function checkPrefix(prefix: string): string {
  if (prefix !== '' && !checkKeyPrefix(prefix))
    throw new CofferError('invalid_request', `invalid bucket prefix: ${JSON.stringify(prefix.slice(0, 80))}`);
  return prefix;
}

const checkKeyPrefix = (prefix: string) => (prefix.endsWith('/') ? KEY.test(prefix.slice(0, -1)) : KEY.test(prefix));

export const MAX_LIST_PAGE = 1000;
