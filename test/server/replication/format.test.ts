import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { z } from 'zod';
import { seal as aeadSeal } from '../../../server/crypto/aead.js';
import {
  KIND,
  MAGIC,
  ReplicationError,
  changeRecord,
  deriveKeys,
  encodeManifest,
  epochClaim,
  genesisChain,
  hmacHex,
  isIdentityKey,
  keyIdOf,
  manifestBody,
  openManifest,
  openObject,
  parseJson,
  parseSegmentName,
  parseSnapshotIndexName,
  readManifestUnverified,
  sealObject,
  segmentHeader,
  segmentName,
  segmentPayload,
  snapshotIndexHeader,
  snapshotPartHeader,
  snapshotIndexName,
  snapshotPartName,
  type ManifestBody,
} from '../../../server/replication/format.js';

/**
 * The bucket formats (server/replication/format.ts, docs/api.md "Bucket formats", SECURITY-CASES
 * H1, H2, H5, H14, H18) at their bounds: objects built by hand with a correct MAC, so each check
 * after the MAC is reached on its own; the header and payload length bounds; the strict schemas;
 * the manifest's identity checks; and the object names.
 */

const CLUSTER = '0123456789abcdef0123456789abcdef';
const keys = deriveKeys(new Uint8Array(32).fill(7), CLUSTER, Uint8Array.of(1, 2, 3));
const H64 = 'ab'.repeat(32);
const refused = (code: string, message?: string | RegExp) => (e: unknown) =>
  e instanceof ReplicationError &&
  e.code === code &&
  (message === undefined || (typeof message === 'string' ? e.message === message : message.test(e.message)));
const anyHeader = z.record(z.string(), z.unknown());

/** An object laid out by hand: prefix (magic, kind, header length), header, sealed padded payload, MAC over all of it. */
function handmade(options: {
  magic?: Uint8Array;
  kind?: number;
  header?: string;
  headerLength?: number;
  padded?: Uint8Array;
  sealed?: Uint8Array;
}): Uint8Array {
  const header = Buffer.from(options.header ?? '{}');
  const prefix = Buffer.alloc(9);
  Buffer.from(options.magic ?? MAGIC).copy(prefix, 0);
  prefix[4] = options.kind ?? KIND.segment;
  prefix.writeUInt32BE(options.headerLength ?? header.length, 5);
  const aad = Buffer.concat([prefix, header]);
  const sealed = options.sealed ?? aeadSeal(keys.enc, options.padded ?? new Uint8Array(1024), aad);
  const body = Buffer.concat([aad, sealed]);
  return new Uint8Array(Buffer.concat([body, createHmac('sha256', keys.mac).update(body).digest()]));
}

describe('replication format: keys and chain values', () => {
  it('derives distinct encryption and MAC keys per cluster and label, and names the key by its wrapped bytes', () => {
    const other = deriveKeys(new Uint8Array(32).fill(7), 'fedcba9876543210fedcba9876543210', Uint8Array.of(1, 2, 3));
    const backup = deriveKeys(new Uint8Array(32).fill(7), CLUSTER, Uint8Array.of(1, 2, 3), 'coffer/backup/v1');
    assert.notDeepEqual(keys.enc, keys.mac);
    assert.notDeepEqual(keys.enc, other.enc);
    assert.notDeepEqual(keys.mac, backup.mac);
    assert.equal(keys.enc.length, 32);
    assert.equal(
      keys.id,
      createHash('sha256')
        .update(Uint8Array.of(1, 2, 3))
        .digest('hex')
        .slice(0, 16),
    );
    assert.equal(keyIdOf(Uint8Array.of(1, 2, 3)), keys.id);
    assert.equal(keys.id.length, 16);
  });

  it('derives the keys with HKDF-SHA256 under the documented labels (a known answer, computed with openssl kdf)', () => {
    // openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:0707…07 -kdfopt salt:<cluster> -kdfopt info:<label>/<purpose> HKDF
    assert.equal(
      Buffer.from(keys.enc).toString('hex'),
      '2a99a7dcd4117625b9bc9efb095577a2a1ac053b8130d0560930070594700e7b',
      'coffer/replication/v1/encrypt',
    );
    assert.equal(
      Buffer.from(keys.mac).toString('hex'),
      '087d5178d05331056861dbf8950b79a19e780541495cf618020796b37eef20c5',
      'coffer/replication/v1/mac',
    );
    const backup = deriveKeys(new Uint8Array(32).fill(7), CLUSTER, Uint8Array.of(1, 2, 3), 'coffer/backup/v1');
    assert.equal(
      Buffer.from(backup.enc).toString('hex'),
      '496511b80de0a869d953f391b5695a7834a6e549cbd941b4aa72d8c472c75299',
      'coffer/backup/v1/encrypt',
    );
    assert.equal(keys.id, '039058c6f2c0cb49');
  });

  it('hmacHex separates its parts, so moving bytes between parts changes the value', () => {
    assert.notEqual(hmacHex(keys.mac, 'ab', 'c'), hmacHex(keys.mac, 'a', 'bc'));
    assert.equal(hmacHex(keys.mac, 'a', Uint8Array.of(0x62)), hmacHex(keys.mac, 'a', 'b'));
    assert.equal(hmacHex(keys.mac, 'x'), createHmac('sha256', keys.mac).update('x').update('\u0000').digest('hex'));
    assert.equal(genesisChain(keys, CLUSTER, 1, 0), hmacHex(keys.mac, 'genesis', CLUSTER, '1', '0'));
    assert.notEqual(genesisChain(keys, CLUSTER, 1, 0), genesisChain(keys, CLUSTER, 2, 0));
  });
});

