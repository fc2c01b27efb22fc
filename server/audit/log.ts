import { sign } from 'node:crypto';
import { sha256Hex } from '../../sdk/audit.js';
import {
  checkpointMessage,
  type AuditPathOutcome,
  type AuditRequest,
  type CheckpointLine,
  type GapLine,
  type OpenLine,
  type RequestLine,
  type UnchainedLine,
  type WithheldLine,
} from '../../sdk/wire/audit.js';
import type { AuditSinkStatus } from '../../sdk/wire/types.js';
import { CofferError } from '../errors.js';
import type { KeyPair } from '../keys/sealed-keypair.js';
import { resolve } from 'node:path';
import { Backlog, type Line } from './backlog.js';
import { FileSink } from './file-sink.js';
import { FileHead, type Position } from './head.js';
import { resumeSinks } from './resume.js';
import { CHUNK_BYTES } from './tail.js';
import { SinkRunner } from './sink-runner.js';
import type { Sink } from './sink.js';
import { StdoutSink, StreamSink } from './stream-sink.js';

/** Set to the stored sequence a refusal names to start once with a new chain segment (main.ts). */
export const ACCEPT_TRUNCATION_ENV = 'COFFER_AUDIT_ACCEPT_TRUNCATION';

/** What one audited request contributes; never a value, a token or a password (the line format is sdk/wire/audit.ts). */
export type AuditRecord = AuditRequest;
export type { AuditPathOutcome };

export interface AuditOptions {
  files: string[];
  stdout: boolean;
  /** A checkpoint is signed after this many lines. */
  checkpointEvery: number;
  /**
   * ... or this long after the first line it does not cover yet, so a live log always ends
   * within `checkpointEvery` lines or this many milliseconds of a signed checkpoint (while
   * unsealed: without the key, checkpoints wait for the unseal, which signs at once).
   */
  checkpointIntervalMs?: number;
  /**
   * File that keeps the chain head and each audit file's position (see head.ts). Without it
   * (unit tests of the log alone) nothing is checked at start.
   */
  headFile?: string;
  /** The stored sequence an operator accepts losing lines after (`COFFER_AUDIT_ACCEPT_TRUNCATION`). */
  acceptTruncationAt?: number;
  /**
   * A request whose line is durable in no sink after this long is refused (503
   * audit_unavailable); a sink whose write takes longer is reported stalled.
   */
  timeoutMs: number;
  /** First retry delay of a failed sink (doubling up to 1 s); default 250 ms. */
  retryMs?: number;
  /**
   * Bytes of lines kept for sinks that are behind (failing or stalled); default 8 MiB. Past it
   * the oldest are dropped and a sink that still needed them gets a gap marker.
   */
  backlogBytes?: number;
  now: () => number;
}

/** What `GET /v1/sys/audit` and the metrics report per sink. */
export type SinkStatus = AuditSinkStatus;

interface Waiter {
  seq: number;
  request: boolean;
  /** When the line is refused if no sink has made it durable (performance.now() time). */
  deadline: number;
  done: (ok: boolean) => void;
}

const GENESIS = '0'.repeat(64);
const DEFAULT_BACKLOG_BYTES = 8 * 1024 * 1024;

/** Sequence numbers as [from, to] ranges. */
function ranges(seqs: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const s of [...seqs].sort((a, b) => a - b)) {
    const last = out.at(-1);
    if (last && s === last[1] + 1) last[1] = s;
    else out.push([s, s]);
  }
  return out;
}

/**
 * The hash-chained audit log (line format in sdk/wire/audit.ts). Lines are chained in the order requests
 * finish and each request waits until at least one sink holds its line durably (Vault's rule:
 * any one device), and the chain head (head.ts) says so. No sink within `timeoutMs`: the
 * request fails with 503 `audit_unavailable` (fail closed).
 *
 * Sinks are independent (sink-runner.ts): each writes the shared backlog from its own cursor,
 * the lines of one event-loop turn in one durable write per file sink. A line, once chained, is
 * final: it is never rolled back or renumbered, so a sink that finishes a slow write late can
 * never fork the chain. Consequences, by design:
 * - a group no sink could take (its requests were refused) stays in the chain and is written
 *   when a sink recovers, followed by a `withheld` line naming the sequence numbers whose
 *   requests were answered 503 instead;
 * - a sink that missed lines rewrites them in order when it can be written again, while they
 *   are still in the backlog (bounded, `backlogBytes`); past the bound it gets a `gap` line
 *   (`missed: [{sink, from, after}]`) in the chain instead, which the verifier accepts for
 *   that sink only, and which the next checkpoint signs like any line.
 */
