import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Tunnel } from '../../tunnel.js';

/**
 * Vault clients list with the `LIST` method, which node's HTTP parser does not know: it stops
 * with HPE_INVALID_METHOD, and node would answer an empty 400 before any route runs. Every
 * connection keeps node's native parser until it sends a `LIST`. The parser's error then hands
 * the connection over: from that request on, its bytes pass through `ListRewriter` (each
 * request line `LIST <target>` becomes `GET <target>?list=true`, the form Vault itself treats
 * as the same request; docs/vault-compatibility.md "Listing") into a fresh HTTP session of the
 * same server over a `Tunnel`. So only a connection that lists pays for reading its bytes in
 * JavaScript; every other connection costs nothing here.
 *
 * The hand-over waits for the responses to requests read before the `LIST` (pipelining), so
 * answers stay in order. Any other parser error is answered as node answers it.
 */
export function acceptListVerb(server: Server, event: 'connection' | 'secureConnection' = 'connection'): void {
  // node's own listener, which starts an HTTP session on a stream (http and https alike).
  const startSession = server.listeners(event).find((l) => l.name === 'connectionListener') as
    ((this: Server, socket: Duplex) => void) | undefined;
  if (!startSession) throw new Error(`acceptListVerb: the server has no HTTP '${event}' listener`);
  const handedOver = new WeakSet<Socket>();
  server.on('clientError', (err: ParserError, socket: Socket | Tunnel) => {
    // A tunnel's own session failed: the rewriter passed a head on unchanged (a LIST it does not
    // follow, say `LIST /x HTTP/1.2`), so it is refused here, never handed over again.
    if (socket instanceof Tunnel) return void refuseAsNode(err, socket);
    // The old parser's later errors (its request timeout, the end of the stream) concern nobody now.
    if (handedOver.has(socket)) return;
    const first = err.code === 'HPE_INVALID_METHOD' ? listRequest(err) : undefined;
    if (first === undefined) return void refuseAsNode(err, socket);
    handedOver.add(socket);
    detachParser(socket);
    const tunnel = new Tunnel(socket);
    const rewriter = new ListRewriter();
    tunnel.feed(rewriter.feed(first));
    socket.on('data', (chunk: Buffer) => tunnel.feed(rewriter.feed(chunk)));
    socket.on('end', () => tunnel.push(null));
    afterPendingResponses(socket, () => startSession.call(server, tunnel));
  });
}

interface ParserError extends Error {
  code?: string;
  /** The bytes node's parser was reading, and how far it got: where the method went wrong. */
  rawPacket?: Buffer;
  bytesParsed?: number;
}

/**
 * The bytes from the failing request on, if it is a `LIST`: node's parser stops at its
 * `S` (after `LI`, the start of `LINK`). The request must begin the buffer or follow a line end.
 * A `LIST` whose first bytes came in an earlier read (the parser consumed them) cannot be told
 * from another verb and is refused like any unknown one.
 */
function listRequest(err: ParserError): Buffer | undefined {
  const packet = err.rawPacket;
  const at = err.bytesParsed;
  if (!packet || at === undefined || at < 2) return undefined;
  const start = at - 2;
  if (start > 0 && packet[start - 1] !== 0x0a) return undefined;
  const head = packet.subarray(start, start + LIST.length);
  return head.equals(LIST.subarray(0, head.length)) ? packet.subarray(start) : undefined;
}

/** Stops node's session from reading this socket: its parser has failed and the tunnel takes over. */
function detachParser(socket: Socket): void {
  // A 'data' listener makes node hand the socket from its native parser back to the stream
  // (node's unconsume); its own data and end listeners would feed the failed parser.
  socket.on('data', noop);
  for (const event of ['data', 'end'] as const)
    for (const listener of socket.listeners(event))
      if (
        listener === noop ||
        (listener as { name?: string }).name === `bound socketOn${event === 'data' ? 'Data' : 'End'}`
      )
        socket.off(event, listener as () => void);
}

