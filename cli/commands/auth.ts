import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { loginGithubActions, loginGitlab, loginKubernetes } from '../../sdk/ci-login.js';
import { CofferError } from '../../sdk/errors.js';
import type { LoginResult } from '../../sdk/wire/types.js';
import { client, forgetToken, output, relative, storeToken, type GlobalArgs } from '../context.js';

const fromEnvOrFile = async (what: string, env?: string, file?: string): Promise<string> => {
  if (file) return (await readFile(file, 'utf8')).trim();
  const value = env ? process.env[env] : undefined;
  if (!value) throw new CofferError('invalid_request', `${what} is required: pass --${what.replace(/ /g, '-')}-file or set ${env}`, 0);
  return value;
};

export function authCommands(yargs: Argv<GlobalArgs>): Argv<GlobalArgs> {
  const finish = async (argv: GlobalArgs & { store?: boolean }, result: LoginResult) => {
    const where = argv.store === false ? undefined : await storeToken(result.token);
    output(argv, { ...result, token: argv.store === false ? result.token : undefined, stored_in: where }, () =>
      `logged in as ${result.identity} (groups: ${result.groups.join(', ') || 'none'}), token expires ${relative(result.expires_at)}${where ? `; saved to ${where}` : `\n${result.token}`}`,
    );
  };
  return yargs
    .command(
      'login <method>',
      'Log in and store the token (~/.config/coffer/token, mode 0600)',
      (y) =>
        y
          .positional('method', { choices: ['token', 'userpass', 'approle', 'jwt', 'github', 'gitlab', 'kubernetes'] as const, demandOption: true })
          .option('audience', { type: 'string', default: 'coffer', describe: 'github: audience to request' })
          .option('token-path', { type: 'string', describe: 'kubernetes: service-account token file' })
          .option('username', { type: 'string' })
          .option('password-env', { type: 'string', default: 'COFFER_PASSWORD', describe: 'variable holding the password' })
          .option('role', { type: 'string', describe: 'approle role_id or jwt role name' })
          .option('secret-id-env', { type: 'string', default: 'COFFER_SECRET_ID' })
          .option('jwt-file', { type: 'string', describe: 'file holding the CI identity token' })
          .option('jwt-env', { type: 'string', default: 'COFFER_JWT' })
          .option('store', { type: 'boolean', default: true, describe: 'save the token (--no-store prints it instead)' })
          .example('COFFER_PASSWORD=… coffer login userpass --username alice', 'people')
          .example('coffer login jwt --role github-api --jwt-env ACTIONS_ID_TOKEN', 'CI jobs'),
      async (argv) => {
        const c = await client(argv);
        switch (argv.method) {
          case 'token': {
            const self = await c.tokenSelf();
            if (argv.store) await storeToken((argv.token ?? process.env.COFFER_TOKEN)!);
            output(argv, self, () => `token of ${self.identity} is valid, expires ${relative(self.expires_at)}`);
            return;
          }
          case 'userpass': {
            if (!argv.username) throw new CofferError('invalid_request', '--username is required', 0);
            return finish(argv, await c.loginUserpass(argv.username, await fromEnvOrFile('password', argv.passwordEnv)));
          }
          case 'approle': {
            if (!argv.role) throw new CofferError('invalid_request', '--role (the role_id) is required', 0);
            return finish(argv, await c.loginAppRole(argv.role, await fromEnvOrFile('secret id', argv.secretIdEnv)));
          }
          case 'jwt': {
            if (!argv.role) throw new CofferError('invalid_request', '--role is required', 0);
            return finish(argv, await c.loginJwt(argv.role, await fromEnvOrFile('jwt', argv.jwtEnv, argv.jwtFile)));
          }
          case 'github':
          case 'gitlab':
          case 'kubernetes': {
            if (!argv.role) throw new CofferError('invalid_request', '--role is required', 0);
            const role = argv.role;
            const result =
              argv.method === 'github'
                ? await loginGithubActions(c, { role, audience: argv.audience })
                : argv.method === 'gitlab'
                  ? await loginGitlab(c, { role, tokenEnv: argv.jwtEnv === 'COFFER_JWT' ? undefined : argv.jwtEnv })
                  : await loginKubernetes(c, { role, ...(argv.tokenPath ? { tokenPath: argv.tokenPath } : {}) });
            return finish(argv, result);
          }
        }
      },
    )
    .command('logout', 'Revoke the stored token and forget it', (y) => y.example('coffer logout', 'revoke ~/.config/coffer/token and delete it'), async (argv) => {
      await (await client(argv)).revoke().catch(() => undefined);
      await forgetToken();
      output(argv, { logged_out: true }, () => 'logged out');
    })
    .command('token <action>', 'Inspect, renew, revoke or create tokens', (y) =>
      y
        .positional('action', { choices: ['self', 'renew', 'revoke', 'create'] as const, demandOption: true })
        .option('identity', { type: 'string', describe: 'create: the new token\'s identity' })
        .option('groups', { type: 'string', array: true, default: [] as string[] })
        .option('policies', { type: 'string', array: true, default: [] as string[] })
        .option('ttl', { type: 'string', describe: 'create: lifetime (default 1h, cut to what your token may grant)' })
        .option('max-ttl', { type: 'string', describe: 'create: how far renewals may extend it (default: the TTL)' })
        .option('orphan', { type: 'boolean', default: false, describe: 'create: outside your token\'s tree, so revoking yours leaves it (needs admin on sys/auth/token/create-orphan)' })
        .example('coffer token self', 'who the current token is, its groups and expiry')
        .example('coffer token renew', 'extend the current token in place (up to its max TTL)')
        .example('coffer token create --identity svc:deploy --policies deploy --ttl 15m', 'a short-lived child token for a job')
        .example('coffer token revoke', 'revoke the current token (and its children)'),
      async (argv) => {
        const c = await client(argv);
        switch (argv.action) {
          case 'self': {
            const self = await c.tokenSelf();
            return output(argv, self, () => `${self.identity}  groups: ${self.groups.join(', ') || 'none'}  expires ${relative(self.expires_at)}`);
          }
          case 'renew': {
            // The server extends the same token in place: the stored token (if any) stays as it is.
            const renewed = await c.renew();
            return output(argv, { expires_at: renewed.expires_at }, () => `renewed, expires ${relative(renewed.expires_at)}`);
          }
          case 'revoke':
            await c.revoke();
            await forgetToken();
            return output(argv, { revoked: true }, () => 'revoked');
          case 'create': {
            if (!argv.identity) throw new CofferError('invalid_request', '--identity is required', 0);
            const made = await c.createToken({
              identity: argv.identity,
              groups: argv.groups,
              policies: argv.policies,
              ...(argv.ttl !== undefined ? { ttl: argv.ttl } : {}),
              ...(argv.maxTtl !== undefined ? { max_ttl: argv.maxTtl } : {}),
              ...(argv.orphan ? { orphan: true } : {}),
            });
            return output(argv, made, () => made.token);
          }
        }
      },
    );
}
