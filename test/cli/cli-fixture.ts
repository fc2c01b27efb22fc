import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { runCoffer } from '../../cli/app.js';
import { depsOf } from '../../cli/context.js';
import type { IO } from '../../cli/io.js';
import { loadConfig, type ServerConfig } from '../../server/config.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { silentLog, tempDir } from '../helpers.js';
import { CLI } from '../integration/server-process.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `coffer` binary with exactly `env` (nothing inherited) and `stdin`. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<CliResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(stdin);
    child.once('exit', (code) => done({ code, stdout, stderr }));
  });
}

/**
 * Runs the CLI in this process, as GitHub's CLI tests do: the same yargs program and commands
 * as the binary, with the streams and the environment injected (cli/io.ts), so a test costs no
 * node start-up. `coffer run` (which becomes its child and exits with it) and anything that
 * needs the real entry point go through `runCli` instead.
 */
export async function runInProcess(args: string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<CliResult> {
  const collect = () => {
    const stream = new PassThrough();
    let text = '';
    stream.on('data', (d: Buffer) => (text += d.toString()));
    return { stream, text: () => text };
  };
  const out = collect();
  const err = collect();
  const io: IO = {
    stdout: out.stream,
    stderr: err.stream,
    stdin: Readable.from(stdin ? [Buffer.from(stdin)] : []),
    env,
  };
  const code = await runCoffer(args, depsOf(io));
  await new Promise((r) => setImmediate(r)); // let the PassThroughs hand over what was written
  return { code, stdout: out.text(), stderr: err.text() };
}

export interface CliFixture {
  dir: string;
  server: RunningServer;
  /** The CLI's environment: PATH, a private HOME, COFFER_ADDR and the root token. */
  env: NodeJS.ProcessEnv;
  /** In-process (runInProcess), except `coffer run` and `{ spawn: true }`: the built binary. */
  run(args: string[], options?: { env?: NodeJS.ProcessEnv; stdin?: string; spawn?: boolean }): Promise<CliResult>;
  close(): Promise<void>;
}

/** A dev server in a temp dir and a `run` that points the CLI at it with the root token. */
export async function cliFixture(
  prefix: string,
  flags: Partial<Record<keyof ServerConfig, unknown>> = {},
): Promise<CliFixture> {
  const dir = await tempDir(prefix);
  const server = await startServer(
    await loadConfig({ flags: { dev: true, data_dir: join(dir, 'vault'), listen: '127.0.0.1:0', ...flags } }),
    { log: silentLog },
  );
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: join(dir, 'home'),
    COFFER_ADDR: server.url,
    COFFER_TOKEN: server.rootToken,
  };
  return {
    dir,
    server,
    env,
    run: (args, options = {}) =>
      (options.spawn || args[0] === 'run' ? runCli : runInProcess)(args, { ...env, ...options.env }, options.stdin),
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
