import { randomBytes } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { CofferError } from '../../sdk/errors.js';
import { client, type GlobalArgs } from '../context.js';
import { buildEnv, fetchSecrets } from '../env.js';

/** dotenv: double-quoted, with \\, ", $, ` and newlines escaped. */
export const dotenvLine = (name: string, value: string) =>
  `${name}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '\\$').replace(/`/g, '\\`').replace(/\r/g, '\\r').replace(/\n/g, '\\n')}"`;

/** POSIX shell: single quotes, each ' written as '\'' (newlines survive inside the quotes). */
export const shellLine = (name: string, value: string) => `export ${name}='${value.replace(/'/g, `'\\''`)}'`;

/** GitHub Actions $GITHUB_ENV heredoc, with a delimiter that cannot occur in the value. */
export function githubEnvBlock(name: string, value: string): string {
  let delimiter: string;
  do delimiter = `ghadelimiter_${randomBytes(16).toString('hex')}`;
  while (value.includes(delimiter));
  return `${name}<<${delimiter}\n${value}\n${delimiter}\n`;
}

export function exportCommand(yargs: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return yargs.command(
    'export',
    'Print secrets as dotenv, json or shell, or hand them to GitHub Actions',
    (y) =>
      y
        .option('path', { type: 'string', array: true, demandOption: true })
        .option('format', { choices: ['dotenv', 'json', 'shell', 'github'] as const, demandOption: true })
        .option('prefix-env', { type: 'string', default: '' })
        .option('map', { type: 'string', array: true, default: [] as string[] })
        .option('allow-env', { type: 'string', array: true, default: [] as string[] })
        .example('coffer export --path ci/api/db --format github', 'in a GitHub Actions step: masked and exported to later steps'),
    async (argv) => {
      const env = buildEnv(await fetchSecrets(await client(argv), argv.path), { map: argv.map, prefix: argv.prefixEnv, allow: argv.allowEnv });
      switch (argv.format) {
        case 'json':
          process.stdout.write(`${JSON.stringify(Object.fromEntries(env), null, 2)}\n`);
          return;
        case 'dotenv':
          for (const [k, v] of env) process.stdout.write(`${dotenvLine(k, v)}\n`);
          return;
        case 'shell':
          for (const [k, v] of env) process.stdout.write(`${shellLine(k, v)}\n`);
          return;
        case 'github': {
          const file = process.env.GITHUB_ENV;
          if (!file) throw new CofferError('invalid_request', 'GITHUB_ENV is not set: --format github runs inside a GitHub Actions step', 0);
          for (const v of env.values()) for (const line of v.split(/\r?\n/)) if (line.trim()) process.stdout.write(`::add-mask::${line}\n`);
          await appendFile(file, [...env].map(([k, v]) => githubEnvBlock(k, v)).join(''));
          return;
        }
      }
    },
  );
}
