import { open } from 'node:fs/promises';
import { sign } from 'node:crypto';
import { checkpointMessage, sha256Hex, type AuditEntry } from '../../sdk/audit.js';
import { CofferError } from '../errors.js';
import type { KeyPair } from '../keys/sealed-keypair.js';
import { FileSink } from './file-sink.js';

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
  private pending: { text: string; done: (ok: boolean) => void }[] = [];
  private flushing: Promise<void> | undefined;
  private signer: KeyPair | undefined;
  private failures = 0;

  constructor(private readonly options: AuditOptions) {
    this.sinks = options.files.map((f) => new FileSink(f));
    if (options.stdout) this.sinks.push({ name: 'stdout', write: (t) => new Promise((r, j) => process.stdout.write(t, (e) => (e ? j(e) : r()))) });
  }

  /** Continues the chain of the first file (after a restart), or starts a new one. */
  async start(): Promise<void> {
    const first = this.options.files[0];
    const last = first ? await readLastLine(first) : undefined;
    if (last) {
      try {
        const entry = JSON.parse(last) as AuditEntry;
        this.seq = entry.seq + 1;
        this.prev = sha256Hex(last);
      } catch {
        /* unreadable tail: the verifier will report it; continue from the genesis hash */
      }
    }
    this.enqueue({ type: 'open', time: this.iso() });
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
  }

  /** Appends one request line; resolves once it is durable in at least one sink. */
  async record(record: AuditRecord): Promise<void> {
    const done = this.enqueue({ type: 'request', time: this.iso(), ...record });
    if (!(await done)) throw new CofferError('audit_unavailable', 'the audit log cannot be written: request refused');
  }

  /** Writes a final checkpoint and closes the files. */
  async close(): Promise<void> {
    if (this.signer && this.sinceCheckpoint > 0) this.enqueueCheckpoint();
    await this.flush();
    for (const s of this.sinks) await s.close?.();
  }

  private enqueue(fields: Record<string, unknown>): Promise<boolean> {
    const entry = { ...fields, seq: this.seq, prev: this.prev };
    const text = JSON.stringify(entry);
    this.seq++;
    this.prev = sha256Hex(text);
    this.sinceCheckpoint++;
    const done = new Promise<boolean>((resolve) => this.pending.push({ text, done: resolve }));
    if (this.signer && this.sinceCheckpoint >= this.options.checkpointEvery) this.enqueueCheckpoint();
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
    this.pending.push({ text, done: () => undefined });
  }

  private flush(): Promise<void> {
    this.flushing ??= (async () => {
      await new Promise((r) => setImmediate(r)); // gather the lines of this turn
      while (this.pending.length > 0) {
        const group = this.pending;
        this.pending = [];
        const text = group.map((g) => `${g.text}\n`).join('');
        const results = await Promise.all(this.sinks.map((s) => this.writeWithTimeout(s, text)));
        const ok = results.some(Boolean);
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

  private iso(): string {
    return new Date(this.options.now()).toISOString();
  }
}

/** The last complete line of a file (reads at most its last 64 KiB). */
async function readLastLine(path: string): Promise<string | undefined> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return undefined;
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, 64 * 1024);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').split('\n').filter(Boolean);
    return lines.at(-1);
  } finally {
    await handle.close();
  }
}
