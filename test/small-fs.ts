import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SmallFs {
  dir: string;
  unmount(): Promise<void>;
}

/**
 * A tmpfs of `sizeMiB` mounted on a fresh directory, for disk-full tests. Needs root (CI runs
 * as root); elsewhere it returns undefined and the caller skips, saying so loudly.
 */
export async function mountSmallFs(sizeMiB: number): Promise<SmallFs | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-smallfs-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', dir]);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    if (process.env.CI)
      throw new Error(`cannot mount a tmpfs for the disk-full tests (CI runs as root): ${(e as Error).message}`);
    process.stderr.write(
      `\n    SKIPPED: cannot mount a tmpfs here (${(e as Error).message.split('\n')[0]}); disk-full tests need root\n`,
    );
    return undefined;
  }
  return {
    dir,
    async unmount() {
      await run('umount', ['-l', dir]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
