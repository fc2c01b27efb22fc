import type { Server } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import { underlyingSocket } from './tunnel.js';

/** The listener closes once no connection has arrived for this long... */
const QUIET_MS = 250;
/** ...or after this share of the grace period, whichever comes first. */
const MAX_LISTEN_SHARE = 0.5;
/** Connections that never sent a request get this long after the listener closed. */
const UNSERVED_GRACE_MS = 1000;

export interface Drainable {
  /**
   * Lets every request that has reached the server finish (responses then say
   * `Connection: close`, see server/http/app.ts), stops accepting, and resolves once every
   * connection is closed; connections still open after `graceMs` are cut.
   */
  drain(graceMs: number): Promise<void>;
}

/**
 * A drain that resets no request a client has sent. Three things would:
 * - closing the listener while connections wait in the kernel's accept queue (under load the
 *   server has not accepted them yet: the kernel resets them), so the listener stays open until
 *   connections stop arriving for QUIET_MS (a load balancer has seen health 503 by then), at
 *   most half the grace period;
 * - node's `http.Server.close()`, which also closes every connection it deems idle, including
 *   one whose request is in the socket buffer but not parsed yet: the listener is stopped
 *   through `net.Server`'s close instead;
 * - closing a connection between two keep-alive requests races the client's next request, so
 *   only connections that have been served and have nothing in flight are closed, once the
 *   listener is closed; the others close themselves after their response.
 */
export function drainable(server: Server): Drainable {
  const inFlight = new Map<Socket, number>();
  let lastConnection = 0;
  server.on('connection', () => (lastConnection = Date.now()));
  server.on('request', (req, res) => {
    // A connection handed over for a LIST (server/tunnel.ts) counts as the one socket it is.
    const socket = underlyingSocket(req.socket);
    if (!inFlight.has(socket)) socket.once('close', () => inFlight.delete(socket));
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    res.once('close', () => inFlight.has(socket) && inFlight.set(socket, inFlight.get(socket)! - 1));
  });

  const quiet = async (until: number) => {
    for (;;) {
      const now = Date.now();
      const wait = Math.min(lastConnection + QUIET_MS, until) - now;
      if (wait <= 0) return;
      await new Promise((r) => setTimeout(r, wait));
    }
  };

  return {
    async drain(graceMs) {
      const start = Date.now();
      const cutAll = setTimeout(() => server.closeAllConnections(), graceMs);
      cutAll.unref();
      await quiet(start + graceMs * MAX_LISTEN_SHARE);
      await new Promise<void>((done) => {
        const cutUnserved = setTimeout(
          () => server.closeIdleConnections(),
          Math.min(UNSERVED_GRACE_MS, Math.max(0, start + graceMs - Date.now())),
        );
        cutUnserved.unref();
        NetServer.prototype.close.call(server, () => {
          clearTimeout(cutAll);
          clearTimeout(cutUnserved);
          done();
        });
        for (const [socket, active] of inFlight) if (active === 0) socket.destroy();
      });
    },
  };
}
