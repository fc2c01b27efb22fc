import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileHead, HEAD_FILE_BYTES, SLOT_BYTES, type AuditHead } from '../../../server/audit/head.js';
import { openFlags, tempDir } from '../../helpers.js';

/**
 * The audit chain head file (server/audit/head.ts) byte by byte: two slots of 8 KiB, each
 * magic "CAH1" | counter (u64 BE) | payload length (u32 BE) | SHA-256 of those 16 bytes and the
 * payload | payload (JSON); the reader takes the valid slot with the higher counter, and an old
 * JSON head is read once and replaced.
 */

const H = (c: string) => c.repeat(64);
const head = (seq: number, extra: Partial<AuditHead> = {}): AuditHead => ({
  file: '/var/log/coffer/audit.log',
  seq,
  hash: H(String(seq % 10)),
  ...extra,
});
const HEADER = 48;

/** A slot as the format describes it, built here independently of the module. */
function slot(
  counter: number,
  payload: string | Buffer,
  options: { magic?: string; length?: number; hash?: Buffer } = {},
): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const out = Buffer.alloc(SLOT_BYTES);
  out.write(options.magic ?? 'CAH1', 0, 'latin1');
  out.writeBigUInt64BE(BigInt(counter), 4);
  out.writeUInt32BE(options.length ?? body.length, 12);
  (options.hash ?? createHash('sha256').update(out.subarray(0, 16)).update(body).digest()).copy(out, 16);
  body.copy(out, HEADER);
  return out;
}

