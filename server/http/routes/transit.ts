import type { Request, Response, Router } from 'express';
import { CofferError } from '../../errors.js';
import { SEGMENT } from '../../paths.js';
import { fromBase64, toBase64, zeroize } from '../../crypto/bytes.js';
import { requireCapability } from '../authenticate.js';
import { jsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import { methods } from '../router.js';
import { validate } from '../validate.js';
import {
  datakeyBody,
  decryptBody,
  emptyBody,
  encryptBody,
  keyConfigBody,
  keyCreateBody,
} from '../../../sdk/wire/schemas.js';
import type { TransitKeyInfo } from '../../../sdk/wire/types.js';

/**
 * The data-key API (`/v1/keys/:name`). Capabilities on `transit/<name>`: `create` to create,
 * `update` to rotate, configure, encrypt, make data keys and rewrap, `read` to decrypt and to
 * read the key's description (never its material).
 */
export function transitRoutes(router: Router, deps: AppDeps): void {
  const { transit, access } = deps;
  const nameOf = (req: Request) => {
    const name = req.params.name;
    if (typeof name !== 'string' || !SEGMENT.test(name))
      throw new CofferError('invalid_path', 'key name must be one segment of [A-Za-z0-9._-]');
    return name;
  };
  const can = (res: Response, capability: 'create' | 'update' | 'read' | 'admin', name: string) =>
    requireCapability(access, res, capability, `transit/${name}`);
  const bytes = (b64: string | undefined) => (b64 === undefined ? undefined : fromBase64(b64)!);

  methods(router, '/v1/keys/:name', {
    get: async (req, res) => {
      const name = nameOf(req);
      can(res, 'read', name);
      const info = await transit.info(name);
      if (!info) throw new CofferError('not_found', `key ${name} not found`);
      res.json(info satisfies TransitKeyInfo);
    },
    post: [
      jsonBody,
      async (req, res) => {
        const name = nameOf(req);
        const body = validate(keyCreateBody, req.body);
        can(res, 'create', name);
        res.json((await transit.create(name, body)) satisfies TransitKeyInfo);
      },
    ],
  });

  const action = (
    verb: string,
    capability: 'update' | 'read' | 'admin',
    handle: (name: string, body: unknown) => Promise<unknown>,
  ) =>
    methods(router, `/v1/keys/:name/${verb}`, {
      post: [
        jsonBody,
        async (req, res) => {
          const name = nameOf(req);
          can(res, capability, name);
          res.json(await handle(name, req.body));
        },
      ],
    });

  action('rotate', 'update', (name, body) => (validate(emptyBody, body), transit.rotate(name)));
  // min_decryption_version decides which ciphertexts stay readable: lowering it brings retired
  // versions back, raising it strands data. Not for every service that may encrypt.
  action('config', 'admin', (name, body) =>
    transit.configure(name, validate(keyConfigBody, body).min_decryption_version),
  );
  action('encrypt', 'update', async (name, body) => {
    const b = validate(encryptBody, body);
    return { ciphertext: await transit.encrypt(name, bytes(b.plaintext)!, bytes(b.context)) };
  });
  action('decrypt', 'read', async (name, body) => {
    const b = validate(decryptBody, body);
    const plaintext = await transit.decrypt(name, b.ciphertext, bytes(b.context));
    try {
      return { plaintext: toBase64(plaintext) };
    } finally {
      zeroize(plaintext);
    }
  });
  action('datakey', 'update', async (name, body) => {
    const b = validate(datakeyBody, body);
    const { plaintext, ciphertext } = await transit.dataKey(name, bytes(b.context));
    try {
      return { plaintext: toBase64(plaintext), ciphertext };
    } finally {
      zeroize(plaintext);
    }
  });
  action('rewrap', 'update', async (name, body) => {
    const b = validate(decryptBody, body);
    return { ciphertext: await transit.rewrap(name, b.ciphertext, bytes(b.context)) };
  });
}
