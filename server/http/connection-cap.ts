import type { Server } from 'node:net';
import type { BlockList } from 'node:net';
import { isIP } from 'node:net';
import { canonicalAddress } from './client-address.js';

/**
 * At most `max` open connections per client address (SECURITY-CASES J3, J6): one host holding
 * thousands of idle or trickling sockets cannot use up `maxConnections` (or file descriptors)
 * and starve everyone else. Counted on the raw TCP socket, before any TLS handshake, so a refused
 * connection costs neither a handshake nor a parser. A connection over the cap is closed at
 * once. Trusted proxies are exempt: all their clients arrive from one address.
 */
export function capConnectionsPerAddress(server: Server, max: number, exempt: BlockList, onRefused?: (address: string) => void): Map<string, number> {
  const open = new Map<string, number>();
  if (max <= 0) return open;
  server.on('connection', (socket) => {
    const address = canonicalAddress(socket.remoteAddress ?? '');
    if (address === undefined) return void socket.destroy();
    if (exempt.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6')) return;
    const count = open.get(address) ?? 0;
    if (count >= max) {
      onRefused?.(address);
      return void socket.destroy();
    }
    open.set(address, count + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
  return open;
}
