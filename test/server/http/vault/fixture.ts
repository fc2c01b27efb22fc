import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { SignJWT, exportJWK, type JWK } from 'jose';
import { keyPair } from '../../../key-pairs.js';
import request from 'supertest';
import { acceptListVerb } from '../../../../server/http/vault/list-verb.js';
import { openVault, type TestVault, type VaultOptions } from '../../../helpers.js';

/** A JWT issuer on loopback (JWKS over HTTP), as a CI system's OIDC provider. */
export async function fakeIssuer() {
  const { publicKey, privateKey } = keyPair('rsa', { modulusLength: 2048 });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'ci-1', alg: 'RS256', use: 'sig' };
  const server: Server = createServer((req, res) => {
    if (req.url === '/jwks')
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sign = (claims: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ project_path: 'acme/api', ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: 'ci-1', typ: 'JWT' })
      .setIssuer(issuer)
      .setAudience('coffer')
      .setSubject('project_path:acme/api')
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(privateKey);
  };
  return { issuer, sign, close: () => new Promise<void>((r) => server.close(() => r())) };
}

export interface VaultFixture {
  vault: TestVault;
  idp: Awaited<ReturnType<typeof fakeIssuer>>;
  /** `http://127.0.0.1:<port>`: the app on a real listening server, LIST accepted as main.ts does. */
  url: string;
  port: number;
  roleId: string;
  secretId: () => Promise<string>;
  close(): Promise<void>;
}

/**
 * A real vault behind a real HTTP server: policy `ci-read` (read and list on `ci/**`), group
 * `ci` with it, a jwt role `ci` (group ci, claim mapping project_path) and an approle role
 * `builder` (group ci).
 */
export async function vaultFixture(options: VaultOptions = {}): Promise<VaultFixture> {
  const vault = await openVault(options);
  const idp = await fakeIssuer();
  const admin = async (method: 'put' | 'post', path: string, body: object) => {
    const res = await request(vault.app)[method](path).set(vault.auth).send(body);
    assert.ok(res.status < 300, `${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  await admin('put', '/v1/policies/ci-read', { rules: [{ path: 'ci/**', capabilities: ['read', 'list'] }] });
  await admin('put', '/v1/groups/ci', { policies: ['ci-read'] });
  await admin('put', '/v1/auth/jwt/roles/ci', {
    issuer: idp.issuer,
    jwks_url: `${idp.issuer}/jwks`,
    bound_audiences: ['coffer'],
    claim_mappings: { project_path: 'project_path' },
    groups: ['ci'],
    token_ttl: 900,
    token_max_ttl: 3600,
  });
  const role = await admin('put', '/v1/auth/approle/roles/builder', {
    groups: ['ci'],
    token_ttl: 600,
    token_max_ttl: 3600,
  });
  const server = createServer(vault.app);
  acceptListVerb(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    vault,
    idp,
    url: `http://127.0.0.1:${port}`,
    port,
    roleId: role.role_id,
    secretId: async () => (await admin('post', '/v1/auth/approle/roles/builder/secret-id', {})).secret_id,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await idp.close();
      await vault.cleanup();
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  json(): any;
}

/**
 * Sends raw HTTP/1.1 requests on one connection, one after the other (keep-alive), and reads
 * each response: what a client that node's own HTTP client would not produce sends (`LIST`, no
 * Content-Type on a JSON body).
 */
export async function rawRequests(port: number, requests: string[]): Promise<RawResponse[]> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
  let buffer = Buffer.alloc(0);
  const waiters: (() => void)[] = [];
  socket.on('data', (d: Buffer) => {
    buffer = Buffer.concat([buffer, d]);
    waiters.splice(0).forEach((w) => w());
  });
  let closed = false;
  socket.on('close', () => {
    closed = true;
    waiters.splice(0).forEach((w) => w());
  });
  const more = () => new Promise<void>((r) => (closed ? r() : waiters.push(r)));
  const out: RawResponse[] = [];
  try {
    for (const text of requests) {
      socket.write(text);
      for (;;) {
        const parsed = parseResponse(buffer);
        if (parsed) {
          buffer = buffer.subarray(parsed.length);
          out.push(parsed.response);
          break;
        }
        if (closed) throw new Error(`connection closed after ${out.length} responses: ${buffer.toString()}`);
        await more();
      }
    }
  } finally {
    socket.destroy();
  }
  return out;
}

function parseResponse(buffer: Buffer): { response: RawResponse; length: number } | undefined {
  const end = buffer.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = buffer.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const status = Number(statusLine!.split(' ')[1]);
  let bodyStart = end + 4;
  let body: Buffer;
  if (headers['transfer-encoding'] === 'chunked') {
    const chunks: Buffer[] = [];
    for (;;) {
      const nl = buffer.indexOf('\r\n', bodyStart);
      if (nl < 0) return undefined;
      const size = parseInt(buffer.subarray(bodyStart, nl).toString(), 16);
      if (buffer.length < nl + 2 + size + 2) return undefined;
      if (size === 0) {
        bodyStart = nl + 4;
        break;
      }
      chunks.push(buffer.subarray(nl + 2, nl + 2 + size));
      bodyStart = nl + 2 + size + 2;
    }
    body = Buffer.concat(chunks);
    const text = body.toString('utf8');
    return { response: { status, headers, body: text, json: () => JSON.parse(text) }, length: bodyStart };
  }
  const length = Number(headers['content-length'] ?? 0);
  if (buffer.length < bodyStart + length) return undefined;
  body = buffer.subarray(bodyStart, bodyStart + length);
  const text = body.toString('utf8');
  return { response: { status, headers, body: text, json: () => JSON.parse(text) }, length: bodyStart + length };
}

/** A raw request: `method target`, headers, and a body sent with Content-Length (no Content-Type unless given). */
export function raw(method: string, target: string, headers: Record<string, string> = {}, body?: string): string {
  const lines = [
    `${method} ${target} HTTP/1.1`,
    'Host: 127.0.0.1',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join('\r\n')}\r\n\r\n${body ?? ''}`;
}
