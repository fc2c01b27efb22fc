/**
 * Master key versions change one at a time: a BYOK import computes the number its material
 * will get and records its usage rights under it before installing it, and a rotation drops
 * rights left under the number it takes. Run side by side, either could take the other's
 * number and leave imported material current with no rights at all. Both run their change
 * through this queue (one per process: one vault per process).
 */
let queue: Promise<unknown> = Promise.resolve();

export function changeMasterVersions<T>(change: () => Promise<T>): Promise<T> {
  const run = queue.then(change);
  queue = run.catch(() => undefined);
  return run;
}
