import type { IncomingMessage } from 'node:http';
import { BlockList, SocketAddress, isIP } from 'node:net';
import { CofferError } from '../errors.js';

/**
 * The client's address (cases D12, B18). X-Forwarded-For is read only when the socket
 * peer is a configured proxy; then the client is the rightmost hop that is not itself a trusted
 * proxy (everything left of it was written by the client and proves nothing). A trusted proxy
 * sending an unparsable header, or more than one, gets 400: guessing would fail open. The
 * `Forwarded` header is never read.
 */

/** Configured proxies (`trusted_proxies`: addresses or CIDR blocks) as a BlockList. */
export function trustedProxies(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix, ...rest] = entry.split('/');
    const family = isIP(address);
    // Canonical prefix lengths only: "/08" or "/ 8" must not silently mean something else.
    const bits = prefix === undefined ? undefined : /^(0|[1-9][0-9]{0,2})$/.test(prefix) ? Number(prefix) : NaN;
    if (
      !family ||
      address.includes('%') ||
      rest.length > 0 ||
      Number.isNaN(bits) ||
      (bits ?? 0) > (family === 4 ? 32 : 128)
    ) {
      throw new CofferError(
        'invalid_request',
        `configuration: trusted_proxies: "${entry}" is not an IP address or CIDR block such as 10.0.0.0/8`,
      );
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(address, type);
    else list.addSubnet(address, bits, type);
  }
  return list;
}

/**
 * One textual form per address, so one client is one counter: IPv6 compressed and lower-case
 * (via the stdlib's inet_ntop), IPv4-mapped IPv6 (`::ffff:10.0.0.1`, from a dual-stack socket)
 * as plain IPv4. Undefined for anything that is not a bare IP address (ports, zones, names).
 */
export function canonicalAddress(text: string): string | undefined {
  if (!/^[0-9A-Fa-f:.]{2,45}$/.test(text)) return undefined;
  const family = isIP(text);
  if (family === 4) return text;
  if (family !== 6) return undefined;
  const canonical = new SocketAddress({ address: text, family: 'ipv6' }).address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(canonical);
  return mapped ? mapped[1] : canonical;
}

/**
 * The counter key of a canonical client address (`canonicalAddress`), for the login limits and
 * the per-address connection cap. An IPv6 client usually holds a whole /64, so it is one key:
 * otherwise each of its 2^64 addresses would get a fresh budget. IPv4 is the address itself.
 */
export function addressKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head = '', tail] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups =
    tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.padStart(4, '0'))
    .join(':')}::/64`;
}

const isTrusted = (trusted: BlockList, address: string) =>
  trusted.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6');

/**
 * The client address of a request (see above) under `trusted`; throws 400 `invalid_request`
 * for a bad header from a proxy. A socket's peer never changes, so whether it is a proxy is
 * decided once per connection (a BlockList check costs a SocketAddress per call).
 */
export function clientAddressResolver(trusted: BlockList): (req: IncomingMessage) => string {
  const peers = new WeakMap<object, { peer: string | undefined; proxy: boolean }>();
  return (req) => {
    let known = peers.get(req.socket);
    if (!known) {
      const peer = canonicalAddress(req.socket.remoteAddress ?? '');
      known = { peer, proxy: peer !== undefined && isTrusted(trusted, peer) };
      // No peer address: the socket is already gone (not cached: it may have been read too early).
      if (peer !== undefined) peers.set(req.socket, known);
    }
    if (known.peer === undefined) return 'unknown'; // never a proxy, never a forwarded header
    return known.proxy ? forwardedClient(req, trusted, known.peer) : known.peer;
  };
}

/** The client a trusted proxy forwarded for (its X-Forwarded-For), or the proxy itself without one. */
function forwardedClient(req: IncomingMessage, trusted: BlockList, peer: string): string {
  // rawHeaders, not req.headers: node joins repeated X-Forwarded-For lines with ", ", which
  // would hide that two different hops (or a client and a proxy) each sent one.
  const values: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === 'x-forwarded-for') values.push(req.rawHeaders[i + 1]!);
  }
  if (values.length === 0) return peer;
  if (values.length > 1) throw new CofferError('invalid_request', 'more than one X-Forwarded-For header');

  const hops = values[0]!.split(',').map((hop) => canonicalAddress(hop.trim()));
  if (hops.length > 64 || hops.some((hop) => hop === undefined))
    throw new CofferError('invalid_request', 'X-Forwarded-For is not a list of IP addresses');
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!isTrusted(trusted, hops[i]!)) return hops[i]!;
  }
  return hops[0]!; // every hop is a trusted proxy: the leftmost is as far as the chain goes
}
