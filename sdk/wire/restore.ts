/**
 * The contract of an offline restore (`coffer restore`), shared by the CLI that asks for it and
 * server/backup/restore.ts that does it: cli/app.ts passes the server function in, so the CLI
 * command module stays on the SDK side of the dependency rule.
 */
export interface RestoreOptions {
  /** The backup file. */
  file: string;
  /** The data directory to create (absent or empty). The store goes to `<dir>/db`, as the server expects. */
  dataDir: string;
  /** The master key source, as `coffer server --kek` (not needed for a Shamir vault). */
  kek?: string;
  /** Unseal shares of a Shamir vault (a threshold of them). */
  shares?: string[];
  /** Asked for the shares when the backup is of a Shamir vault and `shares` is empty (the CLI prompts). */
  askShares?: (threshold: number) => Promise<string[]>;
  env?: NodeJS.ProcessEnv;
  /** Called as chunks are verified and written. */
  progress?: (phase: 'verify' | 'write', chunks: number, entries: number) => void;
}

export interface RestoreResult {
  vault: string;
  backup: string;
  seq: number;
  created_at: string;
  entries: number;
  data_dir: string;
}

export type RestoreRunner = (options: RestoreOptions) => Promise<RestoreResult>;
