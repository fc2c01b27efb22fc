import { isAbsolute } from 'node:path';
import { CofferError } from '../../errors.js';

/** Where the PIN of a token comes from: never a command-line value. */
export type PinSource = { env: string } | { file: string };

/** One HSM token holding the master key: a module, a token label and its PIN. */
export interface HsmMember {
  module: string;
  token: string;
  pin: PinSource;
}

/**
 * A `--kek pkcs11:` setting: the master key's label and the tokens that hold it, in the order
 * they are used. Several tokens form a cluster (the same key under the same label in each).
 */
export interface Pkcs11Settings {
  keyLabel: string;
  members: HsmMember[];
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** PKCS#11 token labels are at most 32 bytes; keep to printable ASCII without separators. */
const TOKEN_LABEL = /^[A-Za-z0-9 ._-]{1,32}$/;
const KEY_LABEL = /^[A-Za-z0-9._-]{1,64}$/;
const ATTRIBUTES = new Set(['module', 'token', 'key', 'pin-env', 'pin-file']);

const invalid = (why: string) =>
  new CofferError(
    'invalid_request',
    `invalid --kek pkcs11: ${why} (expected pkcs11:module=PATH;token=LABEL[,LABEL];key=LABEL;pin-env=VAR or pin-file=PATH)`,
  );

/**
 * Parses `pkcs11:module=PATH;token=A[,B];key=LABEL;pin-env=VAR` (or `pin-file=PATH`). Several
 * modules join with `|`, each a full `pkcs11:` URI; every member must name the same key label.
 * Unknown or repeated attributes are refused rather than ignored.
 */
export function parsePkcs11Uri(value: string): Pkcs11Settings {
  const members: HsmMember[] = [];
  let keyLabel: string | undefined;
  for (const uri of value.split('|')) {
    if (!uri.startsWith('pkcs11:')) throw invalid(`"${uri.slice(0, 16)}…" is not a pkcs11: URI`);
    const attributes = new Map<string, string>();
    for (const part of uri.slice('pkcs11:'.length).split(';')) {
      const eq = part.indexOf('=');
      const name = eq < 0 ? part : part.slice(0, eq);
      if (!ATTRIBUTES.has(name)) throw invalid(`unknown attribute "${name.slice(0, 16)}"`);
      if (attributes.has(name)) throw invalid(`attribute "${name}" given twice`);
      attributes.set(name, eq < 0 ? '' : part.slice(eq + 1));
    }
    const module = attributes.get('module');
    if (!module || !isAbsolute(module)) throw invalid('module must be an absolute path to the PKCS#11 library');
    const key = attributes.get('key');
    if (!key || !KEY_LABEL.test(key)) throw invalid('key must be a label of letters, digits, ".", "_" or "-"');
    if (keyLabel !== undefined && key !== keyLabel) throw invalid('every cluster member must hold the same key label');
    keyLabel = key;
    const pin = pinSource(attributes.get('pin-env'), attributes.get('pin-file'));
    const tokens = (attributes.get('token') ?? '').split(',');
    for (const token of tokens) {
      if (!TOKEN_LABEL.test(token)) throw invalid('token must list one or more token labels separated by ","');
      if (members.some((m) => m.module === module && m.token === token)) throw invalid(`token "${token}" listed twice`);
      members.push({ module, token, pin });
    }
  }
  return { keyLabel: keyLabel!, members };
}

function pinSource(env: string | undefined, file: string | undefined): PinSource {
  if (env !== undefined && file !== undefined) throw invalid('give pin-env or pin-file, not both');
  if (env !== undefined) {
    if (!ENV_NAME.test(env)) throw invalid('pin-env must name an environment variable');
    return { env };
  }
  if (file !== undefined) {
    if (!isAbsolute(file)) throw invalid('pin-file must be an absolute path');
    return { file };
  }
  throw invalid('the PIN must come from pin-env=VAR or pin-file=PATH, never from the URI itself');
}
