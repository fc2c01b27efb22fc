import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
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

export interface CliFixture {
  dir: string;
  server: RunningServer;
  /** The CLI's environment: PATH, a private HOME, COFFER_ADDR and the root token. */
  env: NodeJS.ProcessEnv;
  run(args: string[], options?: { env?: NodeJS.ProcessEnv; stdin?: string }): Promise<CliResult>;
  close(): Promise<void>;
}

/** A dev server in a temp dir and a `run` that points the CLI at it with the root token. */
export async function cliFixture(prefix: string, flags: Partial<Record<keyof ServerConfig, unknown>> = {}): Promise<CliFixture> {
  const dir = await tempDir(prefix);
  const server = await startServer(await loadConfig({ flags: { dev: true, data_dir: join(dir, 'vault'), listen: '127.0.0.1:0', ...flags } }), { log: silentLog });
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: join(dir, 'home'), COFFER_ADDR: server.url, COFFER_TOKEN: server.rootToken };
  return {
    dir,
    server,
    env,
    run: (args, options = {}) => runCli(args, { ...env, ...options.env }, options.stdin),
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