describe('audit head file: layout and reading', function () {
  this.timeout(20_000);
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await tempDir('coffer-head-');
    path = join(dir, 'audit.head');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('has no head before the first write, and is created with both slots, the first head in slot 1', async () => {
    const h = new FileHead(path);
    assert.equal(await h.read(), undefined);
    await h.write(head(5));
    const bytes = await readFile(path);
    assert.equal(bytes.length, HEAD_FILE_BYTES);
    assert.equal(HEAD_FILE_BYTES, 2 * SLOT_BYTES);
    assert.equal(SLOT_BYTES, 8192);
    assert.deepEqual(
      bytes.subarray(SLOT_BYTES),
      slot(1, JSON.stringify(head(5))),
      'slot 1 holds counter 1, exactly as laid out',
    );
    assert.deepEqual(bytes.subarray(0, SLOT_BYTES), Buffer.alloc(SLOT_BYTES), 'slot 0 is still empty');
    assert.deepEqual(await h.read(), head(5));
    assert.deepEqual(await new FileHead(path).read(), head(5));
    await h.close();
  });

  it('writes in place, alternating slots with a rising counter; the reader takes the higher counter', async () => {
    const h = new FileHead(path);
    const { ino } = await (async () => {
      await h.write(head(1));
      return stat(path);
    })();
    await h.write(head(2));
    let bytes = await readFile(path);
    assert.deepEqual(bytes.subarray(0, SLOT_BYTES), slot(2, JSON.stringify(head(2))));
    await h.write(head(3, { clean: true }));
    bytes = await readFile(path);
    assert.deepEqual(bytes.subarray(SLOT_BYTES), slot(3, JSON.stringify(head(3, { clean: true }))));
    assert.deepEqual(await new FileHead(path).read(), head(3, { clean: true }));
    assert.equal((await stat(path)).ino, ino, 'the file was never replaced');
    await h.close();
    // A new FileHead continues from the stored counter.
    const again = new FileHead(path);
    await again.write(head(4));
    assert.deepEqual((await readFile(path)).subarray(0, SLOT_BYTES), slot(4, JSON.stringify(head(4))));
    await again.close();
  });

  it('falls back to the other slot when the newer one is damaged, and refuses a file with no valid slot', async () => {
    const good = slot(7, JSON.stringify(head(7)));
    const older = slot(6, JSON.stringify(head(6)));
    const damaged: [string, Buffer][] = [
      ['another magic', slot(8, JSON.stringify(head(8)), { magic: 'CAH2' })],
      [
        'a flipped payload byte',
        (() => {
          const s = slot(8, JSON.stringify(head(8)));
          s[HEADER + 3]! ^= 1;
          return s;
        })(),
      ],
      [
        'a flipped counter byte',
        (() => {
          const s = slot(8, JSON.stringify(head(8)));
          s[11]! ^= 1;
          return s;
        })(),
      ],
      ['a length past the slot', slot(8, JSON.stringify(head(8)), { length: SLOT_BYTES - HEADER + 1 })],
      ['a wrong checksum', slot(8, JSON.stringify(head(8)), { hash: Buffer.alloc(32) })],
      [
        'a length one past the slot, checksummed over all the slot holds',
        (() => {
          // A payload that runs to the slot's end (JSON, then blanks) with a length one byte longer:
          // checksummed over everything after the header, it would read if the length were not checked.
          const json = JSON.stringify(head(8));
          const s = slot(8, json + ' '.repeat(SLOT_BYTES - HEADER - json.length), { length: SLOT_BYTES - HEADER + 1 });
          createHash('sha256').update(s.subarray(0, 16)).update(s.subarray(HEADER)).digest().copy(s, 16);
          return s;
        })(),
      ],
      ['a checksummed payload that is not JSON', slot(8, '{"file":')],
      ['a checksummed payload outside the schema', slot(8, JSON.stringify({ ...head(8), extra: 1 }))],
      [
        'a checksummed head whose hash has a character before its 64 hex digits',
        slot(8, JSON.stringify({ ...head(8), hash: `0${H('8')}` })),
      ],
      [
        'a checksummed head whose hash has a character after its 64 hex digits',
        slot(8, JSON.stringify({ ...head(8), hash: `${H('8')}0` })),
      ],
      [
        'a checksummed head whose sink position has a longer hash',
        slot(8, JSON.stringify({ ...head(8), sinks: [{ seq: 8, hash: `0${H('8')}` }] })),
      ],
      ['a checksummed head with clean: false', slot(8, JSON.stringify({ ...head(8), clean: false }))],
      [
        'a checksummed head with 17 sink positions',
        slot(8, JSON.stringify({ ...head(8), sinks: Array(17).fill(null) })),
      ],
    ];
    for (const [what, newer] of damaged) {
      await writeFile(path, Buffer.concat([newer, older]));
      assert.deepEqual(await new FileHead(path).read(), head(6), what);
    }
    await writeFile(path, Buffer.concat([older, good]));
    assert.deepEqual(await new FileHead(path).read(), head(7), 'the higher counter wins in either slot');
    await writeFile(path, Buffer.concat([slot(9, JSON.stringify(head(9))), slot(9, JSON.stringify(head(8)))]));
    assert.deepEqual(await new FileHead(path).read(), head(9), 'on a tie the first slot wins');
    await writeFile(path, Buffer.concat([damaged[0]![1], damaged[1]![1]]));
    await assert.rejects(new FileHead(path).read(), /the audit chain head .* is unreadable/);
    await writeFile(path, Buffer.alloc(HEAD_FILE_BYTES));
    await assert.rejects(new FileHead(path).read(), /is unreadable/);
  });

  it('accepts a payload that fills its slot exactly, and shortens an over-long file name to fit', async () => {
    const base = JSON.stringify(head(1, { file: '' }));
    const fits = head(1, { file: 'f'.repeat(SLOT_BYTES - HEADER - base.length) });
    assert.equal(JSON.stringify(fits).length, SLOT_BYTES - HEADER);
    await writeFile(path, Buffer.concat([slot(1, JSON.stringify(fits)), Buffer.alloc(SLOT_BYTES)]));
    assert.deepEqual(await new FileHead(path).read(), fits);
    const h = new FileHead(path);
    await h.write(head(2, { file: fits.file }));
    assert.deepEqual(await h.read(), head(2, { file: fits.file }), 'exactly full: kept whole');
    await h.write(head(3, { file: `${fits.file}x` }));
    assert.deepEqual(
      await h.read(),
      head(3, { file: fits.file.slice(0, 256) }),
      'one byte over: the informational file name is cut to 256',
    );
    await h.close();
  });

  it('keeps per-sink positions, null for streams, up to 16', async () => {
    const h = new FileHead(path);
    const sinks = [{ seq: 3, hash: H('a') }, null, ...Array.from({ length: 14 }, (_, i) => ({ seq: i, hash: H('b') }))];
    await h.write(head(3, { sinks }));
    assert.deepEqual(await new FileHead(path).read(), head(3, { sinks }));
    await h.close();
  });

  it('reads an old-format JSON head once and replaces it with the two-slot file on the first write', async () => {
    await writeFile(path, JSON.stringify({ file: '/var/log/a.log', seq: 4, hash: H('c') }));
    const h = new FileHead(path);
    assert.deepEqual(await h.read(), { file: '/var/log/a.log', seq: 4, hash: H('c') });
    await h.write(head(5));
    const bytes = await readFile(path);
    assert.equal(bytes.length, HEAD_FILE_BYTES);
    assert.deepEqual(await new FileHead(path).read(), head(5));
    await h.close();
    for (const bad of [
      '{"file":"a","seq":4}',
      '{"file":"","seq":4,"hash":"' + H('c') + '"}',
      '{"file":"a","seq":-1,"hash":"' + H('c') + '"}',
      '{"file":"a","seq":4,"hash":"' + H('c') + '","clean":true}',
      'not json',
    ]) {
      await writeFile(path, bad);
      await assert.rejects(new FileHead(path).read(), /is unreadable/, bad);
    }
  });

  it('refuses a file of another size that is not JSON, and a two-slot-sized file that starts like JSON', async () => {
    await writeFile(path, Buffer.concat([slot(1, JSON.stringify(head(1))), Buffer.alloc(10)]));
    await assert.rejects(new FileHead(path).read(), /is unreadable/);
    const jsonLike = Buffer.concat([slot(1, JSON.stringify(head(1))), slot(2, JSON.stringify(head(2)))]);
    jsonLike[0] = 0x7b;
    await writeFile(path, jsonLike);
    await assert.rejects(new FileHead(path).read(), /is unreadable/, 'read as JSON, not as its valid second slot');
  });

  it('reads an old-format JSON head of exactly the two-slot size as JSON', async () => {
    const base = JSON.stringify({ file: '', seq: 4, hash: H('c') }).length;
    const legacy = { file: 'f'.repeat(HEAD_FILE_BYTES - base), seq: 4, hash: H('c') };
    assert.equal(JSON.stringify(legacy).length, HEAD_FILE_BYTES);
    await writeFile(path, JSON.stringify(legacy));
    const h = new FileHead(path);
    assert.deepEqual(await h.read(), legacy);
    await h.write(head(5));
    assert.deepEqual(
      (await readFile(path)).subarray(SLOT_BYTES),
      slot(1, JSON.stringify(head(5))),
      'replaced by a new two-slot file',
    );
    await h.close();
  });

  it('takes only "no such file" for "no head": another error reading or writing it is an error', async () => {
    await mkdir(path);
    await assert.rejects(new FileHead(path).read(), { code: 'EISDIR' });
    await rm(path, { recursive: true });
    await symlink(path, path); // a loop: ELOOP on every open
    await assert.rejects(new FileHead(path).read(), { code: 'ELOOP' });
    await assert.rejects(new FileHead(path).write(head(1)), { code: 'ELOOP' });
    assert.equal(
      await readFile(path).catch((e: NodeJS.ErrnoException) => e.code),
      'ELOOP',
      'not replaced by a new head file',
    );
  });

  it('reopens a head file that was replaced behind its back, and creates it again if it was removed', async () => {
    const h = new FileHead(path);
    await h.write(head(1));
    await h.write(head(2));
    const copy = await readFile(path);
    await rm(path);
    await writeFile(path, copy); // a new inode with the same content
    await h.write(head(3));
    assert.deepEqual(await new FileHead(path).read(), head(3));
    assert.deepEqual(
      (await readFile(path)).subarray(SLOT_BYTES),
      slot(3, JSON.stringify(head(3))),
      'the counter went on from the file',
    );
    await rm(path);
    await h.write(head(4));
    assert.deepEqual(await new FileHead(path).read(), head(4));
    assert.deepEqual(
      (await readFile(path)).subarray(SLOT_BYTES),
      slot(1, JSON.stringify(head(4))),
      'a new file starts at counter 1',
    );
    await h.close();
    await h.close();
  });

  it('recovers when a write failed on a file since replaced, and fails closed when the file is still the same', async () => {
    const h = new FileHead(path);
    await h.write(head(1));
    // The handle the head writes through goes bad (as after EIO on the old file): every write to it fails.
    const handle = () => (h as unknown as { handle: { close(): Promise<void> } }).handle;
    await handle().close();
    await assert.rejects(h.write(head(2)), { code: 'EBADF' }, 'same file: the failed write is the answer');
    assert.deepEqual(await new FileHead(path).read(), head(1), 'nothing was reported written');

    // The operator replaces the file: the next write lands in the new one. (The old file is
    // held open, as a bad handle that was never closed holds it, so its inode is not reused.)
    const old = await open(path, 'r');
    const copy = await readFile(path);
    await rm(path);
    await writeFile(path, copy);
    await h.write(head(3));
    assert.deepEqual(await new FileHead(path).read(), head(3));
    await old.close();
    await h.close();
  });

  it('opens the head file O_DSYNC (Linux: the flag as /proc shows it)', async function () {
    if (process.platform !== 'linux') this.skip();
    const h = new FileHead(path);
    await h.write(head(1));
    const fd = (h as unknown as { handle: { fd: number } }).handle.fd;
    const bits = await openFlags(fd);
    assert.ok((bits & 0o10000) !== 0, `O_DSYNC in ${bits.toString(8)}`);
    await h.close();
  });
});
