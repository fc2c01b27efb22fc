import { readFile, stat } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { loginGithubActions, loginGitlab, loginKubernetes } from '../../sdk/ci-login.js';
import { CofferError } from '../../sdk/errors.js';
import type { LoginResult } from '../../sdk/wire/types.js';
import { forgetToken, output, relative, resolveToken, storeToken, type GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import type { Deps, IO } from '../io.js';

/**
 * A credential from a file (`--password-file`, `--secret-id-file`): refused if other users may
 * read it, like the server's key files; the trailing newline is trimmed.
 */
async function readSecretFile(flag: string, file: string): Promise<string> {
  const info = await stat(file).catch(() => {
    throw new CliError('invalid_input', `${flag} ${file}: no such file`);
  });
  if (!info.isFile()) throw new CliError('invalid_input', `${flag} ${file}: not a regular file`);
  if ((info.mode & 0o077) !== 0) {
    throw new CliError(
      'invalid_input',
      `${flag} ${file} is accessible by other users (mode ${(info.mode & 0o777).toString(8)}): run chmod 600 ${file}`,
    );
  }
  const value = (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
  if (!value) throw new CliError('invalid_input', `${flag} ${file} is empty`);
  return value;
}

const fromEnvOrFile = async (io: IO, what: string, env?: string, file?: string, checkMode = true): Promise<string> => {
  const flag = `--${what.replace(/ /g, '-')}-file`;
  if (file) return checkMode ? readSecretFile(flag, file) : (await readFile(file, 'utf8')).trim();
  const value = env ? io.env[env] : undefined;
  if (!value) throw new CliError('invalid_input', `${what} is required: pass ${flag} or set ${env}`);
  return value;
};

/** A refused login says so, with the server's reason (and the request id, via explain()). */
const loginFailed = (e: unknown): never => {
  if (e instanceof CofferError && e.code === 'unauthenticated')
    throw new CofferError('unauthenticated', `login failed: ${e.message}`, e.status, e.requestId);
  throw e;
};

export function authCommands(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  const finish = async (argv: GlobalArgs & { store?: boolean }, result: LoginResult) => {
    const where = argv.store === false ? undefined : await storeToken(result.token, deps.io.env);
    output(
      deps.io,
      argv,
      { ...result, token: argv.store === false ? result.token : undefined, stored_in: where },
      () =>
        `logged in as ${result.identity} (groups: ${result.groups.join(', ') || 'none'}), token expires ${relative(result.expires_at)}${where ? `; saved to ${where}` : `\n${result.token}`}`,
    );
  };
  return yargs
    .command(
      'login <method> [username]',
      'Log in and store the token (~/.config/coffer/token, mode 0600)',
      (y) =>
        y
          .positional('method', {
            choices: ['token', 'userpass', 'approle', 'jwt', 'github', 'gitlab', 'kubernetes'] as const,
            demandOption: true,
          })
          .option('audience', { type: 'string', default: 'coffer', describe: 'github: audience to request' })
          .option('token-path', { type: 'string', describe: 'kubernetes: service-account token file' })
          .positional('username', { type: 'string', describe: 'userpass: the user (or --username)' })
          .option('password-env', {
            type: 'string',
            default: 'COFFER_PASSWORD',
            describe: 'variable holding the password',
          })
          .option('password-file', { type: 'string', describe: 'userpass: file holding the password (mode 0600)' })
          .option('role', { type: 'string', describe: 'approle role_id or jwt role name' })
          .option('secret-id-env', {
            type: 'string',
            default: 'COFFER_SECRET_ID',
            describe: 'approle: variable holding the secret_id',
          })
          .option('secret-id-file', { type: 'string', describe: 'approle: file holding the secret_id (mode 0600)' })
          .option('jwt-file', { type: 'string', describe: 'file holding the CI identity token' })
          .option('jwt-env', { type: 'string', default: 'COFFER_JWT' })
          .option('store', {
            type: 'boolean',
            default: true,
            describe: 'save the token (--no-store prints it instead)',
          })
          .example('COFFER_PASSWORD=… coffer login userpass alice', 'people (passwords are at least 12 characters)')
          .example(
            'coffer login approle --role "$ROLE_ID" --secret-id-file /run/secrets/coffer-sid',
            'build servers without OIDC',
          )
          .example('coffer login jwt --role github-api --jwt-env ACTIONS_ID_TOKEN', 'CI jobs'),
      async (argv) => {
        const c = await deps.client(argv);
        if (argv.username !== undefined && argv.method !== 'userpass')
          throw new CliError('invalid_input', `a username is for userpass logins only, not ${argv.method}`);
        switch (argv.method) {
          case 'token': {
            const used = await resolveToken(argv, deps.io.env);
            if (!used)
              throw new CliError(
                'invalid_input',
                'no token to check: pass --token, or set COFFER_TOKEN or COFFER_TOKEN_FILE',
              );
            // The client checks exactly the token that is stored (one read of COFFER_TOKEN_FILE).
            const self = await (await deps.client({ ...argv, token: used.token })).tokenSelf();
            if (argv.store && used.source !== 'stored') await storeToken(used.token, deps.io.env);
            output(
              deps.io,
              argv,
              self,
              () => `token of ${self.identity} is valid, expires ${relative(self.expires_at)}`,
            );
            return;
          }
          case 'userpass': {
            if (!argv.username)
              throw new CliError('invalid_input', 'a username is required: coffer login userpass alice');
            const password = await fromEnvOrFile(deps.io, 'password', argv.passwordEnv, argv.passwordFile);
            return finish(argv, await c.loginUserpass(argv.username, password).catch(loginFailed));
          }
          case 'approle': {
            if (!argv.role) throw new CliError('invalid_input', '--role (the role_id) is required');
            const secretId = await fromEnvOrFile(deps.io, 'secret id', argv.secretIdEnv, argv.secretIdFile);
            return finish(argv, await c.loginAppRole(argv.role, secretId).catch(loginFailed));
          }
          case 'jwt': {
            if (!argv.role) throw new CliError('invalid_input', '--role is required');
            const jwt = await fromEnvOrFile(deps.io, 'jwt', argv.jwtEnv, argv.jwtFile, false); // CI token files are often 0644
            return finish(argv, await c.loginJwt(argv.role, jwt).catch(loginFailed));
          }
          case 'github':
          case 'gitlab':
          case 'kubernetes': {
            if (!argv.role) throw new CliError('invalid_input', '--role is required');
            const role = argv.role;
            const result = await (
              argv.method === 'github'
                ? loginGithubActions(c, { role, audience: argv.audience, env: deps.io.env })
                : argv.method === 'gitlab'
                  ? loginGitlab(c, {
                      role,
                      tokenEnv: argv.jwtEnv === 'COFFER_JWT' ? undefined : argv.jwtEnv,
                      env: deps.io.env,
                    })
                  : loginKubernetes(c, { role, ...(argv.tokenPath ? { tokenPath: argv.tokenPath } : {}) })
            ).catch(loginFailed);
            return finish(argv, result);
          }
        }
      },
    )
    .command(
      'logout',
      'Revoke the stored token and forget it',
      (y) => y.example('coffer logout', 'revoke ~/.config/coffer/token and delete it'),
      async (argv) => {
        // The stored token only (never a --token or COFFER_TOKEN given alongside), and forgotten
        // only once the server no longer honours it: revoked now, or already invalid.
        const stored = await resolveToken({}, { ...deps.io.env, COFFER_TOKEN: '', COFFER_TOKEN_FILE: '' });
        if (stored) {
          await (await deps.client({ ...argv, token: stored.token })).revoke().catch((e: unknown) => {
            if (!(e instanceof CofferError && e.code === 'unauthenticated')) throw e;
          });
          await forgetToken(deps.io.env);
        }
        output(deps.io, argv, { logged_out: true }, () => (stored ? 'logged out' : 'not logged in: no stored token'));
      },
    )
    .command(
      'token <action>',
      'Inspect, renew, revoke or create tokens',
      (y) =>
        y
          .positional('action', { choices: ['self', 'renew', 'revoke', 'create'] as const, demandOption: true })
          .option('identity', { type: 'string', describe: "create: the new token's identity" })
          .option('groups', { type: 'string', array: true, default: [] as string[] })
          .option('policies', { type: 'string', array: true, default: [] as string[] })
          .option('ttl', {
            type: 'string',
            describe: 'create: lifetime (default 1h, cut to what your token may grant)',
          })
          .option('max-ttl', { type: 'string', describe: 'create: how far renewals may extend it (default: the TTL)' })
          .option('orphan', {
            type: 'boolean',
            default: false,
            describe:
              "create: outside your token's tree, so revoking yours leaves it (needs admin on sys/auth/token/create-orphan)",
          })
          .example('coffer token self', 'who the current token is, its groups and expiry')
          .example('coffer token renew', 'extend the current token in place (up to its max TTL)')
          .example(
            'coffer token create --identity svc:deploy --policies deploy --ttl 15m',
            'a short-lived child token for a job',
          )
          .example('coffer token revoke', 'revoke the current token (and its children)'),
      async (argv) => {
        const c = await deps.client(argv);
        switch (argv.action) {
          case 'self': {
            const self = await c.tokenSelf();
            return void output(
              deps.io,
              argv,
              self,
              () =>
                `${self.identity}  groups: ${self.groups.join(', ') || 'none'}  expires ${relative(self.expires_at)}`,
            );
          }
          case 'renew': {
            // The server extends the same token in place: the stored token (if any) stays as it is.
            const renewed = await c.renew();
            return void output(
              deps.io,
              argv,
              { expires_at: renewed.expires_at },
              () => `renewed, expires ${relative(renewed.expires_at)}`,
            );
          }
          case 'revoke': {
            // The stored login token is forgotten only if it is the one revoked (not a --token or COFFER_TOKEN).
            const used = await resolveToken(argv, deps.io.env);
            await c.revoke();
            if (used?.source === 'stored') await forgetToken(deps.io.env);
            return void output(deps.io, argv, { revoked: true }, () => 'revoked');
          }
          case 'create': {
            if (!argv.identity) throw new CliError('invalid_input', '--identity is required');
            const made = await c.createToken({
              identity: argv.identity,
              groups: argv.groups,
              policies: argv.policies,
              ...(argv.ttl !== undefined ? { ttl: argv.ttl } : {}),
              ...(argv.maxTtl !== undefined ? { max_ttl: argv.maxTtl } : {}),
              ...(argv.orphan ? { orphan: true } : {}),
            });
            return void output(deps.io, argv, made, () => made.token);
          }
        }
      },
    );
}
