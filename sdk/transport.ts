import { request as httpRequest, type IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/**
 * How the client talks HTTP. The default uses global `fetch`; `nodeHttpTransport` uses
 * node:http(s) directly, which starts about 90 ms faster (the first `fetch` loads undici): the
 * CLI's `run` path uses it so a container entrypoint starts quickly.
 */
export interface HttpResponse {
  ok: boolean;
  status: number;
  headers: { get(name: string): string | null };
  json(): Promise<unknown>;
  clone(): HttpResponse;
  /** With `stream: true`: the body as it arrives (a fetch ReadableStream or a node IncomingMessage). */
  body?: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array> | null;
}

export interface HttpRequest {
  method: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /**
   * Hand the body over as a stream instead of buffering it (backups): `timeoutMs` then bounds
   * the wait for the response headers (fetch) or socket idleness (node:http), not the transfer.
   */
  stream?: boolean;
}

export type Transport = (url: URL, request: HttpRequest) => Promise<HttpResponse>;

/** TLS settings of a client (the CLI fills them from COFFER_CACERT, COFFER_CLIENT_CERT/KEY, COFFER_TLS_SERVER_NAME). */
export interface TlsClientOptions {
  /** PEM of the CA(s) to trust instead of the system store. */
  ca?: string;
  /** mTLS: PEM client certificate (chain allowed) and its private key. */
  cert?: string;
  key?: string;
  /** Name to send as SNI and to check the server certificate against, when the address is an IP or another name. */
  servername?: string;
}

/** Only the options that are set: node treats `ca: undefined` differently from no `ca` in some versions. */
export function tlsConnectOptions(tls: TlsClientOptions): TlsClientOptions {
  return Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined && v !== ''));
}

/** Wraps a fetch implementation (global, undici with a CA, or a test double). */
export function fetchTransport(fetchImpl: typeof fetch): Transport {
  return (url, req) => {
    if (!req.stream)
      return fetchImpl(url, {
        method: req.method,
        headers: req.headers,
        body: req.body ?? null,
        redirect: 'error',
        signal: AbortSignal.timeout(req.timeoutMs),
      });
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(Object.assign(new Error('timeout'), { name: 'TimeoutError' })),
      req.timeoutMs,
    );
    return fetchImpl(url, {
      method: req.method,
      headers: req.headers,
      body: req.body ?? null,
      redirect: 'error',
      signal: controller.signal,
    }).finally(() => clearTimeout(timer));
  };
}

class BufferedResponse implements HttpResponse {
  constructor(
    readonly status: number,
    private readonly headerMap: Record<string, string | string[] | undefined>,
    private readonly text: string,
  ) {}

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  get headers() {
    return {
      get: (name: string): string | null => {
        const v = this.headerMap[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
      },
    };
  }

  async json(): Promise<unknown> {
    return JSON.parse(this.text);
  }

  clone(): HttpResponse {
    return this;
  }
}

/** A successful streamed answer: the body is read by the caller, never buffered here. */
class StreamedResponse implements HttpResponse {
  constructor(readonly body: IncomingMessage) {}

  get ok(): boolean {
    return true;
  }

  get status(): number {
    return this.body.statusCode ?? 0;
  }

  get headers() {
    return {
      get: (name: string): string | null => {
        const v = this.body.headers[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
      },
    };
  }

  async json(): Promise<unknown> {
    throw new Error('a streamed response has no JSON body');
  }

  clone(): HttpResponse {
    return this;
  }
}

/** node:http(s) transport; redirects are not followed, bodies are capped at 64 MiB. */
export function nodeHttpTransport(options: TlsClientOptions = {}): Transport {
  const tls = tlsConnectOptions(options);
  return async (url, req) => {
    // node:https (TLS, about 3 ms of start-up) is loaded on the first https request only.
    const send = url.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
    return new Promise((resolve, reject) => {
      const r = send(
        url,
        { method: req.method, headers: req.headers, timeout: req.timeoutMs, ...(url.protocol === 'https:' ? tls : {}) },
        (res) => {
          if (req.stream && (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300)
            return void resolve(new StreamedResponse(res));
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > 64 * 1024 * 1024) r.destroy(new Error('response too large'));
            else chunks.push(c);
          });
          res.on('end', () =>
            resolve(new BufferedResponse(res.statusCode ?? 0, res.headers, Buffer.concat(chunks).toString('utf8'))),
          );
          res.on('error', reject);
        },
      );
      r.on('timeout', () => r.destroy(Object.assign(new Error('timeout'), { name: 'TimeoutError' })));
      r.on('error', reject);
      r.end(req.body);
    });
  };
}

/**
 * Plain http may carry a token only to this machine: an IPv4 address in 127/8, [::1] or
 * localhost. A name that merely starts with "127." (127.evil.example) is a DNS name like any other.
 */
export function isLoopback(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true;
  return isIP(hostname) === 4 && hostname.startsWith('127.');
}
