import type { Server } from 'node:net';
import type { BlockList } from 'node:net';
import { isIP } from 'node:net';
import { addressKey, canonicalAddress } from './client-address.js';

/**
 * The counter a connection from `remoteAddress` counts against: IPv4 by address, IPv4-mapped
 * IPv6 (`::ffff:10.0.0.1`, a dual-stack socket) as that IPv4 address, IPv6 by its /64 (the
 * same key as the login limits: one host usually holds a whole /64, and counting each /128
 * would let it open up to the global `maxConnections`). Undefined for anything that is not a
 * bare IP address.
 */
export function connectionKey(remoteAddress: string): string | undefined {
  const address = canonicalAddress(remoteAddress);
  return address === undefined ? undefined : addressKey(address);
}

/**
 * At most `max` open connections per client address (SECURITY-CASES J3, J6), an IPv6 client
 * being its /64 (`connectionKey`): one host holding thousands of idle or trickling sockets
 * cannot use up `maxConnections` (or file descriptors) and starve everyone else. Counted on the
 * raw TCP socket, before any TLS handshake, so a refused connection costs neither a handshake
 * nor a parser. A connection over the cap is closed at once. Trusted proxies are exempt (by
 * their own address): all their clients arrive from one address. `onRefused` gets the key.
 */
export function capConnectionsPerAddress(
  server: Server,
  max: number,
  exempt: BlockList,
  onRefused?: (key: string) => void,
): Map<string, number> {
  const open = new Map<string, number>();
  if (max <= 0) return open;
  server.on('connection', (socket) => {
    const address = canonicalAddress(socket.remoteAddress ?? '');
    if (address === undefined) return void socket.destroy();
    if (exempt.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6')) return;
    const key = addressKey(address);
    const count = open.get(key) ?? 0;
    if (count >= max) {
      onRefused?.(key);
      return void socket.destroy();
    }
    open.set(key, count + 1);
    socket.once('close', () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left <= 0) open.delete(key);
      else open.set(key, left);
    });
  });
  return open;
}
