import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { PreconditionFailed, type Bucket } from '../../../server/replication/bucket.js';
import { openBucket } from '../../../server/replication/open.js';
import { FileBucket } from '../../../server/replication/file.js';
import { tempDir } from '../../helpers.js';
import { startS3, type TestS3 } from './s3rver.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** One suite, every implementation: a fresh, empty bucket per test. */
function conformance(name: string, make: () => Promise<{ bucket: Bucket; done(): Promise<void> }>): void {
  describe(`bucket conformance: ${name}`, function () {
    this.timeout(20_000);
    let bucket: Bucket;
    let done: () => Promise<void>;
    beforeEach(async () => ({ bucket, done } = await make()));
    afterEach(async () => {
      bucket.close();
      await done();
    });

    it('reads back what it stored, with an ETag that changes with the content', async () => {
      const a = await bucket.put('dir/one.bin', bytes('first'));
      const got = await bucket.get('dir/one.bin');
      assert.equal(text(got!.body), 'first');
      assert.equal(got!.etag, a.etag);
      const b = await bucket.put('dir/one.bin', bytes('second'));
      assert.notEqual(b.etag, a.etag);
      assert.deepEqual(await bucket.head('dir/one.bin'), { etag: b.etag, size: 6 });
    });

    it('answers undefined for a missing object, and deleting one is not an error', async () => {
      assert.equal(await bucket.get('nope'), undefined);
      assert.equal(await bucket.head('nope/deeper'), undefined);
      await bucket.delete('nope');
      await bucket.put('x', bytes('1'));
      await bucket.delete('x');
      assert.equal(await bucket.get('x'), undefined);
    });

    it('stores empty and binary objects byte for byte', async () => {
      const all = Uint8Array.from({ length: 256 }, (_, i) => i);
      await bucket.put('bin', all);
      await bucket.put('empty', new Uint8Array(0));
      assert.deepEqual([...(await bucket.get('bin'))!.body], [...all]);
      assert.equal((await bucket.get('empty'))!.body.length, 0);
    });

    it('If-None-Match * creates once and refuses a second create', async () => {
      await bucket.put('lock', bytes('a'), { ifNoneMatch: '*' });
      await assert.rejects(bucket.put('lock', bytes('b'), { ifNoneMatch: '*' }), PreconditionFailed);
      assert.equal(text((await bucket.get('lock'))!.body), 'a');
    });

    it('If-Match replaces only the version it names', async () => {
      const v1 = await bucket.put('m', bytes('v1'));
      const v2 = await bucket.put('m', bytes('v2'), { ifMatch: v1.etag });
      await assert.rejects(bucket.put('m', bytes('v3'), { ifMatch: v1.etag }), PreconditionFailed);
      await assert.rejects(bucket.put('absent', bytes('x'), { ifMatch: v1.etag }), PreconditionFailed);
      assert.equal(text((await bucket.get('m'))!.body), 'v2');
      await bucket.put('m', bytes('v3'), { ifMatch: v2.etag });
    });

    it('lets exactly one of 10 racing exclusive creates win', async () => {
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => bucket.put('race', bytes(`w${i}`), { ifNoneMatch: '*' })),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof PreconditionFailed);
    });

    it('lets exactly one of 10 racing If-Match updates of one version win', async () => {
      const base = await bucket.put('cas', bytes('base'));
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => bucket.put('cas', bytes(`w${i}`), { ifMatch: base.etag })),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    });

    it('lists by prefix in byte order, with pagination and startAfter', async () => {
      const keys = Array.from({ length: 25 }, (_, i) => `seg/${i.toString(16).padStart(4, '0')}.seg`);
      for (const k of [...keys].reverse()) await bucket.put(k, bytes(k));
      await bucket.put('segx', bytes('not under seg/'));
      await bucket.put('other/a', bytes('x'));
      const seen: string[] = [];
      let startAfter: string | undefined;
      for (let pages = 0; pages < 10; pages++) {
        const page = await bucket.list('seg/', { limit: 10, ...(startAfter ? { startAfter } : {}) });
        seen.push(...page.objects.map((o) => o.key));
        if (!page.next) break;
        startAfter = page.next;
      }
      assert.deepEqual(seen, keys);
      const after = await bucket.list('seg/', { startAfter: keys[20]! });
      assert.deepEqual(
        after.objects.map((o) => o.key),
        keys.slice(21),
      );
      assert.equal(after.objects[0]!.size, keys[21]!.length);
      assert.deepEqual((await bucket.list('nothing/')).objects, []);
    });

    it('refuses keys that could escape the bucket', async () => {
      for (const bad of ['../x', 'a/../../b', '/abs', 'a//b', '.hidden', 'a/./b', 'a b']) {
        await assert.rejects(bucket.put(bad, bytes('x')), /invalid bucket key/);
      }
    });
  });
}

conformance('file://', async () => {
  const dir = await tempDir('coffer-bucket-');
  return { bucket: await openBucket(`file://${dir}`), done: () => rm(dir, { recursive: true, force: true }) };
});

let s3: TestS3;
let n = 0;
before(async () => (s3 = await startS3()));
after(async () => s3?.close());
conformance('s3:// (s3rver with conditional writes)', async () => ({
  bucket: await openBucket(s3.url(`conf-${++n}`)),
  done: async () => {},
}));

describe('the S3 test server helper', function () {
  this.timeout(20_000);
  it('answers 412 PreconditionFailed to all but one of 10 racing creates, as S3 does', async () => {
    const bucket = await openBucket(s3.url(`helper-${++n}`));
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => bucket.put('k', bytes(`racer ${i}`), { ifNoneMatch: '*' })),
    );
    const winners = results.filter((r) => r.status === 'fulfilled');
    assert.equal(winners.length, 1);
    const stored = text((await bucket.get('k'))!.body);
    assert.match(stored, /^racer \d$/);
    assert.equal(results.filter((r) => r.status === 'rejected' && r.reason instanceof PreconditionFailed).length, 9);
    bucket.close();
  });

  it('refuses file bucket URLs that are not absolute directories', async () => {
    await assert.rejects(openBucket('file://host/dir'), /file:\/\/\/absolute/);
    await assert.rejects(openBucket('ftp://x/y'), /unsupported bucket URL scheme/);
    await assert.rejects(openBucket('s3://A_B/x'), /invalid S3 bucket name/);
    assert.ok(FileBucket.at('/tmp').url.startsWith('file:///'));
  });
});
