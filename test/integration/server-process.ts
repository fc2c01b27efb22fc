import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';

/** The `coffer` binary as installed (dist/cli/coffer.cjs, package.json "bin") seen from dist/test/integration. */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'coffer.cjs');

const START_TIMEOUT_MS = 60_000;

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `coffer server` as a child process on a random loopback port and resolves once it
 * logs that it listens. Rejects with the process output if it exits first.
 */
export function startServerProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI, 'server', '--listen', '127.0.0.1:0', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      output += `${line}\n`;
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'coffer listening' && entry.url) {
          clearTimeout(timer);
          resolve({
            child,
            url: entry.url,
            output: () => output,
            kill: (signal = 'SIGKILL') => {
              if (child.exitCode === null && child.signalCode === null) child.kill(signal);
              return exited;
            },
          });
        }
      } catch {
        /* not a log line */
      }
    });
    void exited.then((code) => reject(new Error(`server exited (${code}) before listening:\n${output}`)));
    // A server that never says it listens (a wrong flag, --log-level above info) must not be left running.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not log "coffer listening" within ${START_TIMEOUT_MS} ms:\n${output}`));
    }, START_TIMEOUT_MS);
    timer.unref();
    lines.once('close', () => clearTimeout(timer));
    child.stdout!.once('data', () => undefined);
  });
}

export interface ProcessPair {
  primaryDir: string;
  bucket: string;
  token: string;
  primary: ServerProcess;
  replica: ServerProcess;
  /** Starts the primary again on its data dir and bucket (after a kill). */
  restartPrimary(): Promise<ServerProcess>;
}

/**
 * A dev primary shipping to a file bucket and a replica following it (same key file), as real
 * processes; every process and directory goes into `procs`/`dirs` for the caller to clean up.
 */
export async function startProcessPair(
  env: NodeJS.ProcessEnv,
  procs: ServerProcess[],
  dirs: string[],
): Promise<ProcessPair> {
  const [bucket, primaryDir, replicaDir] = await Promise.all(
    ['coffer-bucket-', 'coffer-primary-', 'coffer-replica-'].map((p) => mkdtemp(join(tmpdir(), p))),
  );
  dirs.push(bucket!, primaryDir!, replicaDir!);
  const startPrimary = async () => {
    const p = await startServerProcess(['--dev', '--data-dir', primaryDir!, '--replicate-to', `file://${bucket}`], env);
    procs.push(p);
    return p;
  };
  const primary = await startPrimary();
  const token = (await readFile(join(primaryDir!, 'root-token'), 'utf8')).trim();
  const replica = await startServerProcess(
    [
      '--dev',
      '--data-dir',
      replicaDir!,
      '--kek',
      `file:${join(primaryDir!, 'kek.key')}`,
      '--replica-of',
      `file://${bucket}`,
    ],
    env,
  );
  procs.push(replica);
  return { primaryDir: primaryDir!, bucket: bucket!, token, primary, replica, restartPrimary: startPrimary };
}
