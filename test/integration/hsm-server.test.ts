import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from '../helpers.js';
import { createToken, describeHsm, HSM_PIN, kekUri, PIN_ENV } from '../hsm.js';
import { CLI, startServerProcess } from './server-process.js';

const run = promisify(execFile);

/** `coffer hsm init` and `coffer server --kek pkcs11:…` as real processes on SoftHSM2. */
describeHsm('coffer server on an HSM', function (this: Mocha.Suite) {
  this.timeout(60_000);
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('coffer-hsm-server-');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const env = () => ({ ...process.env, [PIN_ENV]: HSM_PIN });
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    run(process.execPath, [CLI, ...args], { env: { ...env(), ...extra } }).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );

  it('hsm init, then a dev server that auto-unseals from the token across restarts', async () => {
    const kek = kekUri([createToken().label]);
    const init = await cli(['hsm', 'init', '--kek', kek, '--json']);
    assert.equal(init.code, 0, init.out);
    assert.deepEqual(JSON.parse(init.out).version, 1);
    const again = await cli(['hsm', 'init', '--kek', kek]);
    assert.equal(again.code, 1);
    assert.match(again.out, /already holds key "master": refusing to overwrite/);

    let server = await startServerProcess(['--dev', '--data-dir', dir, '--kek', kek], env());
    const auth = {
      Authorization: `Bearer ${(await readFile(join(dir, 'root-token'), 'utf8')).trim()}`,
      'Content-Type': 'application/json',
    };
    try {
      assert.equal(
        ((await (await fetch(`${server.url}/v1/sys/seal-status`)).json()) as { provider: string }).provider,
        'pkcs11',
      );
      assert.equal(
        (
          await fetch(`${server.url}/v1/secrets/app/x`, {
            method: 'PUT',
            headers: auth,
            body: '{"data":{"k":"in the hsm"}}',
          })
        ).status,
        200,
      );
    } finally {
      await server.kill('SIGTERM');
    }
    server = await startServerProcess(['--dev', '--data-dir', dir, '--kek', kek], env());
    try {
      const res = await fetch(`${server.url}/v1/secrets/app/x`, { headers: auth });
      assert.equal(((await res.json()) as { data: { k: string } }).data.k, 'in the hsm');
    } finally {
      await server.kill('SIGTERM');
    }
    assert.ok(!server.output().includes(HSM_PIN), 'the PIN is never logged');

    const wrongPin = await cli(['server', '--dev', '--data-dir', dir, '--listen', '127.0.0.1:0', '--kek', kek], {
      [PIN_ENV]: '1111-2222',
    });
    assert.equal(wrongPin.code, 1);
    assert.match(wrongPin.out, /refused the PIN/);
    assert.ok(!wrongPin.out.includes('1111-2222'), 'not even a wrong PIN is echoed');
  });

  it('refuses a PIN written into the URI, and a missing module, before touching anything', async () => {
    const inline = await cli([
      'server',
      '--data-dir',
      dir,
      '--listen',
      '127.0.0.1:0',
      '--kek',
      'pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=a;key=master;pin=9876-5432',
    ]);
    assert.equal(inline.code, 1);
    assert.match(inline.out, /unknown attribute "pin"/);
    assert.ok(!inline.out.includes('9876-5432'));
    const module = await cli([
      'hsm',
      'init',
      '--kek',
      `pkcs11:module=/opt/none/libhsm.so;token=a;key=master;pin-env=${PIN_ENV}`,
    ]);
    assert.equal(module.code, 1);
    assert.match(module.out, /PKCS#11 module \/opt\/none\/libhsm.so does not exist/);
  });
});
