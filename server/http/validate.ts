import type { IncomingMessage } from 'node:http';
import { parse as parseQueryString } from 'node:querystring';
import parseurl from 'parseurl';
import type { z } from 'zod';
import { CofferError } from '../errors.js';

/**
 * Parses `input` with a zod schema. The error names the fields and what was expected, never
 * the values received (they may be secrets).
 */
export function validate<T extends z.ZodType>(schema: T, input: unknown, where = 'body'): z.infer<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.map(String).join('.');
  const code =
    issue.code === 'too_big' && issue.origin === 'string' && field.startsWith('data') ? 'too_large' : 'invalid_request';
  const subject = [where === 'body' && field ? '' : where, field].filter(Boolean).join(' ');
  throw new CofferError(code, `${subject}: ${explain(issue)}`);
}

const ofEmptyQuery = new WeakMap<z.ZodType, unknown>();

/**
 * The request's query string (found with parseurl and parsed with node:querystring, as express 5's `req.query` is)
 * checked by `schema`. Most requests carry none; the answer for that one input is the same
 * every time, so it is worked out once per schema (and frozen: callers share it).
 */
export function validateQuery<T extends z.ZodType>(schema: T, req: IncomingMessage): z.infer<T> {
  // parseurl, as express's `req.query`: the query ends at a fragment, and a `?` inside one is not a query.
  const query = parseurl(req)?.query;
  if (typeof query === 'string') return validate(schema, parseQueryString(query), 'query');
  if (ofEmptyQuery.has(schema)) return ofEmptyQuery.get(schema) as z.infer<T>;
  const parsed = Object.freeze(validate(schema, {}, 'query')) as z.infer<T>;
  ofEmptyQuery.set(schema, parsed);
  return parsed;
}

function explain(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${issue.expected}`;
    case 'unrecognized_keys':
      return `unknown field ${issue.keys.join(', ')}`;
    case 'too_big':
      return `too large (maximum ${String(issue.maximum)})`;
    case 'too_small':
      return `too small (minimum ${String(issue.minimum)})`;
    case 'invalid_format':
    case 'invalid_value':
    case 'custom':
    default:
      return issue.message.replace(/received .*/i, '').trim() || 'invalid value';
  }
}
