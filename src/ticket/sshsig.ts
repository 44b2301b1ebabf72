import { createHash } from 'node:crypto';
import { BreakglassError } from '../errors.ts';
import {
  isEd25519Type,
  isSkType,
  publicKeyFromWire,
  sshString,
  verifyEd25519Raw,
  verifyP256,
  WireReader,
  type PublicKey,
} from './keys.ts';

/**
 * OpenSSH signatures (PROTOCOL.sshsig) as DSSE signature entries (docs/rules.md S1-S6). The
 * signed message is the DSSE PAE; the blob is what `ssh-keygen -Y sign` armours. Pure.
 */

/** One namespace for every document: PAE already binds the payload type (A1). */
export const SSHSIG_NAMESPACE = 'git-breakglass';
/** The only hash we accept (ssh-keygen's default; sha256 blobs are refused, S3). */
export const SSHSIG_HASH = 'sha512';

const MAGIC = Buffer.from('SSHSIG');
const VERSION = 1;
/** Largest blob: an sk key with the longest application and its signature fit in ~400 bytes. */
export const MAX_SSHSIG_BYTES = 1024;

/** User presence and verification flags of a FIDO signature (CTAP2 authenticator data). */
export const SK_USER_PRESENT = 0x01;
export const SK_USER_VERIFIED = 0x04;

export interface SshSig {
  readonly publicKey: PublicKey;
  readonly namespace: string;
  readonly hashAlgorithm: string;
  /** 64 bytes: the Ed25519 signature, or ECDSA r || s (32 bytes each, from the mpints). */
  readonly signature: Buffer;
  /** For `sk-` keys: the authenticator's flags byte and counter, both signed. */
  readonly sk?: { readonly flags: number; readonly counter: number };
}

/**
 * S1: what a DSSE `sig` is. 64 bytes is a raw Ed25519 signature (no SSHSIG blob is that short:
 * magic, version and an Ed25519 key alone take 61); anything else must parse as SSHSIG.
 */
export function signatureForm(
  bytes: Buffer,
): { readonly kind: 'ed25519' } | { readonly kind: 'sshsig'; readonly sig: SshSig } {
  return bytes.length === 64 ? { kind: 'ed25519' } : { kind: 'sshsig', sig: parseSshSig(bytes) };
}

function malformed(message: string): never {
  throw new BreakglassError('SSHSIG_MALFORMED', `SSH signature: ${message}`);
}

/**
 * Parses an SSHSIG blob strictly (S1): magic, version 1, every length within the buffer and
 * bounded, a key and signature of one accepted type, no trailing bytes anywhere. Namespace and
 * hash are returned, not judged: the verifier gives each its own error (S2, S3).
 */
export function parseSshSig(bytes: Buffer): SshSig {
  if (bytes.length > MAX_SSHSIG_BYTES) {
    throw new BreakglassError(
      'INPUT_TOO_LARGE',
      `SSH signature is ${bytes.length} bytes; the limit is ${MAX_SSHSIG_BYTES}`,
    );
  }
  const r = new WireReader(bytes, malformed);
  if (!r.bytes(MAGIC.length, 'magic').equals(MAGIC)) malformed('does not start with "SSHSIG"');
  const version = r.u32('version');
  if (version !== VERSION) malformed(`version ${version} is not supported (1 is)`);
  const publicKey = publicKeyFromWire(Buffer.from(r.string('public key', 256)), malformed);
  const namespace = r.string('namespace', 64).toString('latin1');
  // The reserved field is empty in every version so far; anything else is not what we verify.
  if (r.string('reserved', 64).length !== 0) malformed('reserved field is not empty');
  const hashAlgorithm = r.string('hash algorithm', 16).toString('latin1');
  const sigBlob = Buffer.from(r.string('signature', 256));
  r.end('the signature');

  const s = new WireReader(sigBlob, malformed);
  const sigType = s.string('signature type', 64).toString('latin1');
  if (sigType !== publicKey.type) {
    malformed(`signature type "${sigType.slice(0, 40)}" does not match key type ${publicKey.type}`);
  }
  let signature: Buffer;
  if (isEd25519Type(publicKey.type)) {
    signature = Buffer.from(s.string('signature bytes', 64));
    if (signature.length !== 64)
      malformed(`an Ed25519 signature has 64 bytes, not ${signature.length}`);
  } else {
    const inner = new WireReader(Buffer.from(s.string('signature bytes', 128)), malformed);
    signature = Buffer.concat([p256Scalar(inner, 'r'), p256Scalar(inner, 's')]);
    inner.end('the ECDSA signature');
  }
  let sk: SshSig['sk'];
  if (isSkType(publicKey.type)) sk = { flags: s.u8('flags'), counter: s.u32('counter') };
  s.end('the signature bytes');
  return { publicKey, namespace, hashAlgorithm, signature, ...(sk ? { sk } : {}) };
}

/**
 * An ECDSA scalar as an SSH mpint (RFC 4251 §5), canonical: positive, non-zero, no needless
 * leading zero byte, at most 256 bits. Returned left-padded to 32 bytes.
 */
