import { createHash, createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { BreakglassError } from '../errors.ts';
import { decodeBase64Strict } from './base64.ts';

/** An Ed25519 public key as the policy names it. */
export interface PublicKey {
  /** 32 raw key bytes. */
  readonly raw: Buffer;
  /** `ed25519:<base64>` */
  readonly text: string;
  /** `SHA256:<unpadded base64>` of the OpenSSH wire form, as `ssh-keygen -l` prints it. */
  readonly keyid: string;
}

/** A signing key (held by a person, never by the server). */
export interface SigningKey {
  readonly publicKey: PublicKey;
  /** 64-byte tweetnacl secret key (seed || public). */
  readonly secretKey: Uint8Array;
}

const PREFIX = 'ed25519:';
// DER SubjectPublicKeyInfo header for an Ed25519 key (RFC 8410); the 32 key bytes follow.
const SPKI_ED25519_HEADER = Buffer.from('302a300506032b6570032100', 'hex');

function sshWire(raw: Buffer): Buffer {
  const type = Buffer.from('ssh-ed25519');
  const out = Buffer.alloc(4 + type.length + 4 + raw.length);
  out.writeUInt32BE(type.length, 0);
  type.copy(out, 4);
  out.writeUInt32BE(raw.length, 4 + type.length);
  raw.copy(out, 8 + type.length);
  return out;
}

/** Key id of a raw Ed25519 public key: `SHA256:` + unpadded base64 of sha256(wire form). */
export function keyIdOf(raw: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(sshWire(raw)).digest('base64').replace(/=+$/, '');
}

// Encodings of the small-order points (libsodium's blocklist; compared without the sign bit).
// Under such a key a "signature" made of a small-order R and S = 0 verifies for many messages,
// and Node's verifier accepts it: a placeholder key like all zeros would let anyone sign (A3).
const SMALL_ORDER_POINTS = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => Buffer.from(h, 'hex'));

function hasSmallOrder(raw: Uint8Array): boolean {
  return SMALL_ORDER_POINTS.some((p) =>
    p.every((b, i) => b === (i === 31 ? raw[i]! & 0x7f : raw[i])),
  );
}

/** Builds a PublicKey from 32 raw bytes (small-order points refused). */
export function publicKeyFromRaw(raw: Uint8Array): PublicKey {
  if (raw.length !== 32) {
    throw new BreakglassError(
      'KEY_INVALID',
      `an Ed25519 public key has 32 bytes, not ${raw.length}`,
    );
  }
  if (hasSmallOrder(raw)) {
    throw new BreakglassError(
      'KEY_INVALID',
      'this Ed25519 public key is a point of small order: signatures under it can be forged',
    );
  }
  const buf = Buffer.from(raw);
  return { raw: buf, text: PREFIX + buf.toString('base64'), keyid: keyIdOf(buf) };
}

/** Parses `ed25519:<base64 of 32 bytes>`. */
export function parsePublicKey(text: unknown, field = 'key'): PublicKey {
  if (typeof text !== 'string' || !text.startsWith(PREFIX)) {
    throw new BreakglassError('KEY_INVALID', `${field}: expected "ed25519:<base64>"`);
  }
  const raw = decodeBase64Strict(text.slice(PREFIX.length), field, 'KEY_INVALID', 64);
  if (raw.length !== 32) {
    throw new BreakglassError(
      'KEY_INVALID',
      `${field}: an Ed25519 public key has 32 bytes, this one has ${raw.length}`,
    );
  }
  return publicKeyFromRaw(raw);
}

const keyObjects = new WeakMap<Buffer, KeyObject>();

/** Verifies an Ed25519 signature with Node's native implementation (~100x tweetnacl). */
export function verifyEd25519(key: PublicKey, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  let ko = keyObjects.get(key.raw);
  if (!ko) {
    ko = createPublicKey({
      key: Buffer.concat([SPKI_ED25519_HEADER, key.raw]),
      format: 'der',
      type: 'spki',
    });
    keyObjects.set(key.raw, ko);
  }
  try {
    return nodeVerify(null, message, ko, signature);
  } catch {
    return false;
  }
}

/** Makes a signing key from a 32-byte seed. */
export function signingKeyFromSeed(seed: Uint8Array): SigningKey {
  if (seed.length !== 32) {
    throw new BreakglassError('KEY_INVALID', `an Ed25519 seed has 32 bytes, not ${seed.length}`);
  }
  const pair = nacl.sign.keyPair.fromSeed(seed);
  return { publicKey: publicKeyFromRaw(pair.publicKey), secretKey: pair.secretKey };
}

/** Makes a new random signing key (tweetnacl, backed by the platform CSPRNG). */
export function generateSigningKey(): SigningKey {
  return signingKeyFromSeed(nacl.randomBytes(32));
}

/** Signs with Ed25519 (tweetnacl, deterministic per RFC 8032). */
export function signEd25519(key: SigningKey, message: Uint8Array): Buffer {
  return Buffer.from(nacl.sign.detached(message, key.secretKey));
}

const KEY_FILE_TYPE = 'git-breakglass/ed25519-private-key';

/** Serialises a signing key to the private key file format (JSON, kept 0600 by the CLI). */
export function encodeSigningKeyFile(key: SigningKey, comment?: string): string {
  const seed = Buffer.from(key.secretKey.subarray(0, 32)).toString('base64');
  const file: Record<string, unknown> = {
    type: KEY_FILE_TYPE,
    version: 1,
    seed,
    publicKey: key.publicKey.text,
    keyid: key.publicKey.keyid,
  };
  if (comment) file.comment = comment;
  return JSON.stringify(file, null, 2) + '\n';
}

/** Parses a private key file, checking that the stored public key matches the seed. */
export function decodeSigningKeyFile(text: string, source = 'key file'): SigningKey {
  if (text.length > 4096) throw new BreakglassError('KEY_INVALID', `${source}: too large`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BreakglassError('KEY_INVALID', `${source}: not a git-breakglass key file`);
  }
  const f = parsed as Record<string, unknown> | null;
  if (!f || typeof f !== 'object' || f.type !== KEY_FILE_TYPE || f.version !== 1) {
    throw new BreakglassError('KEY_INVALID', `${source}: not a git-breakglass key file`);
  }
  // Room for a wrong length, so the error says what is wrong ("32 bytes, not 33").
  const seed = decodeBase64Strict(f.seed, `${source}: seed`, 'KEY_INVALID', 64);
  const key = signingKeyFromSeed(seed);
  if (f.publicKey !== undefined && f.publicKey !== key.publicKey.text) {
    throw new BreakglassError('KEY_INVALID', `${source}: public key does not match the seed`);
  }
  return key;
}
