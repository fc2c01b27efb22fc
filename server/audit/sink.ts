/** Where audit lines go: a file, a FIFO or socket, stdout. */
export interface Sink {
  /** How the sink is named in status and metrics: its configured path (resolved), or `stdout`. */
  readonly name: string;
  readonly kind: 'file' | 'fifo' | 'socket' | 'stdout';
  /**
   * Writes every byte of `text` (whole lines); resolves once they are durable: written and
   * durable on disk for a file (written O_DSYNC), accepted by the kernel for a stream. A rejection means none of it
   * counts (a file cuts it back; a stream drops its connection).
   */
  write(text: string): Promise<void>;
  /** Releases the sink without waiting on it (a write stuck in it is abandoned). */
  close(): Promise<void>;
  /** Increments whenever a stream connects anew: its new reader has none of the earlier lines. */
  readonly generation?: number;
}
