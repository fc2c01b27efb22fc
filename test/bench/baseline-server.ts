import { createServer } from 'node:http';
import express from 'express';

/**
 * Baselines for test/bench/read: `bare` is node:http, `express` an express 5 route; both return
 * the same 1 KiB JSON document a Coffer read returns. Prints the port on stdout.
 */
const kind = process.argv[2];
const body = JSON.stringify({ path: 'bench/secret', version: 1, type: 'kv', data: { value: 'x'.repeat(1024) } });

let server;
if (kind === 'bare') {
  server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
} else if (kind === 'express') {
  const app = express();
  const parsed = JSON.parse(body);
  app.get('/v1/secrets/bench/secret', (_req, res) => void res.json(parsed));
  server = createServer(app);
} else {
  throw new Error('usage: baseline-server bare|express');
}
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
});
