import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Tunnel } from '../../../../server/tunnel.js';

/**
 * The LIST hand-over (server/http/vault/list-verb.ts) on a bare node:http server that echoes
 * what each request arrived as: the method and target its handler sees, whether the request came
 * through a tunnel, and the peer address the handler reads.
 */
export function echo(req: IncomingMessage, res: ServerResponse): void {
  let body = '';
  req.setEncoding('latin1');
  req.on('data', (d: string) => (body += d));
  req.on('end', () => {
    const answer = () =>
      res.end(
        JSON.stringify({
          line: `${req.method} ${req.url}`,
          tunnel: req.socket instanceof Tunnel,
          peer: req.socket.remoteAddress,
          secure: (req.socket as Socket & { encrypted?: boolean }).encrypted === true,
          body,
        }),
      );
    if (req.url === '/stream') {
      // Headers and a first chunk now, the end later: a response under way.
      res.writeHead(200, { 'content-type': 'text/plain' }).write('started ');
      setTimeout(() => res.end('done'), 200);
    } else if (req.url === '/slow') setTimeout(answer, 150);
    else if (req.url === '/slower') setTimeout(answer, 1500);
    else answer();
  });
}

export async function listening(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

export async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

/** Writes each piece on its own (no Nagle), waiting `gapMs` between, and collects what comes back until `responses` responses or close. */
export async function exchange(socket: Socket, pieces: string[], responses: number, gapMs = 30): Promise<string[]> {
  socket.setNoDelay(true);
  let text = '';
  let closed = false;
  const done = new Promise<void>((resolve) => {
    const check = () => {
      if (closed || (text.match(/HTTP\/1\.1 /g)?.length ?? 0) >= responses) resolve();
    };
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      // complete once the last body is in
      if ((text.match(/HTTP\/1\.1 /g)?.length ?? 0) >= responses && /\r\n\r\n(\{.*\}|)$/s.test(text)) check();
    });
    socket.on('close', () => {
      closed = true;
      check();
    });
  });
  for (const piece of pieces) {
    socket.write(piece);
    await new Promise((r) => setTimeout(r, gapMs));
  }
  await Promise.race([done, new Promise((r) => setTimeout(r, 3000))]);
  return text.split(/(?=HTTP\/1\.1 )/).filter((s) => s.length > 0);
}

export const req = (line: string, headers: string[] = [], body = '') =>
  [
    line + ' HTTP/1.1',
    'Host: x',
    ...headers,
    ...(body ? [`Content-Length: ${Buffer.byteLength(body)}`] : []),
    '',
    body,
  ].join('\r\n');

export const seen = (response: string) =>
  JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
export const status = (response: string) => Number(response.split(' ')[1]);
