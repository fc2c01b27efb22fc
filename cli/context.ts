import { randomBytes } from 'node:crypto';
// fs.promises at each call, not node:fs/promises: see sdk/client.ts.
import { existsSync, promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Coffer, readTokenFile, tlsFromEnv } from '../sdk/client.js';
import { CofferError } from '../sdk/errors.js';
import { isLoopback, nodeHttpTransport } from '../sdk/transport.js';
import { CliError } from './errors.js';
import type { Deps, GlobalArgs, IO } from './io.js';

export type { GlobalArgs };

/** Exit codes. `sealed` shares 2 with `usage` on purpose: `vault status` exits 2 when sealed. */
export const EXIT = { ok: 0, error: 1, usage: 2, sealed: 2, auth: 3, notFound: 4, unavailable: 5 } as const;

/** Where `coffer login` keeps the token: `$XDG_CONFIG_HOME/coffer/token` or `~/.config/coffer/token`. */
export function tokenFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'coffer', 'token');
}

/**
 * Saves the login token with mode 0600 in a 0700 directory: written to a new file (O_EXCL, so no
 * symlink or wider file is followed) and renamed over the old one, never rewritten in place.
 */
export async function storeToken(token: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const file = tokenFile(env);
  const dir = dirname(file);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.chmod(dir, 0o700);
  const temp = join(dir, `.token-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await fs.writeFile(temp, `${token}\n`, { mode: 0o600, flag: 'wx' });
    await fs.rename(temp, file);
  } catch (e) {
    await fs.rm(temp, { force: true });
    throw e;
  }
  return file;
}

export async function forgetToken(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await fs.rm(tokenFile(env), { force: true });
}

/** Where the token a command uses came from (precedence in `resolveToken`). */
export type TokenSource = 'flag' | 'env' | 'file' | 'stored';

/**
 * Token precedence: --token, then COFFER_TOKEN, then the file named by COFFER_TOKEN_FILE (mode
 * checked: a bad file is an error, never skipped), then the stored login token.
 */
export async function resolveToken(
  args: GlobalArgs,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ token: string; source: TokenSource } | undefined> {
  if (args.token) return { token: args.token, source: 'flag' };
  if (env.COFFER_TOKEN) return { token: env.COFFER_TOKEN, source: 'env' };
  if (env.COFFER_TOKEN_FILE)
    return { token: readTokenFile(env.COFFER_TOKEN_FILE, 'COFFER_TOKEN_FILE'), source: 'file' };
  const stored = tokenFile(env);
  // The stored token is held to the same rules as COFFER_TOKEN_FILE (0600, one line, not empty).
  return existsSync(stored)
    ? { token: readTokenFile(stored, `the stored login token (coffer login)`), source: 'stored' }
    : undefined;
}

export async function client(args: GlobalArgs, env: NodeJS.ProcessEnv = process.env): Promise<Coffer> {
  const token = (await resolveToken(args, env))?.token;
  const addr = args.addr || env.COFFER_ADDR || 'http://127.0.0.1:8740';
  const url = new URL(addr);
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
    throw new CliError('invalid_input', `refusing to send a token over plain http to ${url.host}: use https://`);
  }
  // COFFER_CACERT, COFFER_CLIENT_CERT/COFFER_CLIENT_KEY (mTLS), COFFER_TLS_SERVER_NAME: read here,
  // so a missing file fails before anything is sent, naming the variable.
  const tls = await tlsFromEnv({}, env);
  // node:http(s) instead of fetch: the CLI is a short-lived process and fetch costs ~90 ms to load.
  return new Coffer({ addr, token, transport: nodeHttpTransport(tls) });
}

/** The seam of the real `coffer`: the given IO, and clients built from the flags and `io.env`. */
export const depsOf = (io: IO): Deps => ({
  io,
  client: (args) => client(args, io.env),
  exitCode: (code) => void (process.exitCode = code),
});

/** Prints `value` as JSON with --json, else the human text. */
export function output(io: IO, args: GlobalArgs, value: unknown, human: () => string): void {
  if (args.json) io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else if (!args.quiet) {
    const text = human();
    if (text) io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }
}

/** One line on stderr saying what went wrong and what to do next, and the exit code for it. */
export function explain(error: unknown): { message: string; code: number } {
  if (error instanceof CliError) return { message: error.message, code: error.exitCode };
  if (!(error instanceof CofferError))
    return { message: error instanceof Error ? error.message : String(error), code: EXIT.error };
  switch (error.code) {
    case 'unavailable':
      return { message: `${error.message}. Is the server running? Set COFFER_ADDR or --addr.`, code: EXIT.unavailable };
    case 'sealed':
      return { message: 'the vault is sealed: run `coffer unseal`', code: EXIT.unavailable };
    case 'not_initialized':
      return { message: 'the vault is not initialized: run `coffer init`', code: EXIT.unavailable };
    case 'unauthenticated':
      // A refused `coffer login` (cli/commands/auth.ts) carries the server's reason: print it and
      // the request id an operator can find in the server log, not advice to log in.
      if (error.message.startsWith('login failed:'))
        return {
          message: `${error.message}${error.requestId ? ` (request id ${error.requestId})` : ''}`,
          code: EXIT.auth,
        };
      return { message: `${error.message}: run \`coffer login\` or set COFFER_TOKEN`, code: EXIT.auth };
    case 'forbidden':
      return { message: `${error.message}: ask an administrator for a policy that grants it`, code: EXIT.auth };
    case 'not_found':
      return { message: error.message, code: EXIT.notFound };
    case 'rate_limited':
      return { message: error.message, code: EXIT.unavailable };
    case 'storage_full':
    case 'storage_unavailable':
      return {
        message: `${error.message}: nothing was written; reads still work. An operator must free space or fix the server's data disk`,
        code: EXIT.unavailable,
      };
    case 'backup_corrupt':
      return { message: `${error.message}. Nothing was restored; use an intact copy of the backup`, code: EXIT.error };
    case 'backup_foreign':
      return { message: `${error.message}. Nothing was restored`, code: EXIT.error };
    case 'not_empty':
      return { message: `${error.message}. Nothing was written`, code: EXIT.error };
    default:
      return { message: error.message, code: EXIT.error };
  }
}

export const relative = (iso: string | null, now = Date.now()): string => {
  if (!iso) return 'never';
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs === 0) return 'just now';
  const text =
    abs < 90
      ? `${abs}s`
      : abs < 5400
        ? `${Math.round(abs / 60)}m`
        : abs < 172_800
          ? `${Math.round(abs / 3600)}h`
          : `${Math.round(abs / 86_400)}d`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
};
