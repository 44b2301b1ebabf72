// Keys: Ed25519 signing (tweetnacl) and verifying (native) agree on RFC 8032, key ids match
// OpenSSH, and every malformed key is refused with KEY_INVALID.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import {
  decodeSigningKeyFile,
  encodeSigningKeyFile,
  generateSigningKey,
  keyIdOf,
  parsePublicKey,
  publicKeyFromRaw,
  signEd25519,
  signingKeyFromSeed,
  verifyEd25519,
  type PublicKey,
} from '../../src/ticket/keys.ts';
import { parsePolicy } from '../../src/policy/policy.ts';
import { keys, policyYaml, throwsCode } from '../helpers/fixtures.ts';
import { RFC8032_VECTORS } from './rfc8032-vectors.ts';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

function flipBit(buf: Uint8Array, bit: number): Buffer {
  const out = Buffer.from(buf);
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

test('the TEST 1024 message is the 1023 bytes RFC 8032 lists', () => {
  assert.equal(hex(RFC8032_VECTORS[3]!.message).length, 1023);
});

for (const v of RFC8032_VECTORS) {
  test(`RFC 8032 ${v.name}: tweetnacl signs it exactly, native and tweetnacl both verify it`, () => {
    const key = signingKeyFromSeed(hex(v.secretKey));
    const message = hex(v.message);
    const signature = hex(v.signature);
    assert.equal(key.publicKey.raw.toString('hex'), v.publicKey);
    assert.equal(signEd25519(key, message).toString('hex'), v.signature);

    const pub = publicKeyFromRaw(hex(v.publicKey));
    assert.equal(verifyEd25519(pub, message, signature), true, 'native accepts');
    assert.equal(nacl.sign.detached.verify(message, signature, pub.raw), true, 'tweetnacl accepts');

    // One flipped bit anywhere (signature R, signature S, message) and both reject.
    for (const bit of [0, 255, 256, 511]) {
      const bad = flipBit(signature, bit);
      assert.equal(verifyEd25519(pub, message, bad), false, `native, sig bit ${bit}`);
      assert.equal(nacl.sign.detached.verify(message, bad, pub.raw), false, `nacl, sig bit ${bit}`);
    }
    const badMessage = message.length ? flipBit(message, 0) : Buffer.from([0]);
    assert.equal(verifyEd25519(pub, badMessage, signature), false);
    assert.equal(nacl.sign.detached.verify(badMessage, signature, pub.raw), false);
  });
}

test('verifyEd25519 says no (never throws) for signatures of the wrong length', () => {
  const v = RFC8032_VECTORS[0]!;
  const pub = publicKeyFromRaw(hex(v.publicKey));
  const sig = hex(v.signature);
  assert.equal(verifyEd25519(pub, Buffer.alloc(0), sig.subarray(0, 63)), false);
  assert.equal(verifyEd25519(pub, Buffer.alloc(0), Buffer.concat([sig, Buffer.from([0])])), false);
  assert.equal(verifyEd25519(pub, Buffer.alloc(0), Buffer.alloc(0)), false);
});

test('a non-canonical S (S + L) is rejected by the native verifier (no malleability)', () => {
  const v = RFC8032_VECTORS[1]!;
  const pub = publicKeyFromRaw(hex(v.publicKey));
  const sig = hex(v.signature);
  // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
  const L = hex('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010');
  const s = Buffer.from(sig.subarray(32));
  let carry = 0;
  for (let i = 0; i < 32; i++) {
    const sum = s[i]! + L[i]! + carry;
    s[i] = sum & 0xff;
    carry = sum >> 8;
  }
  const malleated = Buffer.concat([sig.subarray(0, 32), s]);
  assert.equal(verifyEd25519(pub, hex(v.message), malleated), false);
});

test('keyIdOf is what ssh-keygen -l prints for the same key', (t) => {
  const probe = spawnSync('ssh-keygen', ['-?'], { encoding: 'utf8' });
  const dir = mkdtempSync(join(tmpdir(), 'bg-keys-'));
  try {
    for (const key of [
      keys.alice.publicKey,
      publicKeyFromRaw(hex(RFC8032_VECTORS[0]!.publicKey)),
    ]) {
      const type = Buffer.from('ssh-ed25519');
      const wire = Buffer.alloc(4 + type.length + 4 + 32);
      wire.writeUInt32BE(type.length, 0);
      type.copy(wire, 4);
      wire.writeUInt32BE(32, 4 + type.length);
      key.raw.copy(wire, 8 + type.length);
      const expectedFromHash = key.keyid;
      if (probe.error) {
        t.diagnostic('ssh-keygen not installed: comparing with the documented algorithm only');
        assert.match(expectedFromHash, /^SHA256:[A-Za-z0-9+/]{43}$/);
        continue;
      }
      const file = join(dir, 'key.pub');
      writeFileSync(file, `ssh-ed25519 ${wire.toString('base64')} test@example\n`);
      const r = spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      // "256 SHA256:... test@example (ED25519)"
      const printed = r.stdout.trim().split(/\s+/)[1];
      assert.equal(keyIdOf(key.raw), printed);
      assert.equal(key.keyid, printed);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('public keys: ed25519:<base64> round-trips; wrong length, prefix or encoding is KEY_INVALID', () => {
  const pub = keys.bob.publicKey;
  const parsed = parsePublicKey(pub.text);
  assert.deepEqual(parsed.raw, pub.raw);
  assert.equal(parsed.keyid, pub.keyid);

  throwsCode(
    () => parsePublicKey('ed25519:' + Buffer.alloc(31, 7).toString('base64')),
    'KEY_INVALID',
    /32 bytes/,
  );
  throwsCode(
    () => parsePublicKey('ed25519:' + Buffer.alloc(33, 7).toString('base64')),
    'KEY_INVALID',
    /32 bytes/,
  );
  throwsCode(() => parsePublicKey('ed25519:'), 'KEY_INVALID');
  throwsCode(() => parsePublicKey(pub.text.replace('ed25519:', 'ssh-ed25519:')), 'KEY_INVALID');
  throwsCode(() => parsePublicKey(pub.text.replace('ed25519:', 'ED25519:')), 'KEY_INVALID');
  throwsCode(() => parsePublicKey(42), 'KEY_INVALID');
  throwsCode(() => parsePublicKey(pub.text.replace(/=$/, '')), 'KEY_INVALID', /canonical/);
  throwsCode(() => parsePublicKey(pub.text + '\n'), 'KEY_INVALID', /canonical/);
  throwsCode(() => parsePublicKey(' ' + pub.text), 'KEY_INVALID');
  // Non-canonical: the unused low bits of the last character set. Node would decode it to the
  // same 32 bytes; we refuse, so one key has exactly one spelling.
  const b64 = pub.text.slice('ed25519:'.length);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const last = b64[42]!;
  const sloppy = b64.slice(0, 42) + alphabet[alphabet.indexOf(last) ^ 1]! + '=';
  assert.deepEqual(Buffer.from(sloppy, 'base64'), pub.raw, 'Node decodes it leniently');
  throwsCode(() => parsePublicKey('ed25519:' + sloppy), 'KEY_INVALID', /canonical/);
  // base64url is not base64.
  const withUrlChars = publicKeyFromRaw(Buffer.alloc(32, 0xfb)).text;
  assert.match(withUrlChars, /[+/]/);
  throwsCode(
    () => parsePublicKey(withUrlChars.replace(/\+/g, '-').replace(/\//g, '_')),
    'KEY_INVALID',
  );
});

test('publicKeyFromRaw and signingKeyFromSeed refuse wrong lengths', () => {
  throwsCode(() => publicKeyFromRaw(Buffer.alloc(31, 1)), 'KEY_INVALID');
  throwsCode(() => signingKeyFromSeed(Buffer.alloc(31)), 'KEY_INVALID');
  throwsCode(() => signingKeyFromSeed(Buffer.alloc(64)), 'KEY_INVALID');
});

// The eight small-order points of Ed25519 (as libsodium blocks them): 0 and 1 (order 4, 1), two
// points of order 8, p-1 (order 2), and the non-canonical p and p+1; each also with the sign bit.
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].flatMap((h) => {
  const withSign = hex(h);
  withSign[31]! |= 0x80;
  return [hex(h), withSign];
});

test('a small-order public key is refused: under it a trivial forged signature verifies', () => {
  const spki = Buffer.from('302a300506032b6570032100', 'hex');
  for (const raw of SMALL_ORDER) {
    // The attack this prevents: signatures made of a small-order R and S = 0 verify for many
    // messages under such a key, without any secret. Native verification accepts them.
    const ko = createPublicKey({ key: Buffer.concat([spki, raw]), format: 'der', type: 'spki' });
    let forged = false;
    for (let m = 0; m < 32 && !forged; m++) {
      for (const r of SMALL_ORDER) {
        if (
          nodeVerify(
            null,
            Buffer.from(`push to main ${m}`),
            ko,
            Buffer.concat([r, Buffer.alloc(32)]),
          )
        ) {
          forged = true;
          break;
        }
      }
    }
    assert.ok(forged, `a forgery exists for ${raw.toString('hex')}`);

    throwsCode(() => publicKeyFromRaw(raw), 'KEY_INVALID', /small order/);
    throwsCode(
      () => parsePublicKey('ed25519:' + raw.toString('base64')),
      'KEY_INVALID',
      /small order/,
    );
  }
  // ... and in a policy, named with field and line.
  const zeroKey = 'ed25519:' + Buffer.alloc(32).toString('base64');
  const yaml = policyYaml().replace(keys.carol.publicKey.text, zeroKey);
  throwsCode(
    () => parsePolicy(yaml),
    'POLICY_INVALID',
    /:\d+: principals\.carol\.keys\[0\]: .*small order/,
  );
});

test('the native verifier never throws on a 32-byte key that is not a curve point', () => {
  // y = 2 does not decode to a point; verification must just say no.
  const notAPoint = hex('02' + '00'.repeat(31));
  const pub: PublicKey = {
    type: 'ssh-ed25519',
    raw: notAPoint,
    wire: Buffer.alloc(0),
    text: '',
    keyid: keyIdOf(notAPoint),
  };
  assert.equal(verifyEd25519(pub, Buffer.from('x'), Buffer.alloc(64, 1)), false);
});

test('key file: encode/decode round-trip keeps the key and signs the same', () => {
  const key = generateSigningKey();
  const text = encodeSigningKeyFile(key, 'alice@laptop');
  const file = JSON.parse(text) as Record<string, unknown>;
  assert.equal(file.type, 'git-breakglass/ed25519-private-key');
  assert.equal(file.publicKey, key.publicKey.text);
  assert.equal(file.keyid, key.publicKey.keyid);
  assert.equal(file.comment, 'alice@laptop');
  const back = decodeSigningKeyFile(text);
  assert.equal(back.publicKey.text, key.publicKey.text);
  assert.deepEqual(Buffer.from(back.secretKey), Buffer.from(key.secretKey));
  const msg = Buffer.from('hello');
  assert.deepEqual(signEd25519(back, msg), signEd25519(key, msg));
});

test('key file: seed/public mismatch, wrong seed length, bad base64, junk are KEY_INVALID', () => {
  const good = JSON.parse(encodeSigningKeyFile(keys.alice)) as Record<string, unknown>;
  const mutate = (over: Record<string, unknown>) => JSON.stringify({ ...good, ...over });
  throwsCode(
    () => decodeSigningKeyFile(mutate({ publicKey: keys.bob.publicKey.text })),
    'KEY_INVALID',
    /does not match the seed/,
  );
  throwsCode(
    () => decodeSigningKeyFile(mutate({ seed: Buffer.alloc(31, 1).toString('base64') })),
    'KEY_INVALID',
  );
  throwsCode(
    () => decodeSigningKeyFile(mutate({ seed: Buffer.alloc(33, 1).toString('base64') })),
    'KEY_INVALID',
  );
  throwsCode(
    () => decodeSigningKeyFile(mutate({ seed: (good.seed as string).replace(/=$/, '') })),
    'KEY_INVALID',
  );
  throwsCode(() => decodeSigningKeyFile(mutate({ seed: 42 })), 'KEY_INVALID');
  throwsCode(() => decodeSigningKeyFile(mutate({ type: 'something-else' })), 'KEY_INVALID');
  throwsCode(() => decodeSigningKeyFile(mutate({ version: 2 })), 'KEY_INVALID');
  throwsCode(
    () => decodeSigningKeyFile('{"type": "git-breakglass/ed25519-private-key"'),
    'KEY_INVALID',
  );
  throwsCode(() => decodeSigningKeyFile('null'), 'KEY_INVALID');
  throwsCode(() => decodeSigningKeyFile('x'.repeat(5000)), 'KEY_INVALID', /too large/);
  // An OpenSSH private key is not our format (and says so, rather than crashing).
  throwsCode(
    () =>
      decodeSigningKeyFile(
        '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n',
      ),
    'KEY_INVALID',
    /not a git-breakglass key file/,
  );
});
