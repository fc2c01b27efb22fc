import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Vault clients list with the `LIST` method, which node's HTTP parser does not know: it answers
 * an empty 400 before any route runs. Below the parser, each request line `LIST <target>` is
 * rewritten as `GET <target>?list=true` (the form Vault itself treats as the same request;
 * docs/vault-compatibility.md "Listing"). Request boundaries are followed with a minimal
 * HTTP/1.1 framing reader (head, then a Content-Length or chunked body), so only the first bytes
 * of a request are ever looked at and a body that happens to start with `LIST ` is never
 * touched. Anything the reader does not follow (an oversized head, an upgrade, a malformed
 * length) turns it off for the rest of the connection: bytes then pass unchanged and node's
 * parser, which still checks everything, refuses what it refuses.
 */
export function acceptListVerb(server: Server, event: 'connection' | 'secureConnection' = 'connection'): void {
  server.on(event, (socket: Socket) => {
    // A 'data' listener moves node's parser from reading the socket handle natively to the
    // stream's data events, which pass through `push` below.
    socket.on('data', noop);
    const framing = new ListRewriter();
    const push = socket.push.bind(socket);
    socket.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
      if (!Buffer.isBuffer(chunk)) return push(chunk, encoding);
      const out = framing.feed(chunk);
      return out.length === 0 ? true : push(out);
    };
  });
}

function noop(): void {}

/** A LF not preceded by CR, from `from` on. */
function hasBareLf(bytes: Buffer, from: number): boolean {
  for (let i = bytes.indexOf(0x0a, from); i >= 0; i = bytes.indexOf(0x0a, i + 1))
    if (i === 0 || bytes[i - 1] !== 0x0d) return true;
  return false;
}

const LIST = Buffer.from('LIST ');
const CRLFCRLF = Buffer.from('\r\n\r\n');
/** node's maxHeaderSize is 16 KiB (main.ts); a longer head is refused by the parser anyway. */
const MAX_HEAD = 64 * 1024;

type State =
  | { kind: 'start' }
  | { kind: 'head'; bytes: Buffer[]; size: number }
  | { kind: 'body'; remaining: number }
  | { kind: 'chunk-size'; line: string }
  | { kind: 'chunk-data'; remaining: number }
  | { kind: 'trailers'; line: string }
  | { kind: 'opaque' };

/** The framing reader: `feed` takes the socket's bytes in order and returns them, rewritten where a request starts with `LIST `. */
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
          // Blank lines between requests are allowed (RFC 9112 2.2).
          if (data[0] === 0x0d || data[0] === 0x0a) {
            out.push(data.subarray(0, 1));
            data = data.subarray(1);
            break;
          }
          const probe = Math.min(data.length, LIST.length);
          if (data.subarray(0, probe).equals(LIST.subarray(0, probe)) && probe < LIST.length) {
            this.pending = data; // a prefix of `LIST `: wait for more
            data = Buffer.alloc(0);
            break;
          }
          this.state = { kind: 'head', bytes: [], size: 0 };
          break;
        }
        case 'head': {
          const joined = state.bytes.length > 0 ? Buffer.concat([...state.bytes, data]) : data;
          if (hasBareLf(joined, Math.max(0, state.size - 1))) {
            // Not a head this reader follows (node's parser refuses a bare LF): waiting for a
            // CRLFCRLF that never comes would hold the request until the headers timeout.
            this.state = { kind: 'opaque' };
            out.push(joined);
            data = Buffer.alloc(0);
            break;
          }
          const end = joined.indexOf(CRLFCRLF, Math.max(0, state.size - 3));
          if (end < 0) {
            if (joined.length > MAX_HEAD) {
              this.state = { kind: 'opaque' };
              out.push(joined);
            } else {
              this.state = { kind: 'head', bytes: [joined], size: joined.length };
            }
            data = Buffer.alloc(0);
            break;
          }
          const head = joined.subarray(0, end + CRLFCRLF.length);
          out.push(this.finishHead(head)); // a head is held back until complete, then emitted once
          data = joined.subarray(end + CRLFCRLF.length);
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

  /** Decides the framing of the body from a complete head and returns the head, rewritten if it is a LIST. */
  private finishHead(head: Buffer): Buffer {
    const text = head.toString('latin1');
    const lines = text.split('\r\n');
    let length: number | undefined;
    let chunked = false;
    let opaque = false;
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length') {
        if (!/^[0-9]{1,15}$/.test(value) || (length !== undefined && length !== Number(value))) opaque = true;
        length = Number(value);
      } else if (name === 'transfer-encoding') {
        chunked = /(^|,)\s*chunked\s*$/i.test(value);
        if (!chunked) opaque = true;
      } else if (name === 'upgrade') opaque = true;
    }
    if (/^CONNECT /.test(lines[0] ?? '')) opaque = true;
    this.state = opaque
      ? { kind: 'opaque' }
      : chunked
        ? { kind: 'chunk-size', line: '' }
        : length
          ? { kind: 'body', remaining: length }
          : { kind: 'start' };
    if (!head.subarray(0, LIST.length).equals(LIST)) return head;
    const requestLine = lines[0]!;
    const m = /^LIST (\S+)( HTTP\/1\.[01])$/.exec(requestLine);
    if (!m) return head;
    const target = `${m[1]}${m[1]!.includes('?') ? '&' : '?'}list=true`;
    return Buffer.from(`GET ${target}${m[2]}${text.slice(requestLine.length)}`, 'latin1');
  }
}
