import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import request from 'supertest';
import { buildOpenApi, errorCodesOf, errorStatusOf } from '../../../server/http/openapi.js';
import { OPENAPI_PATH, ROUTES, type RouteEntry } from '../../../server/http/route-catalogue.js';
import * as schemas from '../../../sdk/wire/schemas.js';
import { ERROR_STATUS } from '../../../sdk/wire/errors.js';
import { openVault, type TestVault } from '../../helpers.js';
import { catalogueRoutes, minus, servedRoutes } from './route-list.js';

/**
 * The route catalogue against the real router, the OpenAPI document against a validator, and
 * every route's documented responses against what it really answers.
 */

type Operation = {
  responses: Record<
    string,
    {
      content?: Record<
        string,
        { schema?: { allOf?: [unknown, { properties: { error: { properties: { code: { enum: string[] } } } } }] } }
      >;
    }
  >;
};
type Doc = { paths: Record<string, Record<string, Operation>> };

const operationOf = (doc: Doc, r: RouteEntry) => doc.paths[r.openapiPath]![r.method.toLowerCase()]!;

/** A concrete URL for an entry: `{path}` -> `app/probe`, `{name}` -> `probe`, `{ns}` -> `app`. */
const urlOf = (r: RouteEntry) =>
  r.openapiPath.replace('{path}', 'app/probe').replace('{name}', 'probe').replace('{ns}', 'app');

function send(vault: TestVault, r: RouteEntry, headers: Record<string, string>, body?: object) {
  const verb = r.method.toLowerCase() as 'get' | 'put' | 'post' | 'patch' | 'delete';
  const req = request(vault.app)[verb](urlOf(r)).set(headers);
  if (verb === 'patch') req.set('Content-Type', 'application/merge-patch+json'); // what Vault's PATCH takes
  return body === undefined ? req : req.send(body);
}

/** Fails unless the status, and for an error its code, are in the operation's documented responses. */
function assertDocumented(doc: Doc, r: RouteEntry, res: request.Response, what: string): void {
  const documented = operationOf(doc, r).responses[String(res.status)];
  assert.ok(
    documented,
    `${what}: ${r.method} ${r.openapiPath} answered ${res.status} ${JSON.stringify(res.body)}, not documented`,
  );
  if (res.body?.error !== undefined) {
    const codes = documented.content?.['application/json']?.schema?.allOf?.[1].properties.error.properties.code.enum;
    assert.ok(
      codes?.includes(res.body?.error?.code),
      `${what}: ${r.method} ${r.openapiPath} answered ${res.status} ${res.body?.error?.code}, documented ${String(codes)}`,
    );
  }
}

