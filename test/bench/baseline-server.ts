import { createServer } from 'node:http';
import express from 'express';
import { Level } from 'level';

/**
 * Baselines for test/bench/read: `bare` is node:http, `express` an express 5 route; both return
 * the same 1 KiB JSON document a Coffer read returns. For test/bench/write: `express-level` is
 * an express 5 route doing one raw `level` `put({ sync: true })` of the request body per
 * request, in the directory given as the next argument. Prints the port on stdout.
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
} else if (kind === 'express-level' && process.argv[3]) {
  const db = new Level<string, string>(process.argv[3]);
  await db.open();
  const app = express();
  app.use(express.json());
  app.put('/v1/secrets/*path', async (req, res) => {
    await db.put(req.path, JSON.stringify(req.body), { sync: true });
    res.json({ path: req.path, version: 1 });
  });
  server = createServer(app);
} else {
  throw new Error('usage: baseline-server bare|express|express-level <dir>');
}
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
});
