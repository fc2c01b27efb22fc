import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as graphene from 'graphene-pk11';
import request from 'supertest';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { openVault, tempDir, type TestVault } from '../../helpers.js';
import {
  createToken,
  describeHsm,
  hsmEnv,
  HSM_PIN,
  kekUri,
  openHsmVault,
  PIN_ENV,
  removeToken,
  SOFTHSM_MODULE,
  tokenWithKey,
} from '../../hsm.js';
import { parsePkcs11Uri } from '../../../server/keys/pkcs11/uri.js';
import { initHsmKey } from '../../../server/keys/pkcs11/init.js';
import { Pkcs11Provider } from '../../../server/keys/pkcs11/provider.js';
import { isCofferError } from '../../../server/errors.js';
import { keyringKey } from '../../../server/store/keys.js';
import { Store } from '../../../server/store/db.js';
import { SealManager } from '../../../server/keys/seal.js';

const context = new TextEncoder().encode('test context');

function expectCoffer(code: string, pattern?: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(isCofferError(e, code as never), `expected ${code}, got ${String(e)}`);
    if (pattern) assert.match((e as Error).message, pattern);
    return true;
  };
}

/** A logger whose lines the test can read. */
function capturingLog() {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({ write: (chunk, _e, done) => (lines.push(JSON.parse(String(chunk))), done()) }),
  );
  return { log, lines };
}

describe('pkcs11 URIs', () => {
  it('parses module, tokens, key label and the PIN source; several modules join with |', () => {
    assert.deepEqual(parsePkcs11Uri('pkcs11:module=/usr/lib/a.so;token=A,B;key=master;pin-env=PIN'), {
      keyLabel: 'master',
      members: [
        { module: '/usr/lib/a.so', token: 'A', pin: { env: 'PIN' } },
        { module: '/usr/lib/a.so', token: 'B', pin: { env: 'PIN' } },
      ],
    });
    const two = parsePkcs11Uri(
      'pkcs11:module=/a.so;token=A;key=k;pin-env=P|pkcs11:module=/b.so;token=B;key=k;pin-file=/etc/pin',
    );
    assert.deepEqual(
      two.members.map((m) => [m.module, m.token, m.pin]),
      [
        ['/a.so', 'A', { env: 'P' }],
        ['/b.so', 'B', { file: '/etc/pin' }],
      ],
    );
  });

  const bad: [string, RegExp][] = [
    ['pkcs11:token=A;key=k;pin-env=P', /module must be an absolute path/],
    ['pkcs11:module=lib.so;token=A;key=k;pin-env=P', /module must be an absolute path/],
    ['pkcs11:module=/a.so;token=A;key=k;pin=1234', /unknown attribute "pin"/],
    ['pkcs11:module=/a.so;token=A;key=k', /PIN must come from pin-env=VAR or pin-file=PATH/],
    ['pkcs11:module=/a.so;token=A;key=k;pin-env=P;pin-file=/f', /not both/],
    ['pkcs11:module=/a.so;token=A;token=B;key=k;pin-env=P', /given twice/],
    ['pkcs11:module=/a.so;token=A,A;key=k;pin-env=P', /listed twice/],
    ['pkcs11:module=/a.so;token=;key=k;pin-env=P', /token must list/],
    ['pkcs11:module=/a.so;token=A;key=a/b;pin-env=P', /key must be a label/],
    ['pkcs11:module=/a.so;token=A;key=k;pin-env=1X', /pin-env must name/],
    ['pkcs11:module=/a.so;token=A;key=k;pin-env=P|pkcs11:module=/b.so;token=B;key=other;pin-env=P', /same key label/],
    ['pkcs11:module=/a.so;token=A;key=k;pin-env=P|file:/x', /not a pkcs11: URI/],
  ];
  for (const [uri, why] of bad) {
    it(`refuses ${uri.slice(7, 60)}…`, () =>
      assert.throws(() => parsePkcs11Uri(uri), expectCoffer('invalid_request', why)));
  }
});