describe('OpenAPI and the route catalogue', function () {
  this.timeout(60_000);
  let vault: TestVault;
  const doc = buildOpenApi({ version: 'test' }) as Doc;

  before(async () => {
    vault = await openVault();
  });
  after(async () => vault?.cleanup());

  it('lists every route the router serves, and only those (method and path)', () => {
    const served = servedRoutes(vault.app.express);
    const listed = catalogueRoutes();
    assert.ok(served.length > 50, `the router walk found only ${served.length} routes`);
    assert.deepEqual(minus(served, listed), [], 'served by the router but missing from server/http/route-catalogue.ts');
    assert.deepEqual(minus(listed, served), [], 'in server/http/route-catalogue.ts but not served by the router');
  });

  it('names each operation once, with unique operation ids and every path parameter declared', () => {
    const ids = ROUTES.map((r) => r.operationId);
    assert.deepEqual(
      ids.filter((id, i) => ids.indexOf(id) !== i),
      [],
    );
    const ops = ROUTES.map((r) => `${r.method} ${r.openapiPath}`);
    assert.deepEqual(
      ops.filter((op, i) => ops.indexOf(op) !== i),
      [],
    );
    for (const r of ROUTES) {
      const params = (operationOf(doc, r) as { parameters?: { name: string; in: string }[] }).parameters ?? [];
      for (const [, name] of r.openapiPath.matchAll(/\{([a-z]+)\}/g)) {
        assert.ok(
          params.some((p) => p.in === 'path' && p.name === name),
          `${r.method} ${r.openapiPath}: path parameter ${name} not declared`,
        );
      }
    }
  });

  it('takes request schemas from the schema modules the handlers import (never copies)', () => {
    const exported = new Set<unknown>(Object.values(schemas));
    for (const r of ROUTES) {
      if (r.body)
        assert.ok(
          exported.has(r.body),
          `${r.method} ${r.openapiPath}: body schema is not an export of sdk/wire/schemas.ts`,
        );
      if (r.query)
        assert.ok(
          exported.has(r.query),
          `${r.method} ${r.openapiPath}: query schema is not an export of sdk/wire/schemas.ts`,
        );
    }
  });

  it('is a valid OpenAPI 3.1 document (checked by @seriousme/openapi-schema-validator)', async () => {
    const result = await new Validator().validate(doc as Record<string, unknown>);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
    assert.equal((doc as { openapi?: string }).openapi, '3.1.0');
    // The validator does catch a broken document.
    const broken = structuredClone(doc) as Doc;
    (broken.paths['/v1/sys/health']!.get as unknown as { responses: unknown }).responses = 'none';
    assert.equal((await new Validator().validate(broken as unknown as Record<string, unknown>)).valid, false);
  });

  it('documents only error codes of the catalogue sdk/wire/errors.ts, at their status', () => {
    for (const r of ROUTES) {
      const op = operationOf(doc, r);
      for (const code of errorCodesOf(r)) {
        assert.ok(code in ERROR_STATUS);
        const status = errorStatusOf(r, code); // the catalogue's, or Vault's for the Vault routes
        assert.ok(op.responses[String(status)], `${r.operationId}: ${code} has no ${status} response`);
      }
    }
  });

  it('describes bodies as strict JSON Schema from zod (an unknown field is refused there and by the route)', async () => {
    const put = operationOf(
      doc,
      ROUTES.find((r) => r.operationId === 'writeSecret')!,
    ) as unknown as {
      requestBody: {
        required: boolean;
        content: {
          'application/json': {
            schema: { additionalProperties: boolean; required: string[]; properties: Record<string, unknown> };
          };
        };
      };
    };
    const schema = put.requestBody.content['application/json'].schema;
    assert.equal(put.requestBody.required, true);
    assert.equal(schema.additionalProperties, false);
    assert.deepEqual(schema.required, ['data']);
    assert.ok(schema.properties.cas && schema.properties.generate);
    // Each route with a body schema refuses an unknown field with a documented 400.
    for (const r of ROUTES.filter((e) => e.body)) {
      const res = await send(vault, r, vault.auth, { unknown_field_for_openapi_test: 1 });
      assert.equal(res.status, 400, `${r.method} ${urlOf(r)}: ${res.status} ${JSON.stringify(res.body)}`);
      assertDocumented(doc, r, res, 'unknown field');
    }
  });

  it('documents what each route answers without a token', async () => {
    for (const r of ROUTES) {
      const res = await send(vault, r, {}, r.body ? {} : undefined);
      assertDocumented(doc, r, res, 'no token');
      // Vault has no 401: its routes answer 403 with `{errors}`.
      if (r.stage === 'token')
        assert.equal(res.status, r.tag === 'vault' ? 403 : 401, `${r.method} ${urlOf(r)} without a token`);
      if (r.tag === 'vault') assert.ok(Array.isArray(res.body.errors), `${r.method} ${urlOf(r)}: Vault's error shape`);
    }
  });

  it('documents what each route answers while sealed, and serves the document then', async () => {
    const sealed = await openVault();
    try {
      await sealed.seal.seal();
      for (const r of ROUTES.filter((e) => e.operationId !== 'unseal' && e.operationId !== 'init')) {
        const res = await send(sealed, r, sealed.auth, r.body ? {} : undefined);
        assertDocumented(doc, r, res, 'sealed');
        if (r.stage !== 'public' && r.tag === 'vault')
          assert.equal(res.status, 503, `${r.method} ${urlOf(r)} while sealed`);
        else if (r.stage !== 'public')
          assert.equal(res.body?.error?.code, 'sealed', `${r.method} ${urlOf(r)} while sealed`);
      }
      const res = await request(sealed.app).get(OPENAPI_PATH);
      assert.equal(res.status, 200);
      assert.match(res.headers['content-type'] ?? '', /^application\/json/);
      assert.deepEqual(res.body, doc);
    } finally {
      await sealed.cleanup();
    }
  });

  it('serves the document without a token before init', async () => {
    const fresh = await openVault({ init: false });
    try {
      const res = await request(fresh.app).get(OPENAPI_PATH);
      assert.equal(res.status, 200);
      assert.equal(res.body.openapi, '3.1.0');
      assert.equal(res.body.info.version, 'test');
      assert.ok(res.headers['x-request-id']);
      const wrong = await request(fresh.app).post(OPENAPI_PATH);
      assert.equal(wrong.status, 405);
    } finally {
      await fresh.cleanup();
    }
  });
});
