// The image's HEALTHCHECK (deploy/Dockerfile) and compose's: GET /v1/sys/health on this
// container's own listener. It sends no token and reads nothing secret, so the server
// certificate is not verified: a dev or private CA need not be in the image, and loopback is
// not a network an attacker sits on. Exit 0 when the answer is 2xx, 1 otherwise (docs/api.md
// "System" for the flags; the default is a liveness check: sealed or uninitialized still passes).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

const url = new URL(
  process.env.COFFER_HEALTH_URL || 'https://127.0.0.1:8740/v1/sys/health?sealedcode=200&uninitcode=200&replicaok=true',
);
const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
const req = send(url, { method: 'GET', timeout: 2500, rejectUnauthorized: false }, (res) => {
  res.resume();
  process.exitCode = res.statusCode >= 200 && res.statusCode < 300 ? 0 : 1;
  process.stdout.write(`coffer health: HTTP ${res.statusCode}\n`);
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (e) => {
  process.stdout.write(`coffer health: ${e.message}\n`);
  process.exitCode = 1;
});
req.end();