describe('replication format: objects', () => {
  it('round-trips header and payload, pads to 1 KiB steps, and returns the MAC as the chain value', () => {
    for (const size of [0, 1, 1019, 1020, 1021, 3000]) {
      const payload = new Uint8Array(size).fill(5);
      const { bytes, mac } = sealObject(keys, KIND.segment, { n: size }, payload);
      const opened = openObject(keys, KIND.segment, bytes, anyHeader);
      assert.deepEqual(opened.header, { n: size });
      assert.deepEqual(opened.payload, payload);
      assert.equal(opened.mac, mac);
      assert.equal(
        mac,
        createHmac('sha256', keys.mac)
          .update(bytes.subarray(0, bytes.length - 32))
          .digest('hex'),
      );
      const headerLength = JSON.stringify({ n: size }).length;
      assert.equal(bytes.length, 9 + headerLength + Math.ceil((size + 4) / 1024) * 1024 + 24 + 16 + 32, `size ${size}`);
    }
  });

  it('takes a payload that fills its padding exactly (length + 4 = padded length)', () => {
    const padded = new Uint8Array(1024);
    new DataView(padded.buffer).setUint32(0, 1020);
    padded.fill(9, 4);
    const opened = openObject(keys, KIND.segment, handmade({ padded }), anyHeader);
    assert.equal(opened.payload.length, 1020);
    padded[0] = 0;
    new DataView(padded.buffer).setUint32(0, 1021);
    assert.throws(
      () => openObject(keys, KIND.segment, handmade({ padded }), anyHeader),
      refused('bad_format', 'object payload length is out of range'),
    );
  });

  it('refuses an authentic object whose sealed part holds fewer than 4 bytes with bad_format', () => {
    for (const size of [0, 3]) {
      assert.throws(
        () => openObject(keys, KIND.segment, handmade({ padded: new Uint8Array(size) }), anyHeader),
        refused('bad_format', 'object payload length is out of range'),
        `${size} bytes`,
      );
    }
    assert.deepEqual(
      openObject(keys, KIND.segment, handmade({ padded: new Uint8Array(4) }), anyHeader).payload,
      new Uint8Array(0),
      'a length field alone: an empty payload',
    );
  });

  it('says truncated below the smallest possible object and checks the MAC from that size on', () => {
    const minimal = handmade({
      sealed: aeadSeal(
        keys.enc,
        new Uint8Array(0),
        Buffer.concat([Buffer.from(MAGIC), Buffer.of(KIND.segment, 0, 0, 0, 2), Buffer.from('{}')]),
      ),
    });
    assert.equal(minimal.length, 9 + 2 + 24 + 16 + 32);
    assert.throws(
      () => openObject(keys, KIND.segment, minimal.subarray(0, minimal.length - 1), anyHeader),
      refused('truncated', 'object is too short (truncated or empty)'),
    );
    assert.throws(() => openObject(keys, KIND.segment, new Uint8Array(0), anyHeader), refused('truncated'));
    // At the minimum size the MAC is checked: a zeroed object fails there, not as truncated.
    assert.throws(
      () => openObject(keys, KIND.segment, new Uint8Array(minimal.length), anyHeader),
      refused('bad_mac', 'object MAC does not verify (tampered, truncated, or another vault)'),
    );
    assert.throws(
      () => openObject(keys, KIND.segment, minimal, anyHeader),
      refused('bad_format', 'object payload length is out of range'),
    );
  });

  it('checks the MAC before anything else: another key, a flipped bit, a cut end', () => {
    const { bytes } = sealObject(keys, KIND.segment, { a: 1 }, Uint8Array.of(1));
    const other = deriveKeys(new Uint8Array(32).fill(8), CLUSTER, Uint8Array.of(1, 2, 3));
    assert.throws(() => openObject(other, KIND.segment, bytes, anyHeader), refused('bad_mac'));
    for (const index of [0, 4, 9, bytes.length - 33, bytes.length - 1]) {
      const bad = Uint8Array.from(bytes);
      bad[index]! ^= 1;
      assert.throws(() => openObject(keys, KIND.segment, bad, anyHeader), refused('bad_mac'), `byte ${index}`);
    }
    assert.throws(
      () => openObject(keys, KIND.segment, bytes.subarray(0, bytes.length - 1), anyHeader),
      refused('bad_mac'),
    );
  });

  it('refuses an authentic object of another kind or with another magic with bad_format', () => {
    const { bytes } = sealObject(keys, KIND.snapshotPart, {}, Uint8Array.of(1));
    assert.throws(
      () => openObject(keys, KIND.segment, bytes, anyHeader),
      refused('bad_format', 'object has the wrong type'),
    );
    assert.deepEqual(openObject(keys, KIND.snapshotPart, bytes, anyHeader).payload, Uint8Array.of(1));
    for (const magic of [Buffer.from('CFR2'), Buffer.from('cfr1'), Buffer.from('XFR1')]) {
      assert.throws(
        () => openObject(keys, KIND.segment, handmade({ magic }), anyHeader),
        refused('bad_format', 'object has the wrong type'),
        magic.toString(),
      );
    }
  });

  it('takes a header of exactly 2,048 bytes and refuses 2,049, and a header length past the object', () => {
    const pad = (n: number) => `{"p":"${'x'.repeat(n - 8)}"}`;
    assert.equal(pad(2048).length, 2048);
    assert.equal(
      (openObject(keys, KIND.segment, handmade({ header: pad(2048) }), anyHeader).header.p as string).length,
      2040,
    );
    assert.throws(
      () => openObject(keys, KIND.segment, handmade({ header: pad(2049) }), anyHeader),
      refused('bad_format', 'object header length is out of range'),
    );
    const object = handmade({});
    const body = object.length - 32;
    assert.throws(
      () => openObject(keys, KIND.segment, handmade({ headerLength: body - 9 + 1 }), anyHeader),
      refused('bad_format', 'object header length is out of range'),
    );
    // A header length that takes the whole body is in range: the header is then not JSON.
    assert.throws(
      () => openObject(keys, KIND.segment, handmade({ headerLength: body - 9 }), anyHeader),
      refused('bad_format', 'object header is not JSON'),
    );
  });

  it('refuses an authentic object whose header has an extra field, a missing field or a bad value', () => {
    const header = { cluster: CLUSTER, key: keys.id, epoch: 1, from: 1, to: 2, prev: H64, count: 1 };
    assert.deepEqual(
      openObject(keys, KIND.segment, sealObject(keys, KIND.segment, header, Uint8Array.of(1)).bytes, segmentHeader)
        .header,
      header,
    );
    for (const [what, bad] of [
      ['an extra field', { ...header, extra: 1 }],
      ['no count', { ...header, count: undefined }],
      ['count 0', { ...header, count: 0 }],
      ['epoch 0', { ...header, epoch: 0 }],
      ['a short key id', { ...header, key: 'abc' }],
      ['an upper-case cluster', { ...header, cluster: CLUSTER.toUpperCase() }],
    ] as const) {
      const { bytes } = sealObject(keys, KIND.segment, bad, Uint8Array.of(1));
      assert.throws(
        () => openObject(keys, KIND.segment, bytes, segmentHeader),
        refused('bad_format', /^object header: /),
        what,
      );
    }
    assert.throws(
      () => openObject(keys, KIND.segment, handmade({ header: '{"a":' }), anyHeader),
      refused('bad_format', 'object header is not JSON'),
    );
  });

  it('refuses an authentic object sealed under another key or with another header (the AEAD) with bad_mac', () => {
    const padded = new Uint8Array(1024);
    const sealed = aeadSeal(keys.enc, padded, Buffer.from('something else'));
    assert.throws(
      () => openObject(keys, KIND.segment, handmade({ sealed }), anyHeader),
      refused('bad_mac', 'object does not decrypt'),
    );
  });
});

