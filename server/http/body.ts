import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { CofferError } from '../errors.js';
import { MAX_ENTRIES, parseStrictJson } from '../json.js';
import { asMiddleware, type Step } from './edge.js';

export const MAX_BODY_BYTES = 1024 * 1024;

/** How much one request body may hold: bytes on the wire, and JSON entries (server/json.ts). */
export interface BodyLimits {
  bytes: number;
  entries: number;
}

const DEFAULT_LIMITS: BodyLimits = { bytes: MAX_BODY_BYTES, entries: MAX_ENTRIES };
// `ignoreBOM: true` keeps a leading byte order mark in the text (the default strips it silently), so the check below refuses it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const JSON_TYPE = /^application\/json\s*(;\s*charset=utf-8\s*)?$/i;

/**
 * Reads a JSON body: `application/json` (UTF-8) only, at most 1 MiB unless the route says otherwise (refused from the
 * Content-Length before reading, or as soon as a chunked body passes the limit), valid UTF-8,
 * then strict JSON. Requests without a body get `{}`. No other body parser is mounted.
 */
export const readJsonBody = jsonBodyReader(isJsonType);
export const jsonBody: RequestHandler = asMiddleware(readJsonBody);

/** `jsonBody` with a route's own limits (a batch write carries up to 1,000 secrets; docs/api.md). */
export const jsonBodyWithin = (limits: BodyLimits): RequestHandler => jsonBodyOf(isJsonType, undefined, limits);

function isJsonType(type: string | undefined): boolean {
  return type !== undefined && JSON_TYPE.test(type);
}

/**
 * The JSON body reader with its own rule for the Content-Type (the Vault routes also take a
 * JSON body sent without one; docs/vault-compatibility.md); everything else as `jsonBody`.
 */
export function jsonBodyOf(
  accepts: (type: string | undefined) => boolean,
  refusal = 'request body must be application/json (UTF-8)',
  limits = DEFAULT_LIMITS,
): RequestHandler {
  return asMiddleware(jsonBodyReader(accepts, refusal, limits));
}

/** The reader behind `jsonBodyOf`, as an edge step (hot routes run it without express). */
export function jsonBodyReader(
  accepts: (type: string | undefined) => boolean,
  refusal = 'request body must be application/json (UTF-8)',
  limits = DEFAULT_LIMITS,
): Step {
  return async function readJsonBody(req) {
    const length = req.headers['content-length'];
    const chunked = req.headers['transfer-encoding'] !== undefined;
    if (!chunked && (length === undefined || length === '0')) {
      req.body = {};
      return;
    }
    if (!accepts(req.headers['content-type'])) {
      req.resume();
      throw new CofferError('unsupported_media_type', refusal);
    }
    if (length !== undefined && Number(length) > limits.bytes) {
      req.resume();
      throw new CofferError('too_large', `request body exceeds ${limits.bytes} bytes`);
    }
    const bytes = await readLimited(req, limits.bytes);
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      throw new CofferError('invalid_request', 'request body is not valid UTF-8');
    }
    if (text.charCodeAt(0) === 0xfeff)
      throw new CofferError('invalid_request', 'request body must not start with a byte order mark');
    req.body = parseStrictJson(text, limits.entries);
  };
}

function readLimited(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (err) {
        req.resume();
        reject(err);
      } else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) finish(new CofferError('too_large', `request body exceeds ${limit} bytes`));
      else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish());
    req.once('error', () => finish(new CofferError('invalid_request', 'request body could not be read')));
    req.once('aborted', () => finish(new CofferError('invalid_request', 'request body was aborted')));
  });
}
