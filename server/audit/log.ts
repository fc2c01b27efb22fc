import { sign } from 'node:crypto';
import { checkpointMessage, sha256Hex, type AuditEntry } from '../../sdk/audit.js';
import { CofferError } from '../errors.js';
import type { KeyPair } from '../keys/sealed-keypair.js';
import { FileSink } from './file-sink.js';
import { FileHead } from './head.js';
import { AuditTailError, acceptTruncation, readTail, resumeFrom, type Resume } from './tail.js';

/** Set to the stored sequence a refusal names to start once with a new chain segment (main.ts). */
export const ACCEPT_TRUNCATION_ENV = 'COFFER_AUDIT_ACCEPT_TRUNCATION';

/** What one audited request contributes; never a value, a token or a password. */
export interface AuditRecord {
  request_id: string;
  identity: string | null;
  groups: string[];
  operation: string;
  path: string | null;
  status: number;
  outcome: 'ok' | 'denied' | 'error';
  client: string;
  error_code?: string;
  /** A request that touches several secrets (a batch read): each path with its own outcome. */
  paths?: AuditPathOutcome[];
  /** mTLS: the verified client certificate of the connection (subject DN, SHA-256 fingerprint). */
  client_cert?: { subject: string; sha256: string };
}

export interface AuditPathOutcome {
  path: string;
  outcome: 'ok' | 'denied' | 'error';
  error_code?: string;
}

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
   * File that keeps the chain head of the first audit file (see head.ts). Without it (unit
   * tests of the log alone) nothing is checked at start.
   */
  headFile?: string;
  /** The stored sequence an operator accepts losing lines after (`COFFER_AUDIT_ACCEPT_TRUNCATION`). */
  acceptTruncationAt?: number;
  /** A sink slower than this fails for the group; other sinks carry on. */
  timeoutMs: number;
  now: () => number;
}

interface Sink {
  name: string;
  write(text: string): Promise<void>;
  close?(): Promise<void>;
}

const GENESIS = '0'.repeat(64);

/**
 * The hash-chained audit log (format in sdk/audit.ts). Lines are chained in the order requests
 * finish; the lines of one event-loop turn are flushed together (one write and one fdatasync per
 * file), and each request waits until at least one sink has its line durable. No sink: the
 * request fails with 503 `audit_unavailable` (fail closed). Sinks write concurrently and each
 * is bounded by a timeout, so a hung sink never stalls the others.
 */
export class AuditLog {
  private readonly sinks: Sink[];
  private seq = 0;
  private prev = GENESIS;
  private sinceCheckpoint = 0;
  private pending: { text: string; seq: number; hash: string; done: (ok: boolean) => void }[] = [];
  private readonly head: FileHead | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private flushing: Promise<void> | undefined;
  private signer: KeyPair | undefined;
  private failures = 0;

  constructor(private readonly options: AuditOptions) {
    this.sinks = options.files.map((f) => new FileSink(f));
    if (options.stdout) this.sinks.push({ name: 'stdout', write: (t) => new Promise((r, j) => process.stdout.write(t, (e) => (e ? j(e) : r()))) });
    this.head = options.files[0] && options.headFile ? new FileHead(options.headFile) : undefined;
  }

  /**
   * Continues the chain of the first file (after a restart), or starts a new one. With a head
   * file, refuses (AuditTailError, naming both sequence numbers and the file) a log that was
   * truncated, emptied, replaced or edited at its end while the server was stopped.
   */
  async start(): Promise<void> {
    const first = this.options.files[0];
    let resume: Resume = { seq: 0, prev: GENESIS };
    if (first && this.head) {
      const stored = await this.head.read();
      const tail = await readTail(first, stored?.seq);
      try {
        resume = resumeFrom(first, tail, stored, this.head.path);
      } catch (e) {
        if (!(e instanceof AuditTailError) || this.options.acceptTruncationAt !== e.storedSeq || !stored) throw e;
        resume = acceptTruncation(tail, stored, e.problem);
      }
    } else if (first) {
      resume = resumeFrom(first, await readTail(first), undefined, '');
    }
    this.seq = resume.seq;
    this.prev = resume.prev;
    // Recorded in the chain (and signed by the next checkpoint): a verifier sees every
    // restart that could not be checked against a head, and every accepted gap.
    const { unconfirmed, gap, headMissing } = resume;
    const done = this.enqueue({
      type: 'open',
      time: this.iso(),
      ...(unconfirmed ? { unconfirmed } : {}),
      ...(gap ? { gap } : {}),
      ...(headMissing && this.head ? { head_missing: true } : {}),
    });
    // The head must be on disk before anything else is answered; a failing first write is the
    // request path's concern (fail closed), not a reason to refuse the start.
    await done;
  }