describe('replication format: header patterns and errors', () => {
  const segment = { cluster: CLUSTER, key: keys.id, epoch: 1, from: 1, to: 2, prev: H64, count: 1 };
  const index = { cluster: CLUSTER, key: keys.id, epoch: 1, seq: 0, chain: H64, parts: 1, entries: 0 };

  it('refuses a cluster, key id or hash with a character before or after its hex digits, in every header', () => {
    const around = (s: string) => [`${s}0`, `0${s}`, `${s}\n`];
    for (const cluster of around(CLUSTER)) {
      assert.throws(
        () => parseJson(segmentHeader, JSON.stringify({ ...segment, cluster }), 'segment header'),
        refused('bad_format', /^segment header: cluster: /),
        cluster,
      );
      assert.throws(
        () => parseJson(snapshotIndexHeader, JSON.stringify({ ...index, cluster }), 'index'),
        refused('bad_format', /^index: cluster: /),
        cluster,
      );
      assert.throws(
        () => parseJson(snapshotPartHeader, JSON.stringify({ cluster, seq: 0, part: 0 }), 'part'),
        refused('bad_format', /^part: cluster: /),
        cluster,
      );
    }
    for (const key of around(keys.id)) {
      assert.throws(
        () => parseJson(segmentHeader, JSON.stringify({ ...segment, key }), 'segment header'),
        refused('bad_format', /^segment header: key: /),
        key,
      );
      assert.throws(
        () => parseJson(snapshotIndexHeader, JSON.stringify({ ...index, key }), 'index'),
        refused('bad_format', /^index: key: /),
        key,
      );
    }
    for (const prev of around(H64)) {
      assert.throws(
        () => parseJson(segmentHeader, JSON.stringify({ ...segment, prev }), 'segment header'),
        refused('bad_format', /^segment header: prev: /),
        prev,
      );
    }
    assert.deepEqual(parseJson(segmentHeader, JSON.stringify(segment), 'segment header'), segment);
    assert.deepEqual(parseJson(snapshotIndexHeader, JSON.stringify(index), 'index'), index);
  });

  it('numbers snapshot parts from 0 up', () => {
    for (const part of [0, 1, 999_999])
      assert.equal(
        parseJson(snapshotPartHeader, JSON.stringify({ cluster: CLUSTER, seq: 5, part }), 'part').part,
        part,
      );
    for (const part of [-1, 1.5])
      assert.throws(
        () => parseJson(snapshotPartHeader, JSON.stringify({ cluster: CLUSTER, seq: 5, part }), 'part'),
        refused('bad_format', /^part: part: /),
        String(part),
      );
  });

  it('errors carry their name and a dotted path to the field that failed', () => {
    const error = (() => {
      try {
        parseJson(changeRecord, JSON.stringify({ seq: 1, time: 0, ops: [{ type: 'del', key: '' }] }), 'change');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(error instanceof ReplicationError);
    assert.equal(error.name, 'ReplicationError');
    assert.match(String(error), /^ReplicationError: change: ops\.0\.key: /);
  });
});

describe('replication format: payload schemas', () => {
  const put = { type: 'put', key: 'secrets/app/x', value: 'AAEC' };
  const record = { seq: 1, time: 0, ops: [put, { type: 'del', key: 'k' }] };

  it('takes a well-formed change record and refuses an extra field anywhere', () => {
    assert.deepEqual(parseJson(segmentPayload, JSON.stringify([record]), 'segment'), [record]);
    for (const [what, bad] of [
      ['an extra field in the record', { ...record, extra: 1 }],
      ['an extra field in a put', { ...record, ops: [{ ...put, extra: 1 }] }],
      ['an extra field in a del', { ...record, ops: [{ type: 'del', key: 'k', value: 'AA==' }] }],
      ['no ops', { ...record, ops: [] }],
      ['an unknown op', { ...record, ops: [{ type: 'merge', key: 'k' }] }],
      ['an empty key', { ...record, ops: [{ type: 'del', key: '' }] }],
      ['a key of 4,097 characters', { ...record, ops: [{ type: 'del', key: 'k'.repeat(4097) }] }],
      ['a value that is not base64', { ...record, ops: [{ ...put, value: 'not base64!' }] }],
      ['a negative seq', { ...record, seq: -1 }],
      ['a float seq', { ...record, seq: 1.5 }],
      ['a seq past 2^53', { ...record, seq: 2 ** 53 }],
      ['a negative time', { ...record, time: -1 }],
    ] as const) {
      assert.throws(
        () => parseJson(changeRecord, JSON.stringify(bad), 'change'),
        refused('bad_format', /^change: /),
        what,
      );
    }
    assert.throws(() => parseJson(segmentPayload, '[]', 'segment'), refused('bad_format', /^segment: value: /));
    assert.throws(() => parseJson(segmentPayload, '[', 'segment'), refused('bad_format', 'segment is not JSON'));
  });

  it('takes keys of 4,096 characters, values of 1 MiB of base64 and seq 2^53 - 1 exactly', () => {
    const big = {
      seq: Number.MAX_SAFE_INTEGER,
      time: 0,
      ops: [{ type: 'put', key: 'k'.repeat(4096), value: 'A'.repeat(1 << 20) }],
    };
    assert.equal(parseJson(changeRecord, JSON.stringify(big), 'change').seq, Number.MAX_SAFE_INTEGER);
    const over = { ...big, ops: [{ type: 'put', key: 'k', value: 'A'.repeat((1 << 20) + 4) }] };
    assert.throws(() => parseJson(changeRecord, JSON.stringify(over), 'change'), refused('bad_format'));
  });

  it('bounds the snapshot index header: parts 0 to 1,000,000, epoch 1 to 2^31', () => {
    const header = { cluster: CLUSTER, key: keys.id, epoch: 2 ** 31, seq: 0, chain: H64, parts: 1_000_000, entries: 0 };
    assert.deepEqual(parseJson(snapshotIndexHeader, JSON.stringify(header), 'index'), header);
    for (const bad of [
      { ...header, parts: 1_000_001 },
      { ...header, epoch: 2 ** 31 + 1 },
      { ...header, parts: -1 },
      { ...header, chain: 'ab'.repeat(31) },
      { ...header, chain: `${'ab'.repeat(32)}a` },
      { ...header, more: 1 },
    ]) {
      assert.throws(
        () => parseJson(snapshotIndexHeader, JSON.stringify(bad), 'index'),
        refused('bad_format'),
        JSON.stringify(bad).slice(0, 80),
      );
    }
  });
});

describe('replication format: the manifest', () => {
  const body: ManifestBody = {
    epoch: 1,
    holder: 'f'.repeat(32),
    primary: 'https://primary.example:8740',
    issued_at: 100,
    lease_until: 0,
    base: { seq: 0, chain: H64 },
    head: { seq: 5, chain: H64 },
    recent: [[1, 5]],
    snapshot: null,
    identity: { 'sys/seal': 'AAAA', 'sys/master/0000000001': 'AAAA' },
  };

  it('round-trips and verifies under its keys', () => {
    const bytes = encodeManifest(keys, CLUSTER, body);
    assert.deepEqual(openManifest(keys, CLUSTER, bytes), body);
    assert.deepEqual(readManifestUnverified(bytes).body, body);
    assert.equal(readManifestUnverified(bytes).doc.key.id, keys.id);
  });

  it('MACs the manifest under the label "manifest", the cluster, the wrapped key and the body, each part NUL-terminated', () => {
    const doc = JSON.parse(Buffer.from(encodeManifest(keys, CLUSTER, body)).toString());
    const expected = createHmac('sha256', keys.mac)
      .update(`manifest\u0000${CLUSTER}\u0000${doc.key.wrapped}\u0000${doc.body}\u0000`)
      .digest('hex');
    assert.equal(doc.mac, expected);
    assert.equal(doc.key.wrapped, 'AQID');
  });

  it('refuses a manifest whose cluster, key id or holder has a character before or after its hex digits', () => {
    const doc = JSON.parse(Buffer.from(encodeManifest(keys, CLUSTER, body)).toString());
    const reencode = (d: object) => Buffer.from(JSON.stringify(d));
    for (const cluster of [`${CLUSTER}0`, `0${CLUSTER}`]) {
      assert.throws(
        () => readManifestUnverified(reencode({ ...doc, cluster })),
        refused('bad_format', /^manifest: cluster: /),
        cluster,
      );
    }
    for (const id of [`${keys.id}0`, `0${keys.id}`]) {
      assert.throws(
        () => readManifestUnverified(reencode({ ...doc, key: { ...doc.key, id } })),
        refused('bad_format', /^manifest: key\.id: /),
        id,
      );
    }
    for (const holder of [`${body.holder}0`, `0${body.holder}`]) {
      const text = JSON.stringify({ ...body, holder });
      assert.throws(
        () => readManifestUnverified(reencode({ ...doc, body: text })),
        refused('bad_format', /^manifest body: holder: /),
        holder,
      );
      const signed = { ...doc, body: text, mac: hmacHex(keys.mac, 'manifest', CLUSTER, doc.key.wrapped, text) };
      assert.throws(
        () => openManifest(keys, CLUSTER, reencode(signed)),
        refused('bad_format', /^manifest body: holder: /),
        `${holder}, correctly MACed`,
      );
    }
  });

  it('names what failed to parse in its errors: the manifest, its body, the JSON', () => {
    const doc = JSON.parse(Buffer.from(encodeManifest(keys, CLUSTER, body)).toString());
    for (const read of [readManifestUnverified, (b: Uint8Array) => openManifest(keys, CLUSTER, b)]) {
      assert.throws(() => read(Buffer.from('{')), refused('bad_format', 'manifest is not JSON'));
      assert.throws(
        () => read(Buffer.from(JSON.stringify({ ...doc, format: 2 }))),
        refused('bad_format', /^manifest: format: /),
      );
      const text = '{"epoch":';
      assert.throws(
        () =>
          read(
            Buffer.from(
              JSON.stringify({
                ...doc,
                body: text,
                mac: hmacHex(keys.mac, 'manifest', CLUSTER, doc.key.wrapped, text),
              }),
            ),
          ),
        refused('bad_format', 'manifest body is not JSON'),
      );
      const nested = JSON.stringify({ ...body, base: { seq: -1, chain: H64 } });
      assert.throws(
        () =>
          read(
            Buffer.from(
              JSON.stringify({
                ...doc,
                body: nested,
                mac: hmacHex(keys.mac, 'manifest', CLUSTER, doc.key.wrapped, nested),
              }),
            ),
          ),
        refused('bad_format', /^manifest body: base\.seq: /),
      );
    }
  });

  it('refuses another vault with other_vault, another key with other_key, an edit with bad_mac', () => {
    const bytes = encodeManifest(keys, CLUSTER, body);
    assert.throws(
      () => openManifest(keys, 'fedcba9876543210fedcba9876543210', bytes),
      refused('other_vault', 'manifest belongs to another vault (cluster id differs)'),
    );
    const rotated = deriveKeys(new Uint8Array(32).fill(7), CLUSTER, Uint8Array.of(9));
    assert.throws(
      () => openManifest(rotated, CLUSTER, bytes),
      refused('other_key', 'manifest is under another replication key'),
    );
    const doc = JSON.parse(Buffer.from(bytes).toString());
    const edited = Buffer.from(
      JSON.stringify({ ...doc, body: doc.body.replace('"head":{"seq":5', '"head":{"seq":6') }),
    );
    assert.throws(() => openManifest(keys, CLUSTER, edited), refused('bad_mac', 'manifest MAC does not verify'));
    const otherWrapped = Buffer.from(JSON.stringify({ ...doc, key: { ...doc.key, wrapped: 'AAAA' } }));
    assert.throws(() => openManifest(keys, CLUSTER, otherWrapped), refused('bad_mac'), 'the wrapped key is MACed too');
    assert.throws(
      () => openManifest(keys, CLUSTER, Buffer.from(JSON.stringify({ ...doc, extra: 1 }))),
      refused('bad_format'),
    );
  });

  it('takes only sys/seal and sys/master/<10 digits> as identity keys', () => {
    for (const ok of ['sys/seal', 'sys/master/0000000001', 'sys/master/9999999999'])
      assert.equal(isIdentityKey(ok), true, ok);
    for (const bad of [
      'sys/seal/x',
      'xsys/seal',
      'sys/seal\n',
      'sys/master/1',
      'sys/master/00000000001',
      'sys/master/000000000a',
      'sys/repl/stream',
      'sys/seq',
      'sys/masterx/0000000001',
    ]) {
      assert.equal(isIdentityKey(bad), false, bad);
      assert.throws(
        () => parseJson(manifestBody, JSON.stringify({ ...body, identity: { [bad]: 'AAAA' } }), 'manifest body'),
        refused('bad_format'),
        bad,
      );
    }
  });

  it('bounds the manifest body: primary up to 512 characters, recent up to 512 entries, no extra field', () => {
    const ok = {
      ...body,
      primary: 'p'.repeat(512),
      recent: Array.from({ length: 512 }, (_, i) => [i, i] as [number, number]),
    };
    assert.equal(parseJson(manifestBody, JSON.stringify(ok), 'manifest body').recent.length, 512);
    for (const bad of [
      { ...body, primary: 'p'.repeat(513) },
      { ...ok, recent: [...ok.recent, [600, 600]] },
      { ...body, extra: 1 },
      { ...body, holder: 'F'.repeat(32) },
      { ...body, lease_until: -1 },
      { ...body, base: { seq: 0, chain: H64, x: 1 } },
    ]) {
      assert.throws(
        () => parseJson(manifestBody, JSON.stringify(bad), 'manifest body'),
        refused('bad_format', /^manifest body: /),
      );
    }
  });
});

describe('replication format: object names', () => {
  it('names segments and snapshots with fixed-width hex and parses them back', () => {
    assert.equal(segmentName(3, 1, 255), 'epoch-3/seg/0000000000000001-00000000000000ff.seg');
    assert.deepEqual(parseSegmentName(segmentName(3, 1, 255)), { epoch: 3, from: 1, to: 255 });
    assert.deepEqual(parseSegmentName(segmentName(7, 9, 9)), { epoch: 7, from: 9, to: 9 }, 'one change: to = from');
    assert.equal(snapshotIndexName(16, 2), 'snap/0000000000000010-00000002.snap');
    assert.deepEqual(parseSnapshotIndexName(snapshotIndexName(16, 2)), { seq: 16, epoch: 2 });
    assert.deepEqual(parseSnapshotIndexName('snap/0000000000000010.snap'), { seq: 16, epoch: 0 });
    assert.equal(snapshotPartName(16, 3), 'snap/0000000000000010/00000003.part');
    assert.equal(epochClaim(3), 'epoch-3/claim');
    assert.equal(epochClaim(42), 'epoch-42/claim');
  });

  it('refuses segment names with to < from, epoch 0 or a leading zero, upper-case hex, unsafe numbers or anything around them', () => {
    for (const bad of [
      'epoch-1/seg/0000000000000002-0000000000000001.seg',
      'epoch-0/seg/0000000000000001-0000000000000001.seg',
      'epoch-01/seg/0000000000000001-0000000000000001.seg',
      'epoch-12345678901/seg/0000000000000001-0000000000000001.seg',
      'epoch-1/seg/000000000000000A-000000000000000B.seg',
      'epoch-1/seg/0020000000000000-0020000000000001.seg',
      'epoch-1/seg/0000000000000001-0020000000000000.seg',
      'x/epoch-1/seg/0000000000000001-0000000000000001.seg',
      'epoch-1/seg/0000000000000001-0000000000000001.seg.tmp',
      'epoch-1/seg/000000000000001-0000000000000001.seg',
      'epoch-1/seg/0000000000000001-0000000000000001.seg\n',
    ]) {
      assert.equal(parseSegmentName(bad), undefined, bad);
    }
    assert.deepEqual(parseSegmentName('epoch-1234567890/seg/001fffffffffffff-001fffffffffffff.seg'), {
      epoch: 1234567890,
      from: 2 ** 53 - 1,
      to: 2 ** 53 - 1,
    });
  });

  it('refuses snapshot index names with a prefix, a suffix, upper-case or short hex', () => {
    for (const bad of [
      'x/snap/0000000000000010.snap',
      'snap/0000000000000010.snap.bak',
      'snap/000000000000001.snap',
      'snap/000000000000001A.snap',
      'snap/0000000000000010-0000002.snap',
      'snap/0000000000000010-.snap',
      'snap/0000000000000010/00000003.part',
    ]) {
      assert.equal(parseSnapshotIndexName(bad), undefined, bad);
    }
  });
});
