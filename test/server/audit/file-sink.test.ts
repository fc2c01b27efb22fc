import assert from 'node:assert/strict';
import { readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FileSink } from '../../../server/audit/file-sink.js';
import { openFlags, tempDir } from '../../helpers.js';

/**
 * The audit file sink (server/audit/file-sink.ts) on its own: each group is one write to a
 * file opened O_DSYNC, and a file rotated away is replaced by a new one at the path.
 */
describe('audit file sink', () => {
  const fdOf = (sink: FileSink) => (sink as unknown as { handle: { fd: number } }).handle.fd;

  it('opens its file O_DSYNC (Linux: the flag as /proc shows it), appending and private to the server', async function () {
    if (process.platform !== 'linux') this.skip();
    const path = join(await tempDir('coffer-sink-'), 'audit.log');
    const sink = new FileSink(path);
    await sink.write('{"a":1}\n');
    const bits = await openFlags(fdOf(sink));
    assert.ok((bits & 0o10000) !== 0, `O_DSYNC in ${bits.toString(8)}`);
    assert.ok((bits & 0o2000) !== 0, `O_APPEND in ${bits.toString(8)}`);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    await sink.close();
  });

  it('starts a new file O_DSYNC where the old one was rotated away, losing no line', async function () {
    if (process.platform !== 'linux') this.skip();
    const dir = await tempDir('coffer-sink-');
    const path = join(dir, 'audit.log');
    const sink = new FileSink(path);
    await sink.write('{"a":1}\n');
    await rename(path, join(dir, 'audit.log.1'));
    await sink.write('{"a":2}\n');
    assert.equal(await readFile(join(dir, 'audit.log.1'), 'utf8'), '{"a":1}\n');
    assert.equal(await readFile(path, 'utf8'), '{"a":2}\n');
    const bits = await openFlags(fdOf(sink));
    assert.ok((bits & 0o10000) !== 0, `O_DSYNC in ${bits.toString(8)}`);
    await sink.close();
  });
});