  get checkpointEvery(): number {
    return this.options.checkpointEvery;
  }

  get checkpointIntervalMs(): number | undefined {
    return this.options.checkpointIntervalMs;
  }

  get sinkCount(): number {
    return this.sinks.length;
  }

  get lastSeq(): number {
    return this.seq - 1;
  }

  /** Failed sink writes so far (exposed in health and metrics). */
  get failedWrites(): number {
    return this.failures;
  }

  /** The key that signs checkpoints; without one (sealed), checkpoints wait. */
  setSigner(signer: KeyPair | undefined): void {
    this.signer = signer;
    // Lines written while sealed (or before a crash) are signed as soon as the key is back.
    if (signer && this.sinceCheckpoint > 0 && !this.closed) {
      this.enqueueCheckpoint();
      void this.flush();
    }
  }

  /** Appends one request line; resolves once it is durable in at least one sink. */
  async record(record: AuditRecord): Promise<void> {
    const done = this.enqueue({ type: 'request', time: this.iso(), ...record });
    if (!(await done)) throw new CofferError('audit_unavailable', 'the audit log cannot be written: request refused');
  }

  /** Writes a final checkpoint and closes the files. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.signer && this.sinceCheckpoint > 0) this.enqueueCheckpoint();
    await this.flush();
    for (const s of this.sinks) await s.close?.();
  }

  private enqueue(fields: Record<string, unknown>): Promise<boolean> {
    const entry = { ...fields, seq: this.seq, prev: this.prev };
    const text = JSON.stringify(entry);
    const seq = this.seq;
    this.seq++;
    this.prev = sha256Hex(text);
    this.sinceCheckpoint++;
    const done = new Promise<boolean>((resolve) => this.pending.push({ text, seq, hash: this.prev, done: resolve }));
    if (this.signer && this.sinceCheckpoint >= this.options.checkpointEvery) this.enqueueCheckpoint();
    else if (this.sinceCheckpoint === 1) this.armTimer();
    void this.flush();
    return done;
  }

  private enqueueCheckpoint(): void {
    const head = this.prev;
    const seq = this.seq;
    const sig = sign(null, Buffer.from(checkpointMessage(seq, head)), this.signer!.privateKey).toString('base64');
    const text = JSON.stringify({ type: 'checkpoint', time: this.iso(), seq, prev: head, head, kid: this.signer!.kid, sig });
    this.seq++;
    this.prev = sha256Hex(text);
    this.sinceCheckpoint = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.push({ text, seq, hash: this.prev, done: () => undefined });
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
      void this.flush();
    }, interval);
    this.timer.unref();
  }

  private flush(): Promise<void> {
    this.flushing ??= (async () => {
      await new Promise((r) => setImmediate(r)); // gather the lines of this turn
      while (this.pending.length > 0) {
        const group = this.pending;
        this.pending = [];
        const text = group.map((g) => `${g.text}\n`).join('');
        const results = await Promise.all(this.sinks.map((s) => this.writeWithTimeout(s, text)));
        // Only once the first file holds the group does the head move past it; no request of
        // the group is answered before the head is durable, or its line could be cut unseen.
        const last = group.at(-1)!;
        const ok = results.some(Boolean) && (!this.head || !results[0] || (await this.writeHead(last.seq, last.hash)));
        for (const g of group) g.done(ok);
      }
      this.flushing = undefined;
    })();
    return this.flushing;
  }

  private async writeWithTimeout(sink: Sink, text: string): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        sink.write(text),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timeout')), this.options.timeoutMs);
        }),
      ]);
      return true;
    } catch {
      this.failures++;
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private async writeHead(seq: number, hash: string): Promise<boolean> {
    try {
      await this.head!.write({ file: this.options.files[0]!, seq, hash });
      return true;
    } catch {
      this.failures++;
      return false;
    }
  }

  private iso(): string {
    return new Date(this.options.now()).toISOString();
  }
}
