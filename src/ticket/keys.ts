import { createHash, createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { BreakglassError } from '../errors.ts';
import { decodeBase64Strict } from './base64.ts';

/** OpenSSH key types the policy accepts (RSA and other curves stay out: docs/rules.md K1). */
export const SSH_ED25519 = 'ssh-ed25519';
export const SK_SSH_ED25519 = 'sk-ssh-ed25519@openssh.com';
export const ECDSA_P256 = 'ecdsa-sha2-nistp256';
export const SK_ECDSA_P256 = 'sk-ecdsa-sha2-nistp256@openssh.com';
export type KeyType =
  typeof SSH_ED25519 | typeof SK_SSH_ED25519 | typeof ECDSA_P256 | typeof SK_ECDSA_P256;
const KEY_TYPES: readonly string[] = [SSH_ED25519, SK_SSH_ED25519, ECDSA_P256, SK_ECDSA_P256];

/** True for key types whose signatures are made by a FIDO authenticator (PROTOCOL.u2f). */
export function isSkType(type: KeyType): boolean {
  return type === SK_SSH_ED25519 || type === SK_ECDSA_P256;
}

/** True for the Ed25519 key types (the others are ECDSA P-256). */
export function isEd25519Type(type: KeyType): boolean {
  return type === SSH_ED25519 || type === SK_SSH_ED25519;
}

/** A public key as the policy names it: `ed25519:<base64>` or an OpenSSH public key line. */
export interface PublicKey {
  /** `ssh-ed25519` (also for `ed25519:` keys: the same key) or `sk-ssh-ed25519@openssh.com`. */
  readonly type: KeyType;
  /** 32 raw Ed25519 key bytes, or the 65-byte uncompressed P-256 point for ECDSA keys. */
  readonly raw: Buffer;
  /** FIDO application string (`ssh:` ...) of an `sk-` key; it is part of what the key signs. */
  readonly application?: string;
  /** OpenSSH wire form (what the key id hashes, and what an SSHSIG blob embeds). */
  readonly wire: Buffer;
  /** `ed25519:<base64>` for those keys, `<type> <base64 wire>` (no comment) for OpenSSH lines. */
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

/**
 * A key held outside this process (an OpenSSH private key file, ssh-agent, a hardware key) that
 * signs through `ssh-keygen -Y sign`: it returns an SSHSIG blob (src/ticket/sshsig.ts).
 */
export interface SshSigner {
  readonly publicKey: PublicKey;
  signSsh(namespace: string, message: Buffer): Buffer;
}

/** Anything that can sign a document: our own key file, or an OpenSSH key. */
export type DocumentKey = SigningKey | SshSigner;

const PREFIX = 'ed25519:';
// DER SubjectPublicKeyInfo header for an Ed25519 key (RFC 8410); the 32 key bytes follow.
const SPKI_ED25519_HEADER = Buffer.from('302a300506032b6570032100', 'hex');

/** SSH wire `string`: uint32 length, then the bytes (RFC 4251 §5). */
export function sshString(bytes: Uint8Array | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function sshWire(type: KeyType, raw: Buffer): Buffer {
  return Buffer.concat([sshString(type), sshString(raw)]);
}

function keyIdOfWire(wire: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(wire).digest('base64').replace(/=+$/, '');
}

/** Key id of a raw Ed25519 public key: `SHA256:` + unpadded base64 of sha256(wire form). */
export function keyIdOf(raw: Buffer): string {
  return keyIdOfWire(sshWire(SSH_ED25519, raw));
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

function checkRaw(raw: Uint8Array): void {
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
}

/** Builds a PublicKey from 32 raw bytes (small-order points refused). */
export function publicKeyFromRaw(raw: Uint8Array): PublicKey {
  checkRaw(raw);
  const buf = Buffer.from(raw);
  const wire = sshWire(SSH_ED25519, buf);
  return {
    type: SSH_ED25519,
    raw: buf,
    wire,
    text: PREFIX + buf.toString('base64'),
    keyid: keyIdOfWire(wire),
  };
}

// An sk- application is `ssh:` plus printable ASCII (ssh-keygen -O application= insists on the
// prefix); bounded so a hostile key line or SSHSIG blob can't carry a megabyte of it.
const APPLICATION = /^ssh:[\x21-\x7e]{0,60}$/;

/** Minimal strict reader for SSH wire data: every length checked, no trailing bytes. */
export class WireReader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly fail: (message: string) => never,
  ) {}
  bytes(n: number, what: string): Buffer {
    if (this.buf.length - this.pos < n) this.fail(`truncated at ${what}`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u8(what: string): number {
    return this.bytes(1, what)[0]!;
  }
  u32(what: string): number {
    return this.bytes(4, what).readUInt32BE(0);
  }
  string(what: string, max: number): Buffer {
    const n = this.u32(what);
    if (n > max) this.fail(`${what} is ${n} bytes, more than ${max}`);
    return this.bytes(n, what);
  }
  end(what: string): void {
    if (this.pos !== this.buf.length)
      this.fail(`${this.buf.length - this.pos} trailing byte(s) after ${what}`);
  }
}

/** Parses an OpenSSH public key in wire form (one of the K1 types). */
export function publicKeyFromWire(wire: Buffer, fail: (message: string) => never): PublicKey {
  const r = new WireReader(wire, fail);
  const typeText = r.string('key type', 64).toString('latin1');
  if (!KEY_TYPES.includes(typeText)) {
    fail(`key type "${typeText.slice(0, 40)}" is not accepted (${KEY_TYPES.join(', ')})`);
  }
  const type = typeText as KeyType;
  let raw: Buffer;
  if (isEd25519Type(type)) {
    raw = r.string('public key', 64);
    if (raw.length !== 32) fail(`an Ed25519 public key has 32 bytes, not ${raw.length}`);
  } else {
    const curve = r.string('curve', 64).toString('latin1');
    if (curve !== 'nistp256') fail(`curve "${curve.slice(0, 20)}" is not nistp256`);
    raw = r.string('public key', 128);
    // Uncompressed only, as OpenSSH writes it; the point must be on the curve (checked below).
    if (raw.length !== 65 || raw[0] !== 0x04) fail('a P-256 public key is an uncompressed point');
  }
  let application: string | undefined;
  if (isSkType(type)) {
    application = r.string('application', 64).toString('latin1');
    if (!APPLICATION.test(application))
      fail('the FIDO application must be "ssh:" and printable ASCII');
  }
  r.end('the public key');
  if (isEd25519Type(type)) checkRaw(raw);
  else if (!p256KeyObject(raw)) fail('the P-256 public key is not a point on the curve');
  const copy = Buffer.from(wire);
  return {
    type,
    raw: Buffer.from(raw),
    ...(application !== undefined ? { application } : {}),
    wire: copy,
    text: `${type} ${copy.toString('base64')}`,
    keyid: keyIdOfWire(copy),
  };
}

/** Parses an OpenSSH public key line `<type> <base64> [comment]` (the comment is dropped). */
export function parseSshPublicKeyLine(text: string, field = 'key'): PublicKey {
  const fail = (message: string): never => {
    throw new BreakglassError('KEY_INVALID', `${field}: ${message}`);
  };
  const m = /^(\S+) (\S+)(?: [^\r\n]*)?$/.exec(text.trim());
  if (!m) return fail('expected "ssh-ed25519 AAAA... [comment]"');
  const wire = decodeBase64Strict(m[2], field, 'KEY_INVALID', 512);
  const key = publicKeyFromWire(wire, fail);
  // The type is written twice; the two must agree (as sshkey_read insists).
  if (key.type !== m[1]) fail(`the line says "${m[1]!.slice(0, 40)}" but the key is ${key.type}`);
  return key;
}

/** Parses `ed25519:<base64 of 32 bytes>` or an OpenSSH public key line. */
export function parsePublicKey(text: unknown, field = 'key'): PublicKey {
  if (typeof text === 'string' && /^(ssh-|sk-|ecdsa-|webauthn-)/.test(text)) {
    return parseSshPublicKeyLine(text, field);
  }
  if (typeof text !== 'string' || !text.startsWith(PREFIX)) {
    throw new BreakglassError(
      'KEY_INVALID',
      `${field}: expected "ed25519:<base64>" or an OpenSSH public key line "ssh-ed25519 AAAA..."`,
    );
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

/**
 * Verifies an Ed25519 signature with Node's native implementation (~100x tweetnacl). An `sk-`
 * key never makes bare signatures (its authenticator signs the FIDO form, src/ticket/sshsig.ts):
 * only `verifyEd25519Raw` reaches it, with that form.
 */
export function verifyEd25519(key: PublicKey, message: Uint8Array, signature: Uint8Array): boolean {
  if (key.type !== SSH_ED25519) return false;
  return verifyEd25519Raw(key, message, signature);
}

/** The Ed25519 check itself, whatever the key type says the key signs. */
export function verifyEd25519Raw(
  key: PublicKey,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (!isEd25519Type(key.type) || signature.length !== 64) return false;
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

const p256Objects = new Map<string, KeyObject>();

/** Node's key object for an uncompressed P-256 point; undefined when it is not on the curve. */
export function p256KeyObject(point: Buffer): KeyObject | undefined {
  const id = point.toString('base64');
  let ko = p256Objects.get(id);
  if (!ko) {
    try {
      ko = createPublicKey({
        key: {
          kty: 'EC',
          crv: 'P-256',
          x: point.subarray(1, 33).toString('base64url'),
          y: point.subarray(33, 65).toString('base64url'),
        },
        format: 'jwk',
      });
    } catch {
      return undefined;
    }
    // Policy keys are few; a bounded cache keeps a hostile stream of blobs from growing it.
    if (p256Objects.size > 1024) p256Objects.clear();
    p256Objects.set(id, ko);
  }
  return ko;
}

/** ECDSA P-256 with SHA-256 over `message`; `signature` is r || s, 32 bytes each. */
export function verifyP256(key: PublicKey, message: Uint8Array, signature: Uint8Array): boolean {
  if (isEd25519Type(key.type) || signature.length !== 64) return false;
  const ko = p256KeyObject(key.raw);
  if (!ko) return false;
  try {
    return nodeVerify('sha256', message, { key: ko, dsaEncoding: 'ieee-p1363' }, signature);
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
