import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { TestVault } from '../../helpers.js';

/**
 * Plumbing for the HTTP fuzzer: a raw HTTP/1.1 client that sends the request target and headers
 * byte for byte (no URL normalisation, no header validation, so control characters, duplicate
 * headers and odd spellings reach the server as generated), and a digest of the whole store.
 */

export interface RawRequest {
  method: string;
  /** The request target exactly as sent (may hold any character, UTF-8 encoded on the wire). */
  target: string;
  /** Header lines in order; duplicates allowed. */
  headers: [string, string][];
  body?: string | Buffer | undefined;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
  body: any;
}

export async function listen(vault: TestVault): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(vault.app).listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return { server, port: (server.address() as AddressInfo).port };
}

export async function stopListening(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** One request on its own connection (`Connection: close`), response read to the end. */
export function rawRequest(port: number, req: RawRequest, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no response within ${timeoutMs} ms to ${req.method} ${JSON.stringify(req.target)}`));
    }, timeoutMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined); // a reset after the answer is fine; no answer is caught below
    socket.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      try {
        resolve(parseResponse(all));
      } catch (e) {
        reject(
          new Error(
            `unparsable response to ${req.method} ${JSON.stringify(req.target)}: ${(e as Error).message}: ${JSON.stringify(all.toString('latin1').slice(0, 300))}`,
          ),
        );
      }
    });
    socket.on('connect', () => {
      const body =
        req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8');
      const lines = [`${req.method} ${req.target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
      for (const [k, v] of req.headers) lines.push(`${k}: ${v}`);
      if (body !== undefined && !req.headers.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k)))
        lines.push(`Content-Length: ${body.length}`);
      socket.write(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'utf8'), body ?? Buffer.alloc(0)]));
    });
  });
}

function parseResponse(all: Buffer): RawResponse {
  // Node drops a connection it has no handler for (CONNECT, upgrade) without answering.
  if (all.length === 0) return { status: 0, headers: {}, text: '', body: undefined };
  const end = all.indexOf('\r\n\r\n');
  if (end < 0) throw new Error('no header end');
  const head = all.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
  if (!m) throw new Error('no status line');
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    const k = line.slice(0, i).trim().toLowerCase();
    headers[k] = headers[k] === undefined ? line.slice(i + 1).trim() : `${headers[k]}, ${line.slice(i + 1).trim()}`;
  }
  let rest = all.subarray(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const parts: Buffer[] = [];
    for (;;) {
      const nl = rest.indexOf('\r\n');
      if (nl < 0) break;
      const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
      if (!Number.isFinite(size) || size === 0) break;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
    rest = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    rest = rest.subarray(0, Number(headers['content-length']));
  }
  const text = rest.toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: Number(m[1]), headers, text, body };
}

/**
 * SHA-256 over every key and value of the store except the bookkeeping every write touches
 * (`sys/seq`, the change log `log/...`) and the audit chain state (`audit/...`, which a refused
 * but audited request may legitimately advance). Any change to secrets, metadata, keyrings,
 * policies, groups, tokens, revocations, roles or transit keys changes the digest.
 */
export async function storeDigest(vault: TestVault): Promise<{ digest: string; keys: Map<string, string> }> {
  const rows = [...(await vault.store.range('', 'log/')), ...(await vault.store.range('log/\uffff', '\uffff\uffff'))];
  const hash = createHash('sha256');
  const keys = new Map<string, string>();
  for (const [k, v] of rows) {
    if (k === 'sys/seq' || k.startsWith('audit/') || k.startsWith('log/')) continue;
    const h = createHash('sha256').update(v).digest('hex');
    keys.set(k, h);
    hash.update(k).update('\0').update(h).update('\n');
  }
  return { digest: hash.digest('hex'), keys };
}

/** Which keys differ between two digests (for the failure message). */
export function digestDiff(a: Map<string, string>, b: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of a) if (b.get(k) !== v) out.push(b.has(k) ? `changed ${k}` : `removed ${k}`);
  for (const k of b.keys()) if (!a.has(k)) out.push(`added ${k}`);
  return out;
}