function p256Scalar(r: WireReader, what: string): Buffer {
  const m = r.string(`ECDSA ${what}`, 33);
  if (m.length === 0) malformed(`ECDSA ${what} is zero`);
  if (m[0]! & 0x80) malformed(`ECDSA ${what} is negative`);
  if (m[0] === 0 && (m.length === 1 || !(m[1]! & 0x80))) {
    malformed(`ECDSA ${what} is not a canonical mpint`);
  }
  const v = m[0] === 0 ? m.subarray(1) : m;
  if (v.length > 32) malformed(`ECDSA ${what} is longer than 256 bits`);
  return Buffer.concat([Buffer.alloc(32 - v.length), v]);
}

/** PROTOCOL.sshsig "signed data": what the key actually signs, over H(message). */
export function sshSigSignedData(namespace: string, message: Uint8Array): Buffer {
  return Buffer.concat([
    MAGIC,
    sshString(namespace),
    sshString(''),
    sshString(SSHSIG_HASH),
    sshString(createHash('sha512').update(message).digest()),
  ]);
}

/**
 * What an sk- authenticator signs (PROTOCOL.u2f, ssh-ed25519-sk.c, ssh-ecdsa-sk.c):
 * sha256(application) || flags || uint32 counter || sha256(data). Ed25519 signs these bytes;
 * ECDSA signs their SHA-256, as for any ECDSA-SHA256 message.
 */
export function skSignedData(application: string, flags: number, counter: number, data: Buffer) {
  const fc = Buffer.alloc(5);
  fc.writeUInt8(flags, 0);
  fc.writeUInt32BE(counter, 1);
  return Buffer.concat([
    createHash('sha256').update(application).digest(),
    fc,
    createHash('sha256').update(data).digest(),
  ]);
}

/** What a verified SSH signature asserted about its signer. */
export interface SshSigCheck {
  readonly userPresent: boolean;
  readonly userVerified: boolean;
}

/**
 * Verifies a parsed SSHSIG over `message` under `key` (already judged trusted and equal to the
 * blob's key by the caller). Namespace and hash were checked by the caller. null: no verify.
 */
export function verifySshSig(
  sig: SshSig,
  key: PublicKey,
  message: Uint8Array,
  namespace = SSHSIG_NAMESPACE,
): SshSigCheck | null {
  if (!sig.publicKey.wire.equals(key.wire)) return null;
  const data = sshSigSignedData(namespace, message);
  const check = isEd25519Type(key.type) ? verifyEd25519Raw : verifyP256;
  if (!isSkType(key.type)) {
    // ecdsa-sha2-nistp256 hashes with SHA-256 (RFC 5656 §6.2.1), as verifyP256 does.
    return check(key, data, sig.signature) ? { userPresent: false, userVerified: false } : null;
  }
  const sk = sig.sk!;
  const ok = check(key, skSignedData(key.application!, sk.flags, sk.counter, data), sig.signature);
  if (!ok) return null;
  return {
    userPresent: (sk.flags & SK_USER_PRESENT) !== 0,
    userVerified: (sk.flags & SK_USER_VERIFIED) !== 0,
  };
}

/** Assembles an SSHSIG blob (signing helpers and tests; the fields are not checked here). */
export function encodeSshSig(fields: {
  publicKey: Buffer;
  namespace: string;
  hashAlgorithm: string;
  signature: Buffer;
  reserved?: Buffer;
}): Buffer {
  const v = Buffer.alloc(4);
  v.writeUInt32BE(VERSION);
  return Buffer.concat([
    MAGIC,
    v,
    sshString(fields.publicKey),
    sshString(fields.namespace),
    sshString(fields.reserved ?? Buffer.alloc(0)),
    sshString(fields.hashAlgorithm),
    sshString(fields.signature),
  ]);
}

const ARMOUR_BEGIN = '-----BEGIN SSH SIGNATURE-----';
const ARMOUR_END = '-----END SSH SIGNATURE-----';

/** Armours a blob the way ssh-keygen writes it (base64 in 70-column lines). */
export function armourSshSig(blob: Buffer): string {
  const b64 = blob.toString('base64');
  const lines = b64.match(/.{1,70}/g) ?? [];
  return `${ARMOUR_BEGIN}\n${lines.join('\n')}\n${ARMOUR_END}\n`;
}

/** The blob inside an armoured signature (what `ssh-keygen -Y sign` prints). */
export function dearmourSshSig(text: string): Buffer {
  const m = new RegExp(
    `^${ARMOUR_BEGIN}\\r?\\n([A-Za-z0-9+/=\\r\\n]+?)\\r?\\n${ARMOUR_END}\\s*$`,
  ).exec(text.trim());
  if (!m) malformed('not an armoured SSH signature');
  const b64 = m[1]!.replace(/\r?\n/g, '');
  const blob = Buffer.from(b64, 'base64');
  if (blob.toString('base64') !== b64) malformed('armour is not canonical base64');
  return blob;
}