describeHsm('pkcs11 provider on SoftHSM2', function (this: Mocha.Suite) {
  this.timeout(60_000);

  it('coffer hsm init creates a non-extractable, sensitive AES-256 key whose value the token will not reveal', () => {
    const { label } = tokenWithKey();
    const module = graphene.Module.load(SOFTHSM_MODULE);
    module.initialize({ flags: 2 });
    try {
      const slots = module.getSlots(true);
      let session: graphene.Session | undefined;
      for (let i = 0; i < slots.length; i++)
        if (slots.items(i).getToken().label.trim() === label)
          session = slots.items(i).open(graphene.SessionFlag.SERIAL_SESSION);
      session!.login(HSM_PIN);
      const keys = session!.find({ label: 'master' });
      assert.equal(keys.length, 1);
      const key = keys.items(0);
      const attrs = key.getAttribute({
        extractable: null,
        sensitive: null,
        keyType: null,
        valueLen: null,
        token: null,
        neverExtractable: null,
      });
      assert.deepEqual(attrs, {
        extractable: false,
        sensitive: true,
        keyType: graphene.KeyType.AES,
        valueLen: 32,
        token: true,
        neverExtractable: true,
      });
      assert.throws(() => key.getAttribute({ value: null }), /CKR_ATTRIBUTE_SENSITIVE/);
    } finally {
      module.finalize();
    }
  });

  it('E16: a key with an unsafe template (extractable, or wrap+decrypt, or generated but once extractable) is refused at start', () => {
    const templates: [string, graphene.ITemplate][] = [
      ['extractable', { extractable: true, sensitive: true, wrap: false }],
      ['not sensitive', { extractable: false, sensitive: false, wrap: false }],
      ['wrap and decrypt', { extractable: false, sensitive: true, wrap: true }],
    ];
    for (const [what, template] of templates) {
      const { label } = createToken();
      const module = graphene.Module.load(SOFTHSM_MODULE);
      module.initialize({ flags: 2 });
      try {
        const slots = module.getSlots(true);
        for (let i = 0; i < slots.length; i++) {
          if (slots.items(i).getToken().label.trim() !== label) continue;
          const session = slots.items(i).open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
          session.login(HSM_PIN);
          session.generateKey(graphene.KeyGenMechanism.AES, {
            keyType: graphene.KeyType.AES,
            token: true,
            label: 'master',
            id: Buffer.from([0, 0, 0, 1]),
            valueLen: 32,
            encrypt: true,
            decrypt: true,
            ...template,
          });
        }
      } finally {
        module.finalize();
      }
      assert.throws(
        () => Pkcs11Provider.open(parsePkcs11Uri(kekUri([label])), { env: hsmEnv() }),
        /unsafe template/,
        what,
      );
    }
  });

  it('no code path reads CKA_VALUE: the provider sources ask the token for no value attribute', () => {
    const dir = join(process.cwd(), 'server', 'keys', 'pkcs11');
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const source = readFileSync(join(dir, file), 'utf8');
      for (const call of source.matchAll(/getAttribute\(([^)]*)\)/g)) {
        assert.doesNotMatch(call[1]!, /\bvalue\b|CKA_VALUE\b/, `${file} reads a key value: ${call[0]}`);
      }
      assert.doesNotMatch(source, /C_GetAttributeValue|\.wrapKey\(/, `${file} must not export keys`);
    }
  });

  it('refuses to overwrite an existing key, and a cluster without shared key material', () => {
    const { uri, label } = tokenWithKey();
    assert.throws(
      () => initHsmKey(parsePkcs11Uri(uri), hsmEnv()),
      expectCoffer('already_exists', new RegExp(`"${label}" already holds key "master"`)),
    );
    const a = createToken();
    const b = createToken();
    assert.throws(
      () => initHsmKey(parsePkcs11Uri(kekUri([a.label, b.label])), hsmEnv()),
      expectCoffer('invalid_request', /--key-file/),
    );
  });

  it('wraps inside the token and unwraps only with the same context; the header names the version', async () => {
    const { uri } = tokenWithKey();
    const provider = Pkcs11Provider.open(parsePkcs11Uri(uri), { env: hsmEnv() });
    try {
      const key = randomBytes(32);
      const wrapped = await provider.wrap(key, context);
      assert.equal(provider.versionOf(wrapped), 1);
      assert.deepEqual(Buffer.from(await provider.unwrap(wrapped, context)), key);
      assert.ok(!Buffer.from(wrapped).includes(key), 'the key is not in the clear');
      await assert.rejects(
        provider.unwrap(wrapped, new TextEncoder().encode('other context')),
        expectCoffer('decryption_failed'),
      );
      const tampered = Uint8Array.from(wrapped);
      tampered[tampered.length - 1]! ^= 1;
      await assert.rejects(provider.unwrap(tampered, context), expectCoffer('decryption_failed'));
      const relabelled = Uint8Array.from(wrapped);
      relabelled[5] = 2;
      await assert.rejects(provider.unwrap(relabelled, context), expectCoffer('decryption_failed'));
      assert.throws(() => provider.exportCurrent(), expectCoffer('not_exportable'));
      assert.equal(await provider.rotate(), 2);
      assert.equal(provider.versionOf(await provider.wrap(key, context)), 2);
      assert.deepEqual(Buffer.from(await provider.unwrap(wrapped, context)), key, 'version 1 still unwraps');
    } finally {
      provider.close();
    }
  });

  it('a wrong PIN is a clear error and is tried once, never again (a token must not lock itself)', async () => {
    const { label } = tokenWithKey();
    const env = { [PIN_ENV]: '0000-0000' };
    assert.throws(
      () => Pkcs11Provider.open(parsePkcs11Uri(kekUri([label])), { env }),
      expectCoffer('unseal_failed', /refused the PIN/),
    );
    assert.throws(
      () => Pkcs11Provider.open(parsePkcs11Uri(kekUri([label])), { env: {} }),
      expectCoffer('unseal_failed', new RegExp(`${PIN_ENV}.*is not set`)),
    );

    // A cluster whose first member has a wrong PIN file keeps working through the second and
    // never logs in to the first again.
    const material = randomBytes(32);
    const a = createToken();
    const b = createToken();
    initHsmKey(parsePkcs11Uri(kekUri([a.label, b.label])), hsmEnv(), material);
    const dir = await tempDir();
    const pinFile = join(dir, 'pin');
    writeFileSync(pinFile, 'wrong-pin\n', { mode: 0o600 });
    const uri = `${kekUri([a.label], 'master', `pin-file=${pinFile}`)}|${kekUri([b.label])}`;
    const { log, lines } = capturingLog();
    const provider = Pkcs11Provider.open(parsePkcs11Uri(uri), { env: hsmEnv(), log });
    try {
      writeFileSync(pinFile, `${HSM_PIN}\n`); // even a corrected PIN is not retried behind the operator's back
      for (let i = 0; i < 20; i++) await provider.unwrap(await provider.wrap(material, context), context);
      assert.equal(provider.healthy(), false);
      assert.ok(
        lines.some((l) => String(l.problem).includes('refused the PIN')),
        'the refusal is logged',
      );
      assert.ok(
        !JSON.stringify(lines).includes(HSM_PIN) && !JSON.stringify(lines).includes('wrong-pin'),
        'no PIN in the log',
      );
    } finally {
      provider.close();
    }
  });

  it('a PIN file others can read is refused', async () => {
    const { label } = tokenWithKey();
    const pinFile = join(await tempDir(), 'pin');
    writeFileSync(pinFile, HSM_PIN, { mode: 0o644 });
    assert.throws(
      () => Pkcs11Provider.open(parsePkcs11Uri(kekUri([label], 'master', `pin-file=${pinFile}`)), { env: {} }),
      /chmod 600/,
    );
  });

  it('a missing module, a missing token and a missing key label each say what is wrong', () => {
    const { label } = tokenWithKey();
    assert.throws(
      () =>
        Pkcs11Provider.open(
          parsePkcs11Uri(`pkcs11:module=/usr/lib/nope/libnothing.so;token=${label};key=master;pin-env=${PIN_ENV}`),
          { env: hsmEnv() },
        ),
      expectCoffer('invalid_request', /does not exist/),
    );
    assert.throws(
      () => Pkcs11Provider.open(parsePkcs11Uri(kekUri(['no-such-token'])), { env: hsmEnv() }),
      expectCoffer('hsm_unavailable', /"no-such-token" is not present/),
    );
    assert.throws(
      () => Pkcs11Provider.open(parsePkcs11Uri(kekUri([label], 'other-key')), { env: hsmEnv() }),
      expectCoffer('unseal_failed', /key "other-key" not found.*coffer hsm init/),
    );
  });

  describe('a vault on the HSM', () => {
    let vault: TestVault & { kek: string };
    before(async () => {
      vault = await openHsmVault();
    });
    after(() => vault.cleanup());

    it('auto-unseals from the HSM, reports the pkcs11 provider, and stores keyrings wrapped by it', async () => {
      const status = await request(vault.app).get('/v1/sys/seal-status');
      assert.equal(status.body.provider, 'pkcs11');
      assert.equal(status.body.sealed, false);
      const put = await request(vault.app)
        .put('/v1/secrets/app/db')
        .set(vault.auth)
        .send({ data: { password: 'hunter2-hsm' } });
      assert.equal(put.status, 200);
      const record = JSON.parse(Buffer.from(vault.store.get(keyringKey('app'))!).toString());
      const wrapped = Buffer.from(record.versions['1'].wrapped, 'base64');
      assert.deepEqual([wrapped[0], wrapped[1]], [0x01, 0x10], 'format 1, algorithm AES-256-GCM in the HSM');
    });

    it('after a seal, the recovery shares unseal it again through the HSM', async () => {
      await vault.seal.seal();
      assert.equal((await request(vault.app).get('/v1/secrets/app/db').set(vault.auth)).status, 503);
      for (const share of vault.shares.slice(0, 2)) await vault.seal.submitShare(share);
      const read = await request(vault.app).get('/v1/secrets/app/db').set(vault.auth);
      assert.equal(read.status, 200);
      assert.equal(read.body.data.password, 'hunter2-hsm');
    });

    it('a restart on the same data and token reads what was written', async () => {
      const dir = vault.dir;
      await vault.cleanup(true);
      vault = Object.assign(
        await openVault({ dir, source: { kind: 'pkcs11', uri: vault.kek }, env: hsmEnv(), init: false }),
        { kek: vault.kek },
      );
      await vault.seal.autoUnsealNow();
      assert.equal((await vault.secrets.get('app/db'))?.data.password, 'hunter2-hsm');
    });

    it('a vault made on the HSM cannot be opened with another key source', async () => {
      const dir = vault.dir;
      await vault.cleanup(true);
      const store = await Store.open(join(dir, 'db'));
      try {
        assert.throws(
          () => new SealManager(store, { source: { kind: 'shamir' } }),
          /initialized with --kek pkcs11: and cannot be opened with --kek shamir:/,
        );
        assert.throws(
          () => new SealManager(store, { source: { kind: 'file', path: '/x' } }),
          /cannot be opened with --kek file:/,
        );
      } finally {
        await store.close();
      }
      vault = Object.assign(
        await openVault({ dir, source: { kind: 'pkcs11', uri: vault.kek }, env: hsmEnv(), init: false }),
        { kek: vault.kek },
      );
      await vault.seal.autoUnsealNow();
    });
  });

  it('HSM calls grow with keyrings, not reads: 10,000 reads across 3 namespaces', async () => {
    const vault = await openHsmVault();
    try {
      for (const ns of ['a', 'b', 'c'])
        for (let i = 0; i < 10; i++) await vault.secrets.put(`${ns}/s${i}`, { data: { v: `${ns}${i}` } });
      const provider = vault.seal.keys().provider.inner as Pkcs11Provider;
      const before = { ...provider.calls };
      for (let i = 0; i < 10_000; i++) {
        const ns = ['a', 'b', 'c'][i % 3]!;
        assert.equal((await vault.secrets.get(`${ns}/s${i % 10}`))?.data.v, `${ns}${i % 10}`);
      }
      const calls = provider.calls.decrypt - before.decrypt + provider.calls.encrypt - before.encrypt;
      assert.ok(calls <= 3, `${calls} HSM calls for 10,000 reads (keyrings are cached)`);
    } finally {
      await vault.cleanup();
    }
  });

  it('E17: an HSM missing at start leaves the vault sealed and is retried until it answers (no fallback)', async () => {
    const token = tokenWithKey();
    const first = await openVault({
      source: { kind: 'pkcs11', uri: token.uri },
      env: hsmEnv(),
      init: { shares: 1, threshold: 1 },
    });
    await first.secrets.put('e17/a', { data: { v: 'kept' } });
    await first.cleanup(true);
    const restore = removeToken(token);
    const vault = await openVault({
      dir: first.dir,
      source: { kind: 'pkcs11', uri: token.uri },
      env: hsmEnv(),
      init: false,
    });
    try {
      await vault.seal.startAutoUnseal();
      assert.equal(vault.seal.sealed, true);
      assert.equal((await request(vault.app).get('/v1/sys/health')).status, 503);
      restore();
      for (let i = 0; i < 50 && vault.seal.sealed; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(vault.seal.sealed, false, 'unsealed once the token returned');
      assert.equal((await vault.secrets.get('e17/a'))?.data.v, 'kept');
    } finally {
      vault.seal.stopRetrying();
      await vault.cleanup();
    }
  });

  it('cluster failover: with the first token gone, reads and new keyrings go through the second, and it is logged', async () => {
    const material = randomBytes(32);
    const a = createToken();
    const b = createToken();
    const uri = kekUri([a.label, b.label]);
    initHsmKey(parsePkcs11Uri(uri), hsmEnv(), material);
    const { log, lines } = capturingLog();
    const vault = await openVault({
      source: { kind: 'pkcs11', uri },
      env: hsmEnv(),
      keyring: { cacheTtlMs: 50 },
      log,
      init: { shares: 1, threshold: 1 },
    });
    let restoreA: (() => void) | undefined;
    try {
      for (let i = 0; i < 20; i++) await vault.secrets.put(`ns${i % 4}/k${i}`, { data: { v: String(i) } });
      restoreA = removeToken(a);
      await new Promise((r) => setTimeout(r, 150)); // cached keyrings expire: the next reads need the HSM
      for (let i = 0; i < 20; i++) assert.equal((await vault.secrets.get(`ns${i % 4}/k${i}`))?.data.v, String(i));
      await vault.secrets.put('fresh/k', { data: { v: 'new keyring' } });
      assert.equal((await vault.secrets.get('fresh/k'))?.data.v, 'new keyring');
      const provider = vault.seal.keys().provider.inner as Pkcs11Provider;
      assert.equal(provider.healthy(), false, 'the first member is known to be down');
      assert.deepEqual(vault.seal.warnings(), [
        `HSM token "${a.label}" is unavailable: failing over (retried with backoff)`,
      ]);
      assert.ok(
        lines.some((l) => l.msg === 'HSM token failed: failing over to the next cluster member' && l.token === a.label),
        'the failover is logged',
      );
    } finally {
      await vault.cleanup();
      restoreA?.();
    }
  });

  it('the only token removed while serving: 503 hsm_unavailable, no crash; it recovers when the token returns', async () => {
    const token = tokenWithKey();
    const vault = await openVault({
      source: { kind: 'pkcs11', uri: token.uri },
      env: hsmEnv(),
      keyring: { cacheTtlMs: 50 },
      init: { shares: 1, threshold: 1 },
    });
    try {
      assert.equal(
        (
          await request(vault.app)
            .put('/v1/secrets/one/a')
            .set(vault.auth)
            .send({ data: { v: '1' } })
        ).status,
        200,
      );
      const restore = removeToken(token);
      await new Promise((r) => setTimeout(r, 150));
      const down = await request(vault.app).get('/v1/secrets/one/a').set(vault.auth);
      assert.equal(down.status, 503, JSON.stringify(down.body));
      assert.equal(down.body.error.code, 'hsm_unavailable');
      const write = await request(vault.app)
        .put('/v1/secrets/two/a')
        .set(vault.auth)
        .send({ data: { v: '2' } });
      assert.equal(write.status, 503, 'a write needing a new keyring fails and changes nothing');
      restore();
      let back: request.Response | undefined;
      for (let i = 0; i < 40 && back?.status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        back = await request(vault.app).get('/v1/secrets/one/a').set(vault.auth);
      }
      assert.equal(back?.status, 200, `recovered: ${JSON.stringify(back?.body)}`);
      assert.equal(back.body.data.v, '1');
      assert.equal(
        (await request(vault.app).get('/v1/secrets/two/a').set(vault.auth)).status,
        404,
        'the refused write left nothing',
      );
    } finally {
      await vault.cleanup();
    }
  });
});