/** Calls `then` once the responses to requests read before the hand-over have been sent. */
function afterPendingResponses(socket: Socket, then: () => void): void {
  const pending = pendingResponse(socket);
  if (!pending) return void then();
  // node assigns the next queued response when one finishes, before this 'close'.
  pending.once('close', () => setImmediate(() => afterPendingResponses(socket, then)));
}

/** The response node is writing on a connection, if any (node's own field: the one it checks itself). */
const pendingResponse = (socket: Duplex) =>
  (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;

const REFUSALS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: '413 Payload Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/** What node does with a parser error when no one listens: a bare status (unless a response is under way), then close. */
function refuseAsNode(err: ParserError, socket: Duplex): void {
  const pending = pendingResponse(socket);
  if (socket.writable && !pending?.headersSent)
    socket.write(`HTTP/1.1 ${REFUSALS[err.code ?? ''] ?? '400 Bad Request'}\r\nConnection: close\r\n\r\n`);
  socket.destroy(err);
}

function noop(): void {}

const LIST = Buffer.from('LIST ');
/** node's maxHeaderSize (main.ts): a longer head is refused by the parser anyway. */
const MAX_HEAD = 16 * 1024;

type State =
  | { kind: 'start' }
  /** Inside the target of a LIST request line, already sent as `GET `: `query` once a `?` went by. */
  | { kind: 'list-target'; query: boolean; size: number }
  /** A head, passed on as it arrives; its text is kept only to find its end and read its framing. */
  | { kind: 'head'; text: string }
  | { kind: 'body'; remaining: number }
  | { kind: 'chunk-size'; line: string }
  | { kind: 'chunk-data'; remaining: number }
  | { kind: 'trailers'; line: string }
  | { kind: 'opaque' };

/**
 * The framing reader: `feed` takes the socket's bytes in order and returns them, rewritten where
 * a request starts with `LIST `. Bytes are passed on as they arrive (only the first five of a
 * request are held, to tell a `LIST`), so node's parser sees every head as it comes and its
 * headers timeout runs as on any connection.
 */
export class ListRewriter {
  private state: State = { kind: 'start' };
  /** Bytes held back at a request start until it is clear whether they begin `LIST `. */
  private pending: Buffer = Buffer.alloc(0);

  feed(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (data.length > 0) {
      const state = this.state;
      switch (state.kind) {
        case 'opaque':
          out.push(data);
          data = Buffer.alloc(0);
          break;
        case 'start': {
          // Blank lines between requests are allowed (RFC 9112 2.2): a run of them is passed on
          // in one step, so a stream of CRLFs costs what it costs node's parser, not a loop turn each.
          let blank = 0;
          while (blank < data.length && (data[blank] === 0x0d || data[blank] === 0x0a)) blank++;
          if (blank > 0) {
            out.push(data.subarray(0, blank));
            data = data.subarray(blank);
            break;
          }
          const probe = Math.min(data.length, LIST.length);
          if (!data.subarray(0, probe).equals(LIST.subarray(0, probe))) {
            this.state = { kind: 'head', text: '' };
            break;
          }
          if (probe < LIST.length) {
            this.pending = data; // a prefix of `LIST `: wait for more
            data = Buffer.alloc(0);
            break;
          }
          out.push(GET);
          data = data.subarray(LIST.length);
          this.state = { kind: 'list-target', query: false, size: GET.length };
          break;
        }
        case 'list-target': {
          // The parameter goes where the target ends: a space, a fragment, or the line's end.
          let end = 0;
          let query = state.query;
          while (end < data.length && !TARGET_END.has(data[end]!)) if (data[end++] === 0x3f) query = true;
          const size = state.size + end;
          out.push(data.subarray(0, end));
          data = data.subarray(end);
          if (size > MAX_HEAD) {
            this.state = { kind: 'opaque' };
            break;
          }
          if (data.length === 0) {
            this.state = { kind: 'list-target', query, size };
            break;
          }
          const parameter = query ? AND_LIST : QUERY_LIST;
          out.push(parameter);
          this.state = { kind: 'head', text: 'GET '.padEnd(size + parameter.length, '-') };
          break;
        }
        case 'head': {
          const before = state.text.length;
          // At most one byte past the limit (none when a LIST's rewritten line is already past it).
          const room = Math.max(0, MAX_HEAD + 1 - before);
          const piece = data.subarray(0, Math.min(data.length, room)).toString('latin1');
          const text = state.text + piece;
          const end = text.indexOf('\r\n\r\n', Math.max(0, before - 3));
          // A bare LF in the head (never in the body the same read brought): not a head this
          // reader follows (node's parser refuses it).
          if (hasBareLf(end < 0 ? text : text.slice(0, end + 4), before)) {
            this.state = { kind: 'opaque' };
            break;
          }
          if (end < 0) {
            out.push(data.subarray(0, piece.length));
            data = data.subarray(piece.length);
            this.state = text.length > MAX_HEAD ? { kind: 'opaque' } : { kind: 'head', text };
            break;
          }
          const headEnd = end + 4 - before;
          out.push(data.subarray(0, headEnd));
          data = data.subarray(headEnd);
          this.state = framing(text.slice(0, end + 4));
          break;
        }
        case 'body': {
          const take = Math.min(state.remaining, data.length);
          out.push(data.subarray(0, take));
          data = data.subarray(take);
          this.state =
            state.remaining === take ? { kind: 'start' } : { kind: 'body', remaining: state.remaining - take };
          break;
        }
        case 'chunk-size':
        case 'trailers': {
          const nl = data.indexOf(0x0a);
          const piece = data.subarray(0, nl < 0 ? data.length : nl + 1);
          out.push(piece);
          data = data.subarray(piece.length);
          const line = state.line + piece.toString('latin1');
          if (line.length > 4096) {
            this.state = { kind: 'opaque' };
            break;
          }
          if (nl < 0) {
            this.state = { ...state, line };
            break;
          }
          if (state.kind === 'trailers') {
            this.state = line === '\r\n' || line === '\n' ? { kind: 'start' } : { kind: 'trailers', line: '' };
            break;
          }
          const size = /^([0-9a-fA-F]{1,12})[ \t]*(;[^\r\n]*)?\r?\n$/.exec(line);
          if (!size) {
            this.state = { kind: 'opaque' };
            break;
          }
          const n = parseInt(size[1]!, 16);
          this.state = n === 0 ? { kind: 'trailers', line: '' } : { kind: 'chunk-data', remaining: n + 2 };
          break;
        }
        case 'chunk-data': {
          const take = Math.min(state.remaining, data.length);
          out.push(data.subarray(0, take));
          data = data.subarray(take);
          this.state =
            state.remaining === take
              ? { kind: 'chunk-size', line: '' }
              : { kind: 'chunk-data', remaining: state.remaining - take };
          break;
        }
      }
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}

const GET = Buffer.from('GET ');

/** A LF not preceded by CR, at `from` or after. */
function hasBareLf(text: string, from: number): boolean {
  for (let i = text.indexOf('\n', from); i >= 0; i = text.indexOf('\n', i + 1)) if (text[i - 1] !== '\r') return true;
  return false;
}
const QUERY_LIST = Buffer.from('?list=true');
const AND_LIST = Buffer.from('&list=true');
/** Bytes that end a request target: space, `#`, CR, LF. */
const TARGET_END = new Set([0x20, 0x23, 0x0d, 0x0a]);

/** What follows a complete head: its body (Content-Length or chunked), the next request, or bytes this reader does not follow. */
function framing(head: string): State {
  const lines = head.split('\r\n');
  let length: number | undefined;
  let chunked = false;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') {
      if (!/^[0-9]{1,15}$/.test(value) || (length !== undefined && length !== Number(value))) return { kind: 'opaque' };
      length = Number(value);
    } else if (name === 'transfer-encoding') {
      if (chunked || !/(^|,)\s*chunked\s*$/i.test(value)) return { kind: 'opaque' };
      chunked = true;
    } else if (name === 'upgrade') return { kind: 'opaque' };
  }
  if (/^CONNECT /.test(lines[0] ?? '')) return { kind: 'opaque' };
  return chunked ? { kind: 'chunk-size', line: '' } : length ? { kind: 'body', remaining: length } : { kind: 'start' };
}
