import { constants, open as openFd, close as closeFd } from 'node:fs';
import { Socket, createConnection } from 'node:net';
import type { Sink } from './sink.js';

const openNonBlocking = (path: string): Promise<number> =>
  new Promise((done, fail) =>
    openFd(path, constants.O_WRONLY | constants.O_NONBLOCK, (e, fd) => (e ? fail(e) : done(fd))),
  );

/**
 * A FIFO or Unix socket the audit lines are streamed into (a log shipper reads the other end).
 * Never written through fs.write: a pipe nobody reads would hold a libuv thread-pool thread
 * for good, and four such writes would stop every file operation and every scrypt hash of the
 * server. The FIFO is opened O_NONBLOCK (no reader: ENXIO at once, retried later) and written
 * through a net.Socket, whose writes wait in the event loop, not in a thread. Lines count once
 * the kernel has taken them (the write callback): a stream has no fsync.
 *
 * At most one write is outstanding (the sink runner waits for its callback), so what sits in
 * the socket's buffer is bounded by one chunk; a reader that stops reading stalls that one
 * write, never the server. `close` destroys the socket without waiting on the reader.
 */
export class StreamSink implements Sink {
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  generation = 0;

  constructor(
    readonly name: string,
    readonly kind: 'fifo' | 'socket',
  ) {}

  async write(text: string): Promise<void> {
    const socket = await this.connect();
    await new Promise<void>((done, fail) => {
      socket.write(text, 'utf8', (e) => {
        if (!e) return void done();
        this.drop(socket);
        fail(e);
      });
    });
  }

  async close(): Promise<void> {
    if (this.socket) this.drop(this.socket);
    this.connecting = undefined;
  }

  private connect(): Promise<Socket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    this.connecting ??= this.open().then(
      (socket) => {
        this.connecting = undefined;
        this.socket = socket;
        this.generation++;
        // The reader went away (EPIPE) or the socket closed: the next write reconnects.
        socket.on('error', () => this.drop(socket));
        socket.on('close', () => this.drop(socket));
        return socket;
      },
      (e: unknown) => {
        this.connecting = undefined;
        throw e;
      },
    );
    return this.connecting;
  }

  private async open(): Promise<Socket> {
    if (this.kind === 'socket') {
      return new Promise((done, fail) => {
        const socket = createConnection({ path: this.name });
        socket.once('connect', () => {
          socket.off('error', fail);
          done(socket);
        });
        socket.once('error', fail);
      });
    }
    const fd = await openNonBlocking(this.name);
    try {
      return new Socket({ fd, readable: false, writable: true });
    } catch (e) {
      closeFd(fd, () => undefined);
      throw e;
    }
  }

  private drop(socket: Socket): void {
    if (this.socket === socket) this.socket = undefined;
    socket.destroy();
  }
}

/** Process stdout (`audit_stdout`): lines count once node has handed them on. */
export class StdoutSink implements Sink {
  readonly name = 'stdout';
  readonly kind = 'stdout';

  write(text: string): Promise<void> {
    return new Promise((done, fail) => process.stdout.write(text, (e) => (e ? fail(e) : done())));
  }

  async close(): Promise<void> {}
}