export class AuditLog {
  private runners: SinkRunner[] = [];
  private backlog = new Backlog(0);
  private seq = 0;
  private prev = GENESIS;
  private sinceCheckpoint = 0;
  private readonly names: string[];
  private readonly head: FileHead | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private signer: KeyPair | undefined;
  private headFailures = 0;
  /** Lines waiting to be durable, in sequence order: all share one timeout, so the first is due first. */
  private readonly waiters = new Map<number, Waiter>();
  /** The one timer that refuses waiting lines past their deadline (a timer per line costs every request). */
  private expiry: NodeJS.Timeout | undefined;
  private ready: Waiter[] = [];
  /** Sinks waiting for the head that covers their last write before they write again. */
  private headWaiters: (() => void)[] = [];
  private headDirty = false;
  private headLoop: Promise<void> | undefined;
  /** Set once close() wrote (or gave up on) the final head: a late sink write must not overwrite it. */
  private headClosed = false;
  /** The last line durable in any sink: what the stored head says. */
  private durableHead: Position | undefined;
  private withheld: number[] = [];
  private kickQueued = false;
  private isoMs = Number.NaN;
  private isoText = '';

  constructor(private readonly options: AuditOptions) {
    this.names = options.files.map((f) => resolve(f));
    this.head = options.files[0] && options.headFile ? new FileHead(options.headFile) : undefined;
  }

