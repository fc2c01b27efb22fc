import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';

/** Requests started per event-loop turn before the rest wait for the next one (docs/performance.md). */
export const DEFAULT_PER_TURN = 8;

/**
 * Starts at most `perTurn` requests per event-loop turn; the others wait, in arrival order, for
 * the next turn's check phase.
 *
 * Why: node hands the listener every request that is ready in one poll phase, one after the
 * other, and I/O completions are only seen in the next poll phase. When fifty keep-alive
 * clients get their answers together, their next fifty requests arrive together, and the
 * audit write those requests wait on cannot advance (each of its steps, a path check, a
 * synced write, the chain head, is a completion) until all fifty have been started: the
 * main thread then sits idle while the write finishes, and the clients stay in lockstep.
 * Starting a few per turn lets each completion in between, so audit groups overlap with the
 * requests still to start. No request is refused or dropped here, and one that arrives while
 * none wait starts at once: with few clients nothing changes.
 *
 * Counted in requests, not time: a handler returns at its first await, long before its work
 * is done (that runs in the microtasks after it), so the time a turn spends calling handlers
 * says little about the turn's cost.
 */
export function paced(listener: RequestListener, perTurn = DEFAULT_PER_TURN): RequestListener {
  if (!Number.isInteger(perTurn) || perTurn < 1) throw new RangeError('perTurn must be a positive integer');
  let waiting: ([IncomingMessage, ServerResponse] | undefined)[] = [];
  let next = 0;
  /** Requests started since the last check phase, while none waited. */
  let startedThisTurn = 0;
  let turnEndQueued = false;
  let drainQueued = false;

  const endTurn = (): void => {
    turnEndQueued = false;
    if (!drainQueued) startedThisTurn = 0;
  };

  const drain = (): void => {
    drainQueued = false;
    startedThisTurn = 0;
    const end = Math.min(waiting.length, next + perTurn);
    try {
      while (next < end) {
        const [req, res] = waiting[next]!;
        waiting[next++] = undefined; // not kept alive by the queue once started
        listener(req, res);
      }
    } finally {
      if (next < waiting.length) {
        drainQueued = true;
        setImmediate(drain);
      } else {
        waiting = [];
        next = 0;
      }
    }
  };

  return (req, res) => {
    if (!drainQueued && startedThisTurn < perTurn) {
      startedThisTurn++;
      if (!turnEndQueued) {
        turnEndQueued = true;
        setImmediate(endTurn);
      }
      listener(req, res);
      return;
    }
    waiting.push([req, res]);
    if (!drainQueued) {
      drainQueued = true;
      setImmediate(drain);
    }
  };
}
