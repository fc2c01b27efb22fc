/**
 * What the CLI finds wrong itself, before or without an answer from the server: a bad flag value,
 * a file it cannot read or will not overwrite, a refused `--map`, a stream cut mid-way. Server
 * answers stay `CofferError`s with the server's code; these never pose as one. Each code has
 * its exit code (docs/api.md "Exit codes").
 */
export const CLI_ERROR_EXIT = {
  /** The command line itself is incomplete (a required flag, the command after `--`). */
  usage: 2,
  /** A flag, argument or local file the command cannot use. */
  invalid_input: 1,
  /** Something the command needs is absent (a key in a secret, secrets under a prefix). */
  not_found: 4,
  /** A file the command would overwrite exists. */
  already_exists: 1,
  /** The server or a stream from it went away mid-way. */
  unavailable: 5,
  /** What arrived is damaged (a backup stream without a valid end). */
  damaged: 1,
  /** The operator cancelled a prompt. */
  cancelled: 1,
} as const;

export type CliErrorCode = keyof typeof CLI_ERROR_EXIT;

export class CliError extends Error {
  readonly exitCode: number;

  constructor(
    readonly code: CliErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
    this.exitCode = CLI_ERROR_EXIT[code];
  }
}
