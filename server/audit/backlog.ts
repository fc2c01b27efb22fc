/** One chained audit line: its sequence number, its text (without the newline) and its SHA-256. */
export interface Line {
  seq: number;
  text: string;
  hash: string;
}

/**
 * The lines some sink has not written yet, shared by all sinks (each keeps its own cursor into
 * it). Bounded in bytes: past the bound the oldest lines are dropped, and a sink that still
 * needed them gets a gap marker instead (log.ts). Lines are contiguous by sequence number.
 */
export class Backlog {
  private lines: Line[] = [];
  private start = 0; // index of the first live line in `lines`
  private size = 0;

  constructor(private next: number) {}

  get bytes(): number {
    return this.size;
  }

  /** Sequence number of the oldest line held (the next one to come if none is held). */
  get front(): number {
    return this.lines[this.start]?.seq ?? this.next;
  }

  /** Sequence number the next line will have. */
  get end(): number {
    return this.next;
  }

  push(line: Line): void {
    this.lines.push(line);
    this.size += line.text.length + 1;
    this.next = line.seq + 1;
  }

  /** Lines from `seq` on, as many as fit in `maxBytes` (at least one). */
  from(seq: number, maxBytes: number): Line[] {
    const out: Line[] = [];
    let bytes = 0;
    for (let i = this.start + Math.max(0, seq - this.front); i < this.lines.length; i++) {
      const line = this.lines[i]!;
      bytes += line.text.length + 1;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(line);
    }
    return out;
  }

  /** Drops every line before `seq`. */
  dropBefore(seq: number): void {
    while (this.start < this.lines.length && this.lines[this.start]!.seq < seq) {
      this.size -= this.lines[this.start]!.text.length + 1;
      this.start++;
    }
    if (this.start > 1024 && this.start * 2 > this.lines.length) {
      this.lines = this.lines.slice(this.start);
      this.start = 0;
    }
  }

  /** Past `bound` bytes, drops the oldest lines down to three quarters of it (so trims come in steps). */
  trim(bound: number): boolean {
    if (this.size <= bound) return false;
    while (this.start < this.lines.length && this.size > (bound * 3) / 4) {
      this.size -= this.lines[this.start]!.text.length + 1;
      this.start++;
    }
    this.dropBefore(this.front);
    return true;
  }
}
