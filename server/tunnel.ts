import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/**
 * A connection handed to a fresh HTTP session after node's parser gave up on it (the LIST
 * verb, server/http/vault/list-verb.ts). Bytes read from the socket reach the session through
 * `feed` (after whatever rewriting the owner does); the session's writes, timeouts and
 * destruction go to the socket. Code that asks who the peer is (addresses, the TLS client
 * certificate) reads the socket behind it with `underlyingSocket`.
 */
export class Tunnel extends Duplex {
  constructor(readonly socket: Socket) {
    super();
    socket.on('close', () => this.destroy());
    socket.on('error', (e) => this.destroy(e));
  }

  /** Bytes for the session; false when it wants no more for now (the socket is paused until `_read`). */
  feed(bytes: Buffer): void {
    if (bytes.length > 0 && !this.push(bytes)) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, done: (e?: Error | null) => void): void {
    this.socket.write(chunk, encoding, done);
  }

  override _final(done: (e?: Error | null) => void): void {
    this.socket.end(done);
  }

  override _destroy(e: Error | null, done: (e?: Error | null) => void): void {
    this.socket.destroy(e ?? undefined);
    done(e);
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }

  get remoteFamily(): string | undefined {
    return this.socket.remoteFamily;
  }

  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  get localPort(): number | undefined {
    return this.socket.localPort;
  }

  /** What express's `req.secure` reads. */
  get encrypted(): boolean {
    return (this.socket as Socket & { encrypted?: boolean }).encrypted === true;
  }

  setTimeout(ms: number, onTimeout?: () => void): this {
    this.socket.setTimeout(ms, onTimeout);
    return this;
  }

  setNoDelay(noDelay?: boolean): this {
    this.socket.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable?: boolean, delay?: number): this {
    this.socket.setKeepAlive(enable, delay);
    return this;
  }
}

/** The network socket of a request: itself, or the one behind a tunnel. */
export function underlyingSocket<S extends Duplex>(socket: S): S | Socket {
  return socket instanceof Tunnel ? socket.socket : socket;
}
