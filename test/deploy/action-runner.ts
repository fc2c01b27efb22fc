import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, createReadStream, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, seen from dist/test/deploy. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const ACTION_DIR = join(ROOT, 'deploy', 'github-action');

export interface StepRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The file commands as the runner reads them after the step. */
  files: { GITHUB_ENV: string; GITHUB_OUTPUT: string; GITHUB_STATE: string };
  /** With `watch`: the step's stdout at the moment each file command file was first written to. */
  stdoutAtFirstWrite: Partial<Record<'GITHUB_ENV' | 'GITHUB_OUTPUT', string>>;
}

type FileName = keyof StepRun['files'];

/**
 * Runs the action's bundle the way the runner's node handler does: `node <main or post>` with
 * the step's environment (INPUT_*, STATE_*, the file-command paths) and stdout captured. Stdout
 * goes to a regular file, written synchronously by node, so its content at any moment is what
 * the step printed so far. With `watch`, GITHUB_ENV and GITHUB_OUTPUT are FIFOs: the first bytes
 * arriving on one take a snapshot of stdout, which shows what had been masked before any value
 * was written (the action writes each of them once).
 */
export async function runActionStep(
  dir: string,
  env: NodeJS.ProcessEnv,
  options: { watch?: boolean } = {},
): Promise<StepRun> {
  const paths = {
    GITHUB_ENV: join(dir, 'env'),
    GITHUB_OUTPUT: join(dir, 'output'),
    GITHUB_STATE: join(dir, 'state'),
  } satisfies Record<FileName, string>;
  const stdoutFile = join(dir, 'stdout');
  writeFileSync(stdoutFile, '');
  const watched: ('GITHUB_ENV' | 'GITHUB_OUTPUT')[] = options.watch ? ['GITHUB_ENV', 'GITHUB_OUTPUT'] : [];
  writeFileSync(paths.GITHUB_STATE, '');
  for (const name of ['GITHUB_ENV', 'GITHUB_OUTPUT'] as const) {
    if (watched.includes(name)) execFileSync('mkfifo', [paths[name]]);
    else writeFileSync(paths[name], '');
  }
  const stdoutAtFirstWrite: StepRun['stdoutAtFirstWrite'] = {};
  const fifoText: Partial<Record<FileName, string>> = {};
  const drained = watched.map(
    (name) =>
      new Promise<void>((done, fail) => {
        let text = '';
        createReadStream(paths[name], 'utf8')
          .on('data', (chunk) => {
            stdoutAtFirstWrite[name] ??= readFileSync(stdoutFile, 'utf8');
            text += chunk;
          })
          .on('end', () => {
            fifoText[name] = text;
            done();
          })
          .on('error', fail);
      }),
  );
  const out = openSync(stdoutFile, 'w');
  const child = spawn(process.execPath, [join(ACTION_DIR, 'dist', 'index.mjs')], {
    env: { ...env, ...paths },
    stdio: ['ignore', out, 'pipe'],
  });
  closeSync(out);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  // A FIFO the step never opened still has our reader blocked in open(): an empty writer ends it.
  for (const name of watched) {
    try {
      closeSync(openSync(paths[name], constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      /* ENXIO: its reader is already done */
    }
  }
  await Promise.all(drained);
  const read = (name: FileName) => fifoText[name] ?? readFileSync(paths[name], 'utf8');
  return {
    code,
    stdout: readFileSync(stdoutFile, 'utf8'),
    stderr,
    files: { GITHUB_ENV: read('GITHUB_ENV'), GITHUB_OUTPUT: read('GITHUB_OUTPUT'), GITHUB_STATE: read('GITHUB_STATE') },
    stdoutAtFirstWrite,
  };
}

export interface TokenEndpoint {
  /** ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN for the step. */
  env: { ACTIONS_ID_TOKEN_REQUEST_URL: string; ACTIONS_ID_TOKEN_REQUEST_TOKEN: string };
  /** Audiences asked for, one per request that carried the runner's bearer. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * The runner's OIDC token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL): answers `{"value": jwt}` for
 * the audience in the query to a request bearing ACTIONS_ID_TOKEN_REQUEST_TOKEN, else 401.
 */
export async function startTokenEndpoint(mint: (audience: string) => Promise<string>): Promise<TokenEndpoint> {
  const bearer = `runner-${crypto.randomUUID()}`;
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://runner');
    if (
      req.headers.authorization !== `Bearer ${bearer}` ||
      url.pathname !== '/idtoken' ||
      url.searchParams.get('api-version') !== '2.0'
    )
      return void res.writeHead(401).end();
    const audience = url.searchParams.get('audience') ?? '';
    requests.push(audience);
    mint(audience).then(
      (value) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: 1, value })),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('token endpoint has no TCP address');
  return {
    env: {
      ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${address.port}/idtoken?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: bearer,
    },
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
