import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, type JWK } from 'jose';
import { keyPair } from './key-pairs.js';

export interface TestIssuer {
  /** http://127.0.0.1:PORT: the `iss` of every token, and where /.well-known/jwks is served. */
  issuer: string;
  jwksUrl: string;
  /** A token with the issuer's defaults, overridden by `claims`; `aud`, `sub` and the times may be set in options. */
  sign(
    claims?: Record<string, unknown>,
    options?: { audience?: string | undefined; subject?: string | undefined; now?: number | undefined },
  ): Promise<string>;
  /** How many times the JWKS was fetched. */
  fetches(): number;
  close(): Promise<void>;
}

/**
 * A loopback OIDC issuer (GitHub Actions, GitLab CI or a Kubernetes API server, by the default
 * claims given): its JWKS served over HTTP, tokens signed with jose (RS256).
 */
export async function startIssuer(
  defaults: { claims?: Record<string, unknown>; subject?: string; audience?: string } = {},
): Promise<TestIssuer> {
  const { publicKey, privateKey } = keyPair('rsa', { modulusLength: 2048 });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'test-1', alg: 'RS256', use: 'sig' };
  let fetches = 0;
  const server: Server = createServer((req, res) => {
    if (req.url === '/.well-known/jwks') {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('issuer has no TCP address');
  const issuer = `http://127.0.0.1:${(address satisfies AddressInfo).port}`;
  return {
    issuer,
    jwksUrl: `${issuer}/.well-known/jwks`,
    sign: (claims = {}, options = {}) => {
      const now = options.now ?? Math.floor(Date.now() / 1000);
      return new SignJWT({ ...defaults.claims, ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: 'test-1', typ: 'JWT' })
        .setIssuer(issuer)
        .setAudience(options.audience ?? defaults.audience ?? 'coffer')
        .setSubject(options.subject ?? defaults.subject ?? 'test')
        .setIssuedAt(now)
        .setExpirationTime(now + 300)
        .setJti(crypto.randomUUID())
        .sign(privateKey);
    },
    fetches: () => fetches,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
