import assert from 'node:assert/strict';

/** Small HTTP helpers for tests that drive a real `coffer server` process (crash rounds, soak). */

export interface Reply {
  status: number;
  body: any;
}

export async function call(
  url: string,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
  timeoutMs = 30_000,
): Promise<Reply> {
  const res = await fetch(url + path, {
    method,
    signal: AbortSignal.timeout(timeoutMs),
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text || undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* Prometheus text */
  }
  return { status: res.status, body: parsed };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` every `everyMs` until it returns a truthy value; fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  what: string,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`,
      );
    await sleep(everyMs);
  }
}

/** `count` PUTs with `concurrency` in flight; every one must be acknowledged. */
export async function seed(
  url: string,
  token: string,
  count: number,
  concurrency: number,
  make: (i: number) => { path: string; data: Record<string, string> },
): Promise<Map<string, Record<string, string>>> {
  const written = new Map<string, Record<string, string>>();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const { path, data } = make(next++);
        const r = await call(url, 'PUT', `/v1/secrets/${path}`, token, { data });
        assert.equal(r.status, 200, `seeding ${path}: ${JSON.stringify(r.body)}`);
        written.set(path, data);
      }
    }),
  );
  return written;
}

/**
 * Writers that PUT fresh paths until stopped or until the server dies under them. Every 2xx
 * answer is recorded in `acked`: those writes must survive whatever happens next.
 */
export function startWriters(
  url: string,
  token: string,
  options: {
    writers: number;
    paths: (writer: number, i: number) => string;
    acked: Map<string, string>;
    max?: number;
    tag: string;
  },
) {
  let stop = false;
  const statuses = new Map<number, number>();
  let sent = 0;
  const max = options.max ?? 100_000;
  const loops = Array.from({ length: options.writers }, async (_, w) => {
    for (let i = 0; !stop && sent < max; i++) {
      sent++;
      const path = options.paths(w, i);
      const value = `${options.tag}-w${w}-i${i}`;
      try {
        const r = await call(url, 'PUT', `/v1/secrets/${path}`, token, { data: { v: value } });
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 200) options.acked.set(path, value);
      } catch {
        return; // killed mid-request: never acknowledged
      }
    }
  });
  return {
    statuses,
    async stop(): Promise<void> {
      stop = true;
      await Promise.all(loops);
    },
  };
}

/** Reads `expected` back (100 paths per batch) and asserts every value. */
export async function assertAllRead(
  url: string,
  token: string,
  expected: Map<string, string | Record<string, string>>,
  what: string,
): Promise<void> {
  const entries = [...expected];
  for (let k = 0; k < entries.length; k += 100) {
    const chunk = entries.slice(k, k + 100);
    const r = await call(url, 'POST', '/v1/secrets:batch', token, { paths: chunk.map(([p]) => p) });
    assert.equal(r.status, 200, `${what}: batch read: ${JSON.stringify(r.body)}`);
    for (const [path, value] of chunk) {
      const got = r.body.secrets[path]?.data;
      const want = typeof value === 'string' ? { v: value } : value;
      assert.deepEqual(
        got,
        want,
        `${what}: ${path} ${got ? 'changed' : `lost (${JSON.stringify(r.body.errors[path])})`}`,
      );
    }
  }
}

/** Every secret path under `prefix` (paginated listing). */
export async function listAll(url: string, token: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let after: string | null = null;
  for (let page = 0; page < 10_000; page++) {
    const q = new URLSearchParams({ limit: '1000', ...(prefix ? { prefix } : {}), ...(after ? { after } : {}) });
    const r = await call(url, 'GET', `/v1/secrets?${q}`, token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    keys.push(...(r.body.keys as string[]));
    after = r.body.next;
    if (after === null) return keys;
  }
  throw new Error('listing did not end');
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
