import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { CofferError } from '../errors.js';

/**
 * Fetch for identity-provider documents (JWKS): http(s) only, no redirects, link-local and
 * cloud-metadata addresses refused (loopback and private ranges stay allowed: on-premise IdPs
 * live there and an administrator sets the URL), a time limit and a size cap.
 */
export const MAX_DOCUMENT_BYTES = 512 * 1024;

const forbidden = new BlockList();
forbidden.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local, cloud metadata
forbidden.addSubnet('0.0.0.0', 8, 'ipv4');
forbidden.addSubnet('fe80::', 10, 'ipv6');
forbidden.addAddress('fd00:ec2::254', 'ipv6');

export async function checkDestination(url: URL): Promise<void> {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw idpError('unsupported URL scheme');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [{ address: host, family: isIP(host) }] : await lookup(host, { all: true }).catch(() => []);
  if (addresses.length === 0) throw idpError('host does not resolve');
  for (const a of addresses) {
    const mapped = a.address.startsWith('::ffff:') ? a.address.slice(7) : a.address;
    if (forbidden.check(mapped, isIP(mapped) === 6 ? 'ipv6' : 'ipv4')) throw idpError('link-local or metadata address refused');
  }
}

export async function safeFetch(url: string, options: { headers?: Headers; signal?: AbortSignal }): Promise<Response> {
  await checkDestination(new URL(url));
  const response = await fetch(url, { method: 'GET', headers: options.headers, signal: options.signal, redirect: 'manual' });
  if (response.status !== 200) {
    await response.body?.cancel();
    return new Response(null, { status: response.status });
  }
  const reader = response.body?.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = reader ? await reader.read() : { done: true, value: undefined };
    if (done) break;
    size += value.length;
    if (size > MAX_DOCUMENT_BYTES) {
      await reader!.cancel();
      throw idpError('document too large');
    }
    chunks.push(value);
  }
  return new Response(Buffer.concat(chunks), { status: 200, headers: { 'content-type': 'application/json' } });
}

export const idpError = (detail: string) => new CofferError('idp_unavailable', 'the identity provider could not be reached', detail);
