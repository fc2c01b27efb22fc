import type { Backlog, Line } from './backlog.js';
import type { Position } from './head.js';
import type { Sink } from './sink.js';

export type SinkState = 'ok' | 'failing' | 'stalled';

export interface RunnerHooks {
  backlog: Backlog;
  /** Lines just made durable in this sink, in order; the sink writes again once this resolves. */
  durable(runner: SinkRunner, lines: Line[]): Promise<void> | void;
  /** The lines this runner needs next were dropped from the backlog: give it a gap marker. */
  fellBehind(runner: SinkRunner): void;
}

export interface RunnerOptions {
  /** A write that has not completed after this long marks the sink stalled. */
  timeoutMs: number;
  /** First retry delay after a failure; doubles up to 1 s. */
  retryMs: number;
  /** At most this many bytes per write. */
  chunkBytes: number;
  now: () => number;
}

/**
 * Drives one sink: writes the backlog from its own cursor, in order, one write at a time, so
 * sinks never wait for each other and a sink that fails or stalls keeps its place (its lines
 * wait in the backlog) until it is written again or falls behind the backlog's bound.
 *
 * A stalled write is never abandoned half-way (a file could keep a torn line, a stream a
 * fragment): the runner waits for it, reports the sink stalled meanwhile, and goes on from
 * where it ends. A failed write counts for nothing: the cursor goes back to the last line the
 * sink holds, and the write is retried with a backoff.
 */
export class SinkRunner {
  state: SinkState = 'ok';
  since: number;
  lastError: string | undefined;
  failedWrites = 0;
  /** Next line to hand to the sink. */
  cursor: number;
  /** Last line the sink holds (durable); undefined: none (a new file, or a new stream reader). */
  held: Position | undefined;
  /** Last line handed to the sink (held, or in the write under way). */
  handed: Position | undefined;
  private inflight: number | undefined;
  private retry: NodeJS.Timeout | undefined;
  private attempt = 0;
  private closed = false;
  /** A pump loop is running (writing, or waiting for the head that covers its last write). */
  private pumping = false;
  private rekick: 'now' | 'later' | undefined;

  constructor(
    readonly sink: Sink,
    start: { cursor: number; held?: Position },
    private readonly hooks: RunnerHooks,
    private readonly options: RunnerOptions,
  ) {
    this.cursor = start.cursor;
    this.held = start.held;
    this.handed = start.held;
    this.since = options.now();
  }

  get name(): string {
    return this.sink.name;
  }

  /** The oldest line this runner may still need from the backlog. */
  get floor(): number {
    return this.inflight ?? this.cursor;
  }

  get busy(): boolean {
    return this.inflight !== undefined;
  }

  /**
   * Starts writing if idle and there is something to write. A failing sink waits for its retry
   * unless `now` (no sink takes lines, so requests are waiting on this one: try at once).
   */
  kick(now = false): void {
    if (this.pumping) {
      // The loop may be past its last look at the backlog: look again when it ends.
      this.rekick = this.rekick || (now ? 'now' : 'later');
      return;
    }
    if (this.closed || (this.retry && !now)) return;
    clearTimeout(this.retry);
    this.retry = undefined;
    void this.pump();
  }

  /** Stops: no more writes; a write under way is abandoned to the sink's close. */
  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    this.retry = undefined;
    return this.sink.close();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    this.rekick = undefined;
    try {
      await this.pumpLines();
    } finally {
      this.pumping = false;
    }
    const again = this.rekick;
    this.rekick = undefined;
    if (again) this.kick(again === 'now');
  }

  private async pumpLines(): Promise<void> {
    while (!this.closed) {
      if (this.cursor < this.hooks.backlog.front) this.hooks.fellBehind(this);
      const lines = this.hooks.backlog.from(this.cursor, this.options.chunkBytes);
      if (lines.length === 0) return;
      const last = lines.at(-1)!;
      this.inflight = lines[0]!.seq;
      this.cursor = last.seq + 1;
      this.handed = { seq: last.seq, hash: last.hash };
      const stall = setTimeout(
        () => this.setState('stalled', `no write completed in ${this.options.timeoutMs} ms`),
        this.options.timeoutMs,
      );
      stall.unref();
      try {
        await this.sink.write(lines.map((l) => `${l.text}\n`).join(''));
      } catch (e) {
        this.failed(e as NodeJS.ErrnoException, lines[0]!.seq);
        return;
      } finally {
        clearTimeout(stall);
        this.inflight = undefined;
      }
      this.held = this.handed;
      this.attempt = 0;
      this.setState('ok');
      await this.hooks.durable(this, lines);
    }
  }

  private failed(e: NodeJS.ErrnoException, first: number): void {
    this.failedWrites++;
    this.setState('failing', e.code ?? e.message);
    this.cursor = this.held ? this.held.seq + 1 : first;
    this.handed = this.held;
    // A stream that failed is reconnected: its next reader has none of the earlier lines.
    if (this.sink.kind !== 'file') this.held = this.handed = undefined;
    if (this.closed) return;
    this.retry = setTimeout(
      () => {
        this.retry = undefined;
        void this.pump();
      },
      Math.min(1_000, this.options.retryMs * 2 ** Math.min(this.attempt++, 10)),
    );
    this.retry.unref();
  }

  private setState(state: SinkState, error?: string): void {
    if (state !== this.state) this.since = this.options.now();
    this.state = state;
    if (error !== undefined) this.lastError = error;
  }
}
