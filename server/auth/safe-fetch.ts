import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';
import { CofferError } from '../errors.js';

/**
 * Fetch for identity-provider documents (JWKS): http(s) only, no redirects, link-local and
 * cloud-metadata addresses refused (loopback and private ranges stay allowed: on-premise IdPs
 * live there and an administrator sets the URL), a time limit and a size cap.
 */
export const MAX_DOCUMENT_BYTES = 512 * 1024;

const forbidden = new BlockList();
/**
 * An IPv4 range, and the same range inside the IPv6 forms that carry an IPv4 address: BlockList
 * already matches IPv4-mapped `::ffff:a.b.c.d` (any spelling) against IPv4 rules; the
 * IPv4-compatible `::a.b.c.d`, the SIIT `::ffff:0:a.b.c.d` and the NAT64 `64:ff9b::a.b.c.d`
 * forms need rules of their own.
 */
function forbidIPv4(network: string, prefix: number): void {
  forbidden.addSubnet(network, prefix, 'ipv4');
  for (const embedding of ['::', '::ffff:0:', '64:ff9b::'])
    forbidden.addSubnet(`${embedding}${network}`, 96 + prefix, 'ipv6');
}
forbidIPv4('169.254.0.0', 16); // link-local, cloud metadata
forbidIPv4('0.0.0.0', 8);
forbidden.addSubnet('fe80::', 10, 'ipv6');
forbidden.addAddress('fd00:ec2::254', 'ipv6');

/** Host name resolution, injectable so tests can play a rebinding resolver. */
export type Resolve = (host: string) => Promise<{ address: string; family: number }[]>;
const systemResolve: Resolve = (host) => lookup(host, { all: true });

/**
 * Resolves the URL's host once and checks every address; the connection then goes to the
 * checked address only, so a DNS answer that changes between check and connect (rebinding)
 * cannot steer the fetch to a refused address.
 */
export async function checkDestination(
  url: URL,
  resolve: Resolve = systemResolve,
): Promise<{ address: string; family: number }> {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw idpError('unsupported URL scheme');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [{ address: host, family: isIP(host) }] : await resolve(host).catch(() => []);
  if (addresses.length === 0) throw idpError('host does not resolve');
  for (const a of addresses) {
    const family = isIP(a.address);
    if (family === 0 || forbidden.check(a.address, family === 6 ? 'ipv6' : 'ipv4'))
      throw idpError('link-local or metadata address refused');
  }
  return addresses[0]!;
}

export async function safeFetch(
  url: string,
  options: { headers?: Headers; signal?: AbortSignal },
  resolve: Resolve = systemResolve,
): Promise<Response> {
  const pinned = await checkDestination(new URL(url), resolve);
  // The Host header and TLS server name stay the URL's; only the address lookup is answered.
  const dispatcher = new Agent({
    connect: {
      lookup: (_host: string, opts: { all?: boolean }, done: (...args: unknown[]) => void) =>
        opts.all ? done(null, [pinned]) : done(null, pinned.address, pinned.family),
    } as never,
  });
  try {
    return await fetchBounded(url, options, dispatcher);
  } finally {
    void dispatcher.close();
  }
}

async function fetchBounded(
  url: string,
  options: { headers?: Headers; signal?: AbortSignal },
  dispatcher: Agent,
): Promise<Response> {
  const response = await undiciFetch(url, {
    method: 'GET',
    headers: options.headers,
    signal: options.signal,
    redirect: 'manual',
    dispatcher,
  } as never);
  if (response.status !== 200) {
    await response.body?.cancel();
    return new Response(null, { status: response.status });
  }
  const reader: ReadableStreamDefaultReader<Uint8Array> | undefined = response.body?.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    if (!reader) break;
    const { done, value } = await reader.read();
    if (done || !value) break;
    size += value.length;
    if (size > MAX_DOCUMENT_BYTES) {
      await reader.cancel();
      throw idpError('document too large');
    }
    chunks.push(value);
  }
  return new Response(Buffer.concat(chunks), { status: 200, headers: { 'content-type': 'application/json' } });
}

export const idpError = (detail: string) =>
  new CofferError('idp_unavailable', 'the identity provider could not be reached', detail);
