import { CofferError } from '../errors.js';
import type { Bucket } from './bucket.js';

/**
 * Opens a bucket from its URL: `file:///abs/dir` or `s3://bucket/prefix?endpoint=…&region=…`.
 * The S3 SDK is loaded only for s3:// URLs (it costs tens of milliseconds to import).
 */
export async function openBucket(url: string): Promise<Bucket> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CofferError(
      'invalid_request',
      `invalid bucket URL ${JSON.stringify(url)}: expected file:///abs/dir or s3://bucket/prefix`,
    );
  }
  if (parsed.protocol === 'file:') {
    const { FileBucket } = await import('./file.js');
    return FileBucket.fromUrl(parsed);
  }
  if (parsed.protocol === 's3:') {
    const { S3Bucket } = await import('./s3.js');
    return S3Bucket.fromUrl(parsed);
  }
  throw new CofferError('invalid_request', `unsupported bucket URL scheme ${parsed.protocol} (expected file: or s3:)`);
}
