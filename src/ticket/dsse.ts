import { BreakglassError } from '../errors.ts';
import { decodeBase64Strict } from './base64.ts';
import { MAX_SSHSIG_BYTES, signatureForm } from './sshsig.ts';
import { findDuplicateKey } from './strict-json.ts';

/** A DSSE envelope (github.com/secure-systems-lab/dsse, envelope.md). */
export interface Envelope {
  readonly payloadType: string;
  /** The exact payload bytes that were signed. */
  readonly payload: Buffer;
  readonly signatures: readonly EnvelopeSignature[];
}

export interface EnvelopeSignature {
  /** A hint only: a signature counts when it verifies under a key the policy trusts. */
  readonly keyid: string;
  readonly sig: Buffer;
}

// Input limits (docs/rules.md): bound the work before anything is interpreted.
export const MAX_ENVELOPE_BYTES = 64 * 1024;
export const MAX_PAYLOAD_BYTES = 16 * 1024;
export const MAX_SIGNATURES = 32;

/** DSSE pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  // A2: lengths are byte counts; the type is bound into what is signed (see A1).
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `),
    type,
    Buffer.from(` ${payload.length} `),
    payload,
  ]);
}

function fail(message: string): never {
  throw new BreakglassError('ENVELOPE_MALFORMED', message);
}

/**
 * Parses an envelope strictly: a JSON object with exactly payloadType, payload and signatures,
 * canonical base64, bounded sizes. The payload is returned as bytes and not interpreted here.
 */
export function parseEnvelope(input: string | Uint8Array): Envelope {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.length;
  if (size > MAX_ENVELOPE_BYTES) {
    throw new BreakglassError(
      'INPUT_TOO_LARGE',
      `ticket envelope is ${size} bytes; the limit is ${MAX_ENVELOPE_BYTES}`,
    );
  }
  let text: string;
  try {
    text =
      typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch {
    fail('ticket envelope is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    fail('ticket envelope is not valid JSON (truncated or corrupted?)');
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) {
    fail(`ticket envelope has the field ${JSON.stringify(duplicate.slice(0, 40))} twice`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json))
    fail('ticket envelope is not a JSON object');
  const obj = json as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (k !== 'payloadType' && k !== 'payload' && k !== 'signatures') {
      fail(`ticket envelope has an unknown field "${k.slice(0, 40)}"`);
    }
  }
  if (
    typeof obj.payloadType !== 'string' ||
    obj.payloadType.length === 0 ||
    obj.payloadType.length > 200
  ) {
    fail('ticket envelope: payloadType must be a non-empty string');
  }
  const payload = decodeBase64Strict(
    obj.payload,
    'payload',
    'ENVELOPE_MALFORMED',
    MAX_PAYLOAD_BYTES,
  );
  if (!Array.isArray(obj.signatures)) fail('ticket envelope: signatures must be an array');
  if (obj.signatures.length > MAX_SIGNATURES) {
    throw new BreakglassError(
      'INPUT_TOO_LARGE',
      `ticket envelope has more than ${MAX_SIGNATURES} signatures`,
    );
  }
  const signatures = obj.signatures.map((s: unknown, i: number): EnvelopeSignature => {
    if (!s || typeof s !== 'object' || Array.isArray(s)) fail(`signatures[${i}] is not an object`);
    const so = s as Record<string, unknown>;
    for (const k of Object.keys(so)) {
      if (k !== 'keyid' && k !== 'sig')
        fail(`signatures[${i}] has an unknown field "${k.slice(0, 40)}"`);
    }
    const keyid = so.keyid ?? '';
    if (typeof keyid !== 'string' || keyid.length > 100)
      fail(`signatures[${i}].keyid must be a string`);
    const sig = decodeBase64Strict(
      so.sig,
      `signatures[${i}].sig`,
      'ENVELOPE_MALFORMED',
      MAX_SSHSIG_BYTES,
    );
    // S1: a raw Ed25519 signature (64 bytes) or an SSHSIG blob, parsed strictly now.
    signatureForm(sig);
    return { keyid, sig };
  });
  return { payloadType: obj.payloadType, payload, signatures };
}

/** Serialises an envelope as stored in `ticket.json` (stable key order, trailing newline). */
export function serializeEnvelope(env: Envelope): string {
  return (
    JSON.stringify(
      {
        payloadType: env.payloadType,
        payload: env.payload.toString('base64'),
        signatures: env.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig.toString('base64') })),
      },
      null,
      2,
    ) + '\n'
  );
}