  /**
   * Continues the chain (after a restart), or starts a new one. With a head file, refuses
   * (AuditTailError, naming both sequence numbers and the file) a log that was truncated,
   * emptied, replaced or edited at its end while the server was stopped. Never waits on a
   * sink: with no sink writable (a FIFO nobody reads) the server starts, and refuses requests.
   */
  async start(): Promise<void> {
    const stored = this.head ? await this.head.read() : undefined;
    const start = await resumeSinks(this.names, stored, this.head?.path, this.options.acceptTruncationAt);
    this.seq = start.seq;
    this.prev = start.prev;
    this.backlog = new Backlog(start.seq);
    this.durableHead = start.seq > 0 ? { seq: start.seq - 1, hash: start.prev } : undefined;
    // Before any line goes out: the head without `clean` (a crash from here on leaves
    // unconfirmed lines, not added ones), and where each file stands after the cuts above.
    if (this.head && this.durableHead) {
      await this.head.write({
        file: this.options.files[0]!,
        ...this.durableHead,
        sinks: this.names.map((_, i) => (start.sinks[i]?.kind === 'file' ? (start.sinks[i].held ?? null) : null)),
      });
    }
    const sinks: Sink[] = this.names.map((name, i) => {
      const kind = start.sinks[i]!.kind;
      return kind === 'file' ? new FileSink(name) : new StreamSink(name, kind === 'fifo' ? 'fifo' : 'socket');
    });
    if (this.options.stdout) sinks.push(new StdoutSink());
    const hooks = {
      backlog: this.backlog,
      durable: (r: SinkRunner, lines: Line[]) => this.durable(r, lines),
      fellBehind: () => this.markGaps(),
    };
    const runnerOptions = {
      timeoutMs: this.options.timeoutMs,
      retryMs: this.options.retryMs ?? 250,
      chunkBytes: CHUNK_BYTES,
      now: this.options.now,
    };
    this.runners = sinks.map(
      (sink, i) =>
        new SinkRunner(
          sink,
          { cursor: start.seq, ...(start.sinks[i]?.held ? { held: start.sinks[i].held } : {}) },
          hooks,
          runnerOptions,
        ),
    );
    // Recorded in the chain (and signed by the next checkpoint): a verifier sees every
    // restart that could not be checked against a head, every accepted gap, and every file
    // that missed lines before the stop.
    const done = this.enqueue(
      { type: 'open', time: this.iso(), ...start.open } satisfies UnchainedLine<OpenLine>,
      false,
    );
    // Lets a healthy start have the open line on disk; never waits long on a stalled sink. Not
    // unref'd: every other timer here is, and nothing else may be keeping the process alive yet.
    let wait: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise((r) => (wait = setTimeout(r, Math.min(this.options.timeoutMs, 1_000))))]);
    clearTimeout(wait);
  }

  get checkpointEvery(): number {
    return this.options.checkpointEvery;
  }

  get checkpointIntervalMs(): number | undefined {
    return this.options.checkpointIntervalMs;
  }

  get sinkCount(): number {
    return this.runners.length;
  }

  /** The first audit file (resolved), the one the chain head tracks and `GET /v1/sys/audit/lines` reads; undefined without a file sink. */
  get firstFile(): string | undefined {
    return this.names[0];
  }

  get lastSeq(): number {
    return this.seq - 1;
  }

  /** Failed sink writes so far, and failed head writes (exposed in health and metrics). */
  get failedWrites(): number {
    return this.runners.reduce((n, r) => n + r.failedWrites, this.headFailures);
  }

  /** Whether some sink takes lines: without one every audited request is refused. */
  get available(): boolean {
    return this.runners.some((r) => r.state === 'ok');
  }

  sinkStatus(): SinkStatus[] {
    return this.runners.map((r) => ({
      name: r.name,
      kind: r.sink.kind,
      state: r.state,
      since: new Date(r.since).toISOString(),
      last_error: r.lastError ?? null,
      written_seq: r.held?.seq ?? null,
      behind: this.backlog.end - r.floor,
      failed_writes: r.failedWrites,
    }));
  }

  /** One line per sink that is not ok, for the unauthenticated health answer: no paths. */
  warnings(): string[] {
    return this.runners.flatMap((r, i) =>
      r.state === 'ok'
        ? []
        : [
            `audit sink ${i + 1} of ${this.runners.length} (${r.sink.kind}) ${r.state} since ${new Date(r.since).toISOString()}${r.lastError ? `: ${r.lastError.slice(0, 80)}` : ''}`,
          ],
    );
  }

  /** The key that signs checkpoints; without one (sealed), checkpoints wait. */
  setSigner(signer: KeyPair | undefined): void {
    this.signer = signer;
    // Lines written while sealed (or before a crash) are signed as soon as the key is back.
    if (signer && this.sinceCheckpoint > 0 && !this.closed) {
      this.enqueueCheckpoint();
      this.queueKick();
    }
  }

  /** Appends one request line; resolves once it is durable in at least one sink. */
  async record(record: AuditRecord): Promise<void> {
    const done = this.enqueue(
      { type: 'request', time: this.iso(), ...record } satisfies UnchainedLine<RequestLine>,
      true,
    );
    if (!(await done)) throw new CofferError('audit_unavailable', 'the audit log cannot be written: request refused');
  }

  /**
   * Writes a final checkpoint, waits up to `waitMs` (default the sink timeout, at most 5 s)
   * for the sinks that are working to take it, then closes every sink without waiting on a
   * stalled one. Requests still waiting are refused.
   */
  close(waitMs = Math.min(this.options.timeoutMs, 5_000)): Promise<void> {
    this.closing ??= (async () => {
      this.flushWithheld();
      this.closed = true;
      clearTimeout(this.timer);
      this.timer = undefined;
      if (this.signer && this.sinceCheckpoint > 0) this.enqueueCheckpoint();
      for (const r of this.runners) r.kick();
      const deadline = Date.now() + waitMs;
      const pending = () => this.runners.some((r) => r.state === 'ok' && (r.busy || r.cursor < this.backlog.end));
      while (pending() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      if (this.headLoop)
        await Promise.race([
          this.headLoop,
          new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref()),
        ]);
      const headIdle = this.headLoop === undefined;
      await Promise.all(
        this.runners.map((r) =>
          Promise.race([r.close().catch(() => undefined), new Promise((t) => setTimeout(t, 200).unref())]),
        ),
      );
      // A clean stop: nothing any file holds is past this head, so at the next start any line
      // after it was added while the server was stopped. Not when a file write is still under
      // way (it may land after this) or a head write did not finish: the next start then
      // treats what follows as a crash's unconfirmed lines.
      if (this.head && this.durableHead && headIdle && !this.runners.some((r) => r.busy && r.sink.kind === 'file')) {
        this.headClosed = true;
        await this.head.write({ ...this.headNow(), clean: true }).catch(() => {
          this.headFailures++;
        });
      }
      this.headClosed = true;
      await this.head?.close();
      clearTimeout(this.expiry);
      this.expiry = undefined;
      for (const w of this.waiters.values()) w.done(false);
      this.waiters.clear();
    })();
    return this.closing;
  }

  private append(text: string): Line {
    const line = { seq: this.seq, text, hash: sha256Hex(text) };
    this.seq++;
    this.prev = line.hash;
    this.backlog.push(line);
    return line;
  }

  private enqueue(fields: UnchainedLine<OpenLine | RequestLine>, isRequest: boolean): Promise<boolean> {
    // The same text as JSON.stringify({ ...fields, seq, prev }) without the copy: `fields` is a
    // non-empty object, `seq` a number and `prev` a hex digest (nothing to escape).
    const text = JSON.stringify(fields);
    const line = this.append(`${text.slice(0, -1)},"seq":${this.seq},"prev":"${this.prev}"}`);
    this.sinceCheckpoint++;
    const deadline = performance.now() + this.options.timeoutMs;
    const done = new Promise<boolean>((resolveDone) => {
      this.waiters.set(line.seq, { seq: line.seq, request: isRequest, deadline, done: resolveDone });
    });
    this.armExpiry();
    if (this.signer && this.sinceCheckpoint >= this.options.checkpointEvery) this.enqueueCheckpoint();
    else if (this.sinceCheckpoint === 1) this.armTimer();
    if (this.backlog.trim(this.options.backlogBytes ?? DEFAULT_BACKLOG_BYTES)) this.markGaps();
    this.queueKick();
    return done;
  }

  private enqueueCheckpoint(): void {
    const head = this.prev;
    const seq = this.seq;
    const sig = sign(null, Buffer.from(checkpointMessage(seq, head)), this.signer!.privateKey).toString('base64');
    this.append(
      JSON.stringify({
        type: 'checkpoint',
        time: this.iso(),
        seq,
        prev: head,
        head,
        kid: this.signer!.kid,
        sig,
      } satisfies CheckpointLine),
    );
    this.sinceCheckpoint = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Every idle sink whose next line was dropped from the backlog jumps to a `gap` line naming
   * what it missed and the hash of the last line it holds. A sink that holds nothing yet (a
   * new file, a new stream reader) needs no marker: it simply starts at the oldest line kept.
   */
  private markGaps(): void {
    const behind = this.runners.filter((r) => !r.busy && r.cursor < this.backlog.front);
    if (behind.length === 0) return;
    const marked = behind.filter((r) => r.handed);
    for (const r of behind) if (!r.handed) r.cursor = this.backlog.front;
    if (marked.length === 0) return;
    const missed = marked.map((r) => ({ sink: r.name, from: r.handed!.seq + 1, after: r.handed!.hash }));
    const line = this.append(
      JSON.stringify({ type: 'gap', time: this.iso(), missed, seq: this.seq, prev: this.prev } satisfies GapLine),
    );
    this.sinceCheckpoint++;
    for (const r of marked) r.cursor = line.seq;
    this.queueKick();
  }

  /** The lines of one event-loop turn go out together: one write per sink (durable on return for a file). */
  private queueKick(): void {
    if (this.kickQueued) return;
    this.kickQueued = true;
    setImmediate(() => {
      this.kickQueued = false;
      const urgent = !this.available;
      for (const r of this.runners) r.kick(urgent);
    });
  }

  /**
   * Lines just made durable in a sink. Resolves once a head write started after this one
   * finished: the sink writes nothing more until then, so a crash leaves at most one write
   * (CHUNK_BYTES) past what the head records for it, which the next start cuts off (tail.ts).
   */
  private durable(_runner: SinkRunner, lines: Line[]): Promise<void> {
    const last = lines.at(-1)!;
    if (!this.durableHead || last.seq > this.durableHead.seq) this.durableHead = { seq: last.seq, hash: last.hash };
    for (const line of lines) {
      const w = this.waiters.get(line.seq);
      if (!w) continue;
      this.waiters.delete(line.seq);
      this.ready.push(w);
    }
    this.backlog.dropBefore(Math.min(...this.runners.map((r) => r.floor)));
    this.headDirty = true;
    const written = new Promise<void>((r) => this.headWaiters.push(r));
    this.startHeads();
    return written;
  }

  private headNow(): { file: string; seq: number; hash: string; sinks: (Position | null)[] } {
    const sinks = this.names.map((_, i) => {
      const r = this.runners[i]!;
      return r.sink.kind === 'file' && r.held ? { seq: r.held.seq, hash: r.held.hash } : null;
    });
    return { file: this.options.files[0]!, seq: this.durableHead!.seq, hash: this.durableHead!.hash, sinks };
  }

  private startHeads(): void {
    if (this.headLoop) return;
    this.headLoop = this.writeHeads().finally(() => {
      this.headLoop = undefined;
      if (this.headDirty) this.startHeads(); // a sink finished between the loop's end and here
    });
  }

  /**
   * Answers the requests whose lines are durable once the head that covers them is on disk
   * (or a head write failed: then they are refused, fail closed). One head write at a time;
   * sinks finishing meanwhile share the next one.
   */
  private async writeHeads(): Promise<void> {
    while (this.headDirty) {
      this.headDirty = false;
      const batch = this.ready;
      this.ready = [];
      const sinks = this.headWaiters;
      this.headWaiters = [];
      let ok = !this.headClosed;
      if (this.head && this.durableHead && !this.headClosed) {
        try {
          await this.head.write(this.headNow());
        } catch {
          this.headFailures++;
          ok = false;
        }
      }
      for (const w of batch) {
        w.done(ok);
        // Refused because the head could not be written: named in a `withheld` line like a timeout.
        if (!ok && w.request) this.withhold(w.seq);
      }
      for (const resume of sinks) resume();
    }
  }

  /** Arms the expiry timer for the oldest waiting line, unless it is armed. */
  private armExpiry(): void {
    if (this.expiry) return;
    const oldest = this.waiters.values().next().value;
    if (!oldest) return;
    this.expiry = setTimeout(() => this.expireDue(), Math.max(1, Math.ceil(oldest.deadline - performance.now())));
    this.expiry.unref();
  }

  /** Lines durable nowhere in time: their requests are refused, and a `withheld` line says so. */
  private expireDue(): void {
    this.expiry = undefined;
    const now = performance.now();
    for (const w of this.waiters.values()) {
      if (w.deadline > now) break;
      this.waiters.delete(w.seq);
      w.done(false);
      if (w.request) this.withhold(w.seq);
    }
    this.armExpiry();
  }

  private withhold(seq: number): void {
    if (this.withheld.length === 0) setImmediate(() => this.flushWithheld());
    this.withheld.push(seq);
  }

  private flushWithheld(): void {
    if (this.withheld.length === 0 || this.closed) return;
    const seqs = ranges(this.withheld);
    this.withheld = [];
    const line = this.append(
      JSON.stringify({
        type: 'withheld',
        time: this.iso(),
        error_code: 'audit_unavailable',
        seqs,
        seq: this.seq,
        prev: this.prev,
      } satisfies WithheldLine),
    );
    void line;
    this.sinceCheckpoint++;
    if (this.sinceCheckpoint === 1) this.armTimer();
    if (this.backlog.trim(this.options.backlogBytes ?? DEFAULT_BACKLOG_BYTES)) this.markGaps();
    this.queueKick();
  }

  /**
   * Started by the first line after a checkpoint: signs what is unsigned once the interval has
   * passed. unref'd, so it never keeps the process alive; cleared by a checkpoint and by close.
   */
  private armTimer(): void {
    const interval = this.options.checkpointIntervalMs;
    if (interval === undefined || this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.signer || this.sinceCheckpoint === 0 || this.closed) return; // sealed: setSigner signs on unseal
      this.enqueueCheckpoint();
      this.queueKick();
    }, interval);
    this.timer.unref();
  }

  /** The time of a line; lines of the same millisecond share one formatting. */
  private iso(): string {
    const ms = this.options.now();
    if (ms !== this.isoMs) {
      this.isoMs = ms;
      this.isoText = new Date(ms).toISOString();
    }
    return this.isoText;
  }
}
