import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The request and response as node:http gives them, with the per-request locals (locals.ts).
 * Every edge step, the error handler and the hot routes are written against these and nothing
 * of express, so that the hot dispatcher (hot.ts) runs them on node's own objects, while the
 * express router runs the same functions on its (which extend these).
 */
export type HttpRequest = IncomingMessage & { route?: unknown; body?: unknown };
export type HttpResponse = ServerResponse & { locals: Express.Locals };

/** The path of a raw request target (`req.url`), without its query. */
export function pathnameOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * Answers with a JSON body, with the headers express's `res.json` gives (the body's type with
 * its charset, its length). Through `res.end`, so the audit hold (audit.ts) applies.
 */
export function sendJson(res: ServerResponse, body: unknown, status = 200): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}
