import type { Coffer } from '../sdk/client.js';

/**
 * What a command touches outside itself, injected (as in the GitHub CLI's IOStreams): the three
 * streams and the environment. `coffer` passes the process's; tests pass their own and run
 * commands in-process (test/cli/in-process.ts).
 */
export interface IO {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  readonly env: NodeJS.ProcessEnv;
}

/** Global flags every command accepts (docs/api.md "CLI"). */
export interface GlobalArgs {
  addr?: string;
  token?: string;
  json?: boolean;
  quiet?: boolean;
}

/** A command's seam: its IO, and how it gets a client for its flags (the token and address from `io.env`). */
export interface Deps {
  readonly io: IO;
  client(args: GlobalArgs): Promise<Coffer>;
  /** The exit status of a command that succeeded but has a status to report (sealed, a failed check). */
  exitCode(code: number): void;
}

/** The process's streams, each opened when first used: `coffer run` never opens stdin or stdout (about 3 ms of its start-up). */
export const processIO = (): IO => ({
  get stdout() {
    return process.stdout;
  },
  get stderr() {
    return process.stderr;
  },
  get stdin() {
    return process.stdin;
  },
  env: process.env,
});

/** Everything on stdin, once. */
export async function readAll(io: IO): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}
