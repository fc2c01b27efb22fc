import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';

/** Requests started at a time before the rest wait for the next check phase (docs/performance.md). */
export const DEFAULT_PER_TURN = 8;
/** Waiting requests, in units of `perTurn`, past which pacing gives way (see `paced`). */
const MAX_WAITING_TURNS = 32;

/**
 * Starts requests at most `perTurn` at a time: of those node hands the listener in one poll
 * phase, the first `perTurn` start at once and the others wait, in arrival order; each check
 * phase then starts the next `perTurn` of them.
 *
 * Why: node hands the listener every request that is ready in one poll phase, one after the
 * other, and I/O completions are only seen in the next poll phase. When fifty keep-alive
 * clients get their answers together, their next fifty requests arrive together, and the
 * audit write those requests wait on cannot advance (each of its steps, a path check, a
 * synced write, the chain head, is a completion) until all fifty have been started: the
 * main thread then sits idle while the write finishes, and the clients stay in lockstep.
 * Starting a few at a time lets completions in between, so audit groups overlap with the
 * requests still to start.
 *
 * Counted in requests, not time: a handler returns at its first await, long before its work
 * is done (that runs in the microtasks after it), so the time spent calling handlers says
 * little about what a turn costs.
 *
 * A waiting request has written nothing, so node does not pause a connection that pipelines
 * requests behind it (it pauses on unsent answers). So that one client cannot queue without
 * bound ahead of everyone else, past `perTurn * 32` waiting requests every one of them starts
 * at once, as without pacing: the answers they write then pause such a connection. A request
 * whose connection closed while it waited is not started (nothing was done for it, so there
 * is nothing to audit); its handler would wait for body events that have already passed.
 */
export function paced(listener: RequestListener, perTurn = DEFAULT_PER_TURN): RequestListener {
  if (!Number.isInteger(perTurn) || perTurn < 1) throw new RangeError('perTurn must be a positive integer');
  const maxWaiting = perTurn * MAX_WAITING_TURNS;
  const waiting: [IncomingMessage, ServerResponse][] = [];
  /** Requests started at once in this poll phase. */
  let startedThisTurn = 0;
  let turnEndQueued = false;
  /** A drain is queued or running: arrivals wait behind the requests already waiting. */
  let draining = false;

  const endTurn = (): void => {
    turnEndQueued = false;
    startedThisTurn = 0;
  };

  const start = (count: number): void => {
    try {
      let started = 0;
      while (started < count) {
        const next = waiting.shift();
        if (!next) break;
        const [req, res] = next;
        if (req.destroyed || res.destroyed || req.socket.destroyed) continue;
        started++;
        listener(req, res);
      }
    } finally {
      // Also after a listener threw: the rest still start, at the next check phase.
      if (waiting.length > 0) setImmediate(drain);
      else draining = false;
    }
  };

  const drain = (): void => start(perTurn);

  return (req, res) => {
    if (!draining && startedThisTurn < perTurn) {
      startedThisTurn++;
      if (!turnEndQueued) {
        turnEndQueued = true;
        setImmediate(endTurn);
      }
      listener(req, res);
      return;
    }
    waiting.push([req, res]);
    if (waiting.length > maxWaiting) {
      // A drain is already queued (draining): it finds the queue empty and ends.
      start(waiting.length);
      return;
    }
    if (!draining) {
      draining = true;
      setImmediate(drain);
    }
  };
}
