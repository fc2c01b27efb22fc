import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { acceptListVerb } from '../../server/http/vault/list-verb.js';
import { measure, CONNECTIONS, DURATION, RUNS } from './measure.js';

/**
 * What the LIST hand-over (server/http/vault/list-verb.ts) costs a connection that never lists:
 * the same bare node:http server with and without it, in alternating pairs (autocannon).
 * `npm run bench:list-hook`.
 */
const BODY = JSON.stringify({ data: 'x'.repeat(1000) });

async function serve(withHook: boolean): Promise<{ server: Server; url: string }> {
  const server = createServer((_req, res) => {
    res.setHeader('Content-Type', 'application/json');
    res.end(BODY);
  });
  if (withHook) acceptListVerb(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

const ratios: number[] = [];
for (let pair = 0; pair < 3; pair++) {
  const figures: Record<string, number> = {};
  for (const withHook of pair % 2 === 0 ? [false, true] : [true, false]) {
    const { server, url } = await serve(withHook);
    figures[String(withHook)] = (await measure(url, {})).rps;
    server.closeAllConnections();
    server.close();
  }
  const ratio = figures['true']! / figures['false']!;
  ratios.push(ratio);
  console.log(
    `pair ${pair + 1}: bare ${Math.round(figures['false']!)} req/s, with the LIST hand-over ${Math.round(figures['true']!)} req/s: ${ratio.toFixed(3)}x`,
  );
}
ratios.sort((a, b) => a - b);
console.log(
  `autocannon, ${CONNECTIONS} connections, ${RUNS} x ${DURATION} s per figure: median ${ratios[1]!.toFixed(3)}x`,
);
