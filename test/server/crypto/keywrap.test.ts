import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { wrapForImport } from '../../../sdk/byok.js';
import { unwrapImport } from '../../../server/crypto/keywrap.js';
import { tempDir } from '../../helpers.js';
import { keyPair } from '../../key-pairs.js';

describe('BYOK wrap format (RSA-OAEP + AES-KWP)', function () {
  this.timeout(30_000);
  const pair = keyPair('rsa', { modulusLength: 3072 });
  const other = keyPair('rsa', { modulusLength: 3072 });
  const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const material = new Uint8Array(randomBytes(32));

  it('round-trips with SHA-256 and SHA-1 OAEP', () => {
    assert.deepEqual(unwrapImport(pair.privateKey, wrapForImport(pem, material), 'sha256'), material);
    assert.deepEqual(unwrapImport(pair.privateKey, wrapForImport(pem, material, 'sha1'), 'sha1'), material);
  });

  it('unwraps a bundle built with the openssl command line', async () => {
    const dir = await tempDir('coffer-byok-');
    try {
      const ephemeral = randomBytes(32);
      writeFileSync(join(dir, 'pub.pem'), pem);
      writeFileSync(join(dir, 'eph.bin'), ephemeral);
      writeFileSync(join(dir, 'material.bin'), material);
      execFileSync('openssl', [
        'pkeyutl',
        '-encrypt',
        '-pubin',
        '-inkey',
        join(dir, 'pub.pem'),
        '-pkeyopt',
        'rsa_padding_mode:oaep',
        '-pkeyopt',
        'rsa_oaep_md:sha256',
        '-pkeyopt',
        'rsa_mgf1_md:sha256',
        '-in',
        join(dir, 'eph.bin'),
        '-out',
        join(dir, 'eph.wrapped'),
      ]);
      execFileSync('openssl', [
        'enc',
        '-id-aes256-wrap-pad',
        '-K',
        ephemeral.toString('hex'),
        '-iv',
        'A65959A6',
        '-in',
        join(dir, 'material.bin'),
        '-out',
        join(dir, 'material.wrapped'),
      ]);
      const bundle = Buffer.concat([
        readFileSync(join(dir, 'eph.wrapped')),
        readFileSync(join(dir, 'material.wrapped')),
      ]).toString('base64');
      assert.deepEqual(unwrapImport(pair.privateKey, bundle, 'sha256'), material);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bundle for another key, with the wrong hash, truncated, extended or bit-flipped, with one message', () => {
    const good = wrapForImport(pem, material);
    const bytes = Buffer.from(good, 'base64');
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 3]! ^= 1;
    const attempts: [string, () => unknown][] = [
      ['other key', () => unwrapImport(other.privateKey, good, 'sha256')],
      ['wrong hash', () => unwrapImport(pair.privateKey, good, 'sha1')],
      [
        'truncated',
        () => unwrapImport(pair.privateKey, bytes.subarray(0, bytes.length - 8).toString('base64'), 'sha256'),
      ],
      [
        'extended',
        () => unwrapImport(pair.privateKey, Buffer.concat([bytes, Buffer.alloc(8)]).toString('base64'), 'sha256'),
      ],
      ['flipped', () => unwrapImport(pair.privateKey, flipped.toString('base64'), 'sha256')],
      ['not base64', () => unwrapImport(pair.privateKey, '%%%', 'sha256')],
    ];
    for (const [name, attempt] of attempts) assert.throws(attempt, /could not be unwrapped/, name);
  });

  it('refuses weak wrapping keys and wrong material lengths on the customer side', () => {
    const small = keyPair('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    assert.throws(() => wrapForImport(small, material), /at least 3072/);
    assert.throws(() => wrapForImport(pem, new Uint8Array(16)), /32 bytes/);
  });
});
