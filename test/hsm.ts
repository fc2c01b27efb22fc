import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openVault, type TestVault, type VaultOptions } from './helpers.js';
import { parsePkcs11Uri } from '../server/keys/pkcs11/uri.js';
import { initHsmKey } from '../server/keys/pkcs11/init.js';

/**
 * SoftHSM2 for tests: one token store per test process (SOFTHSM2_CONF points into a temp dir,
 * set before the library is first initialised), a fresh token per test. Without SoftHSM2 the
 * HSM tests skip with one loud line, unless COFFER_REQUIRE_HSM=1 (CI) makes them fail.
 */
export const SOFTHSM_MODULE = process.env.COFFER_TEST_PKCS11_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';
export const HSM_PIN = '4821-0097';
export const PIN_ENV = 'COFFER_TEST_HSM_PIN';
const SO_PIN = '7305-1168';

function softhsmUtil(): string | undefined {
  for (const dir of ['/usr/bin', '/usr/local/bin'])
    if (existsSync(join(dir, 'softhsm2-util'))) return join(dir, 'softhsm2-util');
  return undefined;
}

export const hsmAvailable = existsSync(SOFTHSM_MODULE) && softhsmUtil() !== undefined;
let warned = false;

/** `describe` for HSM tests: skips loudly without SoftHSM2, fails under COFFER_REQUIRE_HSM=1. */
export function describeHsm(title: string, body: () => void): void {
  if (hsmAvailable) {
    describe(title, body);
    return;
  }
  if (process.env.COFFER_REQUIRE_HSM === '1') {
    describe(title, () => {
      it('needs SoftHSM2', () => {
        throw new Error(
          `COFFER_REQUIRE_HSM=1 but SoftHSM2 is missing (${SOFTHSM_MODULE}, softhsm2-util): apt-get install -y softhsm2`,
        );
      });
    });
    return;
  }
  if (!warned) {
    warned = true;
    console.warn(
      `\n  !!! SKIPPING HSM TESTS: SoftHSM2 not found (${SOFTHSM_MODULE}); apt-get install -y softhsm2 to run them !!!\n`,
    );
  }
  describe.skip(title, body);
}

let tokenDir: string | undefined;

/** The process's token store (created once, before any library initialisation). */
export function hsmTokenDir(): string {
  if (!tokenDir) {
    const root = mkdtempSync(join(tmpdir(), 'coffer-softhsm-'));
    tokenDir = join(root, 'tokens');
    execFileSync('mkdir', ['-p', tokenDir]);
    const conf = join(root, 'softhsm2.conf');
    writeFileSync(
      conf,
      `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
    );
    process.env.SOFTHSM2_CONF = conf;
  }
  process.env[PIN_ENV] = HSM_PIN;
  return tokenDir;
}

let counter = 0;
/**
 * SoftHSM2 sees only the tokens that existed when its library was initialised, and the library
 * stays initialised while any vault in this process uses it; so tokens come from a pool made
 * before the first initialisation.
 */
const POOL_SIZE = 64; // the whole suite uses about 35
const pool: { label: string; dir: string }[] = [];
let pooled = false;

function initToken(label: string): { label: string; dir: string } {
  const dir = hsmTokenDir();
  const before = new Set(readdirSync(dir));
  execFileSync(softhsmUtil()!, ['--init-token', '--free', '--label', label, '--so-pin', SO_PIN, '--pin', HSM_PIN], {
    stdio: 'ignore',
    env: process.env,
  });
  const created = readdirSync(dir).find((d) => !before.has(d));
  if (!created) throw new Error(`softhsm2-util did not create token ${label}`);
  return { label, dir: join(dir, created) };
}

/** A fresh, empty token: its label and the directory SoftHSM2 keeps it in. */
export function createToken(): { label: string; dir: string } {
  if (!pooled) {
    pooled = true;
    for (let i = 0; i < POOL_SIZE; i++) pool.push(initToken(`t${process.pid}-${++counter}`));
  }
  const token = pool.shift();
  if (!token) throw new Error(`the SoftHSM2 token pool (${POOL_SIZE}) is used up: raise POOL_SIZE in test/hsm.ts`);
  return token;
}

export function kekUri(tokens: string[], key = 'master', pin = `pin-env=${PIN_ENV}`): string {
  return `pkcs11:module=${SOFTHSM_MODULE};token=${tokens.join(',')};key=${key};${pin}`;
}

export const hsmEnv = (): NodeJS.ProcessEnv => ({ [PIN_ENV]: HSM_PIN });

/** A token with master key version 1 generated in it; returns the `--kek` URI. */
export function tokenWithKey(material?: Uint8Array): { uri: string; label: string; dir: string } {
  const token = createToken();
  const uri = kekUri([token.label]);
  initHsmKey(parsePkcs11Uri(uri), hsmEnv(), material);
  return { uri, ...token };
}

/** A vault whose master key lives in a fresh SoftHSM2 token (auto-unsealed from it). */
export async function openHsmVault(options: VaultOptions = {}): Promise<TestVault & { kek: string }> {
  const { uri } = tokenWithKey();
  const vault = await openVault({
    init: { shares: 3, threshold: 2 },
    ...options,
    source: { kind: 'pkcs11', uri },
    env: { ...hsmEnv(), ...options.env },
  });
  return Object.assign(vault, { kek: uri });
}

/** Takes a token's store out of SoftHSM2's token directory (the HSM "goes away"); returns a restore. */
export function removeToken(token: { dir: string }): () => void {
  const parked = join(dirname(dirname(token.dir)), `removed-${basename(token.dir)}`);
  renameSync(token.dir, parked);
  return () => renameSync(parked, token.dir);
}
