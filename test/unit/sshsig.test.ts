// OpenSSH keys and SSHSIG signatures (docs/rules.md K1, S1-S6): key ids as ssh-keygen prints
// them, native verification cross-checked with real ssh-keygen and ssh-agent, hostile blobs
// rejected with their codes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePolicy, type Policy } from '../../src/policy/policy.ts';
import { parseEnvelope, pae, serializeEnvelope, type Envelope } from '../../src/ticket/dsse.ts';
import { parsePublicKey, publicKeyFromRaw, sshString } from '../../src/ticket/keys.ts';
import { addSignature, createTicketEnvelope } from '../../src/ticket/sign.ts';
import {
  armourSshSig,
  encodeSshSig,
  parseSshSig,
  SSHSIG_NAMESPACE,
} from '../../src/ticket/sshsig.ts';
import { verifyTicketEnvelope } from '../../src/ticket/verify.ts';
import { createRevocation, verifyRevocation } from '../../src/ticket/revocation.ts';
import { createReview, verifyReview } from '../../src/audit/review.ts';
import { evaluateSignatures } from '../../src/engine/evaluate.ts';
import {
  agentSigner,
  isSshPublicKeyLine,
  publicKeyOfPrivateKeyFile,
  sshKeygenSigner,
} from '../../src/cli/ssh-key.ts';
import { keys, T0, throwsCode, ticketRequest } from '../helpers/fixtures.ts';
import {
  run,
  softEcdsaKey,
  softSshKey,
  sshKeygenFingerprint,
  sshKeygenKey,
  startAgent,
  tmp,
} from '../helpers/ssh.ts';

const alice = softSshKey('alice ssh');
const bob = softSshKey('bob yubikey', true);
const carol = softSshKey('carol ssh');
const mallory = softSshKey('mallory ssh');

function policyWith(principals: Record<string, { keys: string[]; roles: string[] }>, extra = '') {
  const body = Object.entries(principals)
    .map(
      ([n, p]) =>
        `  ${n}:\n    keys: [${p.keys.map((k) => JSON.stringify(k)).join(', ')}]\n    roles: [${p.roles.join(', ')}]\n`,
    )
    .join('');
  return parsePolicy(`version: 1
repository: acme/api
principals:
${body}protected:
  - refs: ["refs/heads/main"]
tickets:
  requesterRoles: [oncall]
  approverRoles: [approver]
${extra}`);
}

const policy = policyWith({
  alice: { keys: [alice.line], roles: ['oncall'] },
  bob: { keys: [bob.line], roles: ['approver'] },
  carol: { keys: [carol.line], roles: ['approver'] },
});

/** allowed_signers written from the policy (ssh-keygen -Y verify's trust file). */
function allowedSigners(p: Policy): string {
  const lines: string[] = [];
  for (const pr of p.principals.values()) {
    for (const k of pr.keys) {
      lines.push(
        `${pr.name} namespaces="${SSHSIG_NAMESPACE}" ${k.type} ${k.wire.toString('base64')}`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

function sshVerify(
  p: Policy,
  principal: string,
  blob: Buffer,
  message: Buffer,
  ns = SSHSIG_NAMESPACE,
) {
  const dir = tmp();
  writeFileSync(join(dir, 'allowed'), allowedSigners(p));
  writeFileSync(join(dir, 'sig'), armourSshSig(blob));
  const novalidate = run(
    'ssh-keygen',
    ['-Y', 'check-novalidate', '-n', ns, '-s', join(dir, 'sig')],
    {
      input: message,
    },
  );
  const verify = run(
    'ssh-keygen',
    ['-Y', 'verify', '-f', join(dir, 'allowed'), '-I', principal, '-n', ns, '-s', join(dir, 'sig')],
    { input: message },
  );
  return { novalidate, verify };
}

const withSig = (env: Envelope, i: number, sig: Buffer, keyid?: string): Envelope => ({
  ...env,
  signatures: env.signatures.map((s, j) => (j === i ? { keyid: keyid ?? s.keyid, sig } : s)),
});

const only = (env: Envelope, i: number): Envelope => ({
  ...env,
  signatures: [env.signatures[i]!],
});

describe('OpenSSH public keys in the policy (K1)', () => {
  test('key ids are what ssh-keygen -l prints, for ssh-ed25519 and sk-ssh-ed25519 lines', () => {
    const dir = tmp();
    const real = sshKeygenKey(dir, 'id_ed25519');
    for (const line of [real.pub, alice.line, bob.line]) {
      assert.equal(parsePublicKey(line).keyid, sshKeygenFingerprint(line), line);
    }
  });

  test('an ed25519: key and the ssh-ed25519 line of the same key are one key', () => {
    const line = `ssh-ed25519 ${Buffer.concat([sshString('ssh-ed25519'), sshString(keys.bob.publicKey.raw)]).toString('base64')} bob@laptop`;
    const k = parsePublicKey(line);
    assert.equal(k.keyid, keys.bob.publicKey.keyid);
    assert.deepEqual(k.wire, publicKeyFromRaw(keys.bob.publicKey.raw).wire);
    throwsCode(
      () => policyWith({ bob: { keys: [keys.bob.publicKey.text, line], roles: ['approver'] } }),
      'POLICY_INVALID',
      /already belongs to bob/,
    );
  });

  test('sk keys carry their application; the comment is dropped', () => {
    const k = parsePublicKey(bob.line);
    assert.equal(k.type, 'sk-ssh-ed25519@openssh.com');
    assert.equal(k.application, 'ssh:');
    assert.ok(!k.text.includes('yubikey'));
    assert.equal(policy.principals.get('bob')!.keys[0]!.keyid, k.keyid);
  });

  test('refused lines: ECDSA, RSA, type mismatch, trailing bytes, junk base64, bad application', () => {
    const edWire = alice.publicKey.wire;
    const skWire = bob.publicKey.wire;
    const b64 = (b: Buffer) => b.toString('base64');
    const bad = [
      'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBA==',
      `ssh-rsa ${b64(Buffer.concat([sshString('ssh-rsa'), sshString(Buffer.from([1, 0, 1])), sshString(Buffer.alloc(256, 7))]))}`,
      `sk-ssh-ed25519@openssh.com ${b64(edWire)}`,
      `ssh-ed25519 ${b64(Buffer.concat([edWire, Buffer.from([0])]))}`,
      `ssh-ed25519 ${b64(edWire.subarray(0, edWire.length - 1))}`,
      `ssh-ed25519 ${b64(edWire)}=`,
      `ssh-ed25519 ${b64(edWire).replace(/=*$/, '')}!`,
      `sk-ssh-ed25519@openssh.com ${b64(Buffer.concat([skWire.subarray(0, skWire.length - 8), sshString('http')]))}`,
      `ssh-ed25519 ${b64(Buffer.concat([sshString('ssh-ed25519'), sshString(Buffer.alloc(32))]))}`,
    ];
    for (const line of bad) throwsCode(() => parsePublicKey(line), 'KEY_INVALID');
  });
});

describe('SSHSIG verification (S1-S5)', () => {
  const env0 = addSignature(createTicketEnvelope(ticketRequest(), alice), bob);
  const message = pae(env0.payloadType, env0.payload);

  test('an envelope signed with an ssh-ed25519 key and an sk key verifies natively', () => {
    const parsed = parseEnvelope(serializeEnvelope(env0));
    const t = verifyTicketEnvelope(parsed, policy.keyOwners);
    assert.deepEqual(
      t.signers.map((s) => [s.principal, s.keyid, s.userPresent, s.userVerified]),
      [
        ['alice', alice.publicKey.keyid, false, false],
        ['bob', bob.publicKey.keyid, true, false],
      ],
    );
    assert.deepEqual(evaluateSignatures(t, policy), []);
  });

  test('revocations and reviews signed with SSH keys verify the same way', () => {
    const t = verifyTicketEnvelope(env0, policy.keyOwners);
    const rev = createRevocation(t, 'bob', 'wrong commit', T0 + 1000, bob);
    assert.equal(verifyRevocation(parseEnvelope(serializeEnvelope(rev)), t, policy).revoker, 'bob');
    const review = createReview(policy, t, 'carol', 'justified', 'ok', T0 + 2000, carol);
    const v = verifyReview(parseEnvelope(serializeEnvelope(review)), t, policy);
    assert.equal(v.keyid, carol.publicKey.keyid);
    // A revocation signature lifted into a review (same key, same namespace) is bound to its
    // payload type by PAE (A1): it does not verify there.
    throwsCode(
      () =>
        verifyReview(
          { ...review, signatures: [{ ...review.signatures[0]!, sig: rev.signatures[0]!.sig }] },
          t,
          policy,
        ),
      'REVIEW_INVALID',
    );
  });

  test('real ssh-keygen accepts our blobs: check-novalidate and verify with allowed signers', () => {
    for (const [who, sig] of [
      ['alice', env0.signatures[0]!.sig],
      ['bob', env0.signatures[1]!.sig],
    ] as const) {
      const r = sshVerify(policy, who, sig, message);
      assert.equal(r.novalidate.status, 0, r.novalidate.stderr);
      assert.equal(r.verify.status, 0, r.verify.stderr);
      assert.match(r.verify.stdout, new RegExp(`Good "${SSHSIG_NAMESPACE}" signature for ${who}`));
    }
    // ...and refuses them in another namespace, or for other bytes.
    const r = sshVerify(policy, 'alice', env0.signatures[0]!.sig, message, 'git');
    assert.notEqual(r.novalidate.status, 0);
    const r2 = sshVerify(
      policy,
      'alice',
      env0.signatures[0]!.sig,
      Buffer.concat([message, Buffer.from('x')]),
    );
    assert.notEqual(r2.verify.status, 0);
  });

  test('wrong namespace: SSHSIG_NAMESPACE', () => {
    const env = withSig(env0, 0, alice.blob(message, { namespace: 'git' }));
    throwsCode(() => verifyTicketEnvelope(only(env, 0), policy.keyOwners), 'SSHSIG_NAMESPACE');
    // Next to a good signature it is one more signature that does not count.
    const t = verifyTicketEnvelope(env, policy.keyOwners);
    assert.deepEqual(
      t.signers.map((s) => s.principal),
      ['bob'],
    );
    assert.deepEqual(t.unverified, [0]);
  });

  test('hash sha256 declared: SSHSIG_HASH; sha512 declared over a sha256 digest: SIGNATURE_INVALID', () => {
    const declared = withSig(env0, 0, alice.blob(message, { hash: 'sha256', signHash: 'sha256' }));
    throwsCode(() => verifyTicketEnvelope(only(declared, 0), policy.keyOwners), 'SSHSIG_HASH');
    const mixed = withSig(env0, 0, alice.blob(message, { signHash: 'sha256' }));
    throwsCode(
      () =>
        verifyTicketEnvelope({ ...mixed, signatures: [mixed.signatures[0]!] }, policy.keyOwners),
      'SIGNATURE_INVALID',
    );
  });

  test("key in the blob is not the keyid's key: SSHSIG_KEY_MISMATCH, and it does not count", () => {
    // carol (trusted) signs, the entry claims to be alice's.
    const env = withSig(env0, 0, carol.blob(message), alice.publicKey.keyid);
    throwsCode(
      () => verifyTicketEnvelope({ ...env, signatures: [env.signatures[0]!] }, policy.keyOwners),
      'SSHSIG_KEY_MISMATCH',
    );
    const t = verifyTicketEnvelope(env, policy.keyOwners);
    assert.deepEqual(
      t.signers.map((s) => s.principal),
      ['bob'],
    );
    assert.deepEqual(t.unverified, [0]);
  });

  test('a blob by a key outside the policy does not count (SIGNATURE_INVALID)', () => {
    const env = withSig(env0, 0, mallory.blob(message), mallory.publicKey.keyid);
    throwsCode(
      () => verifyTicketEnvelope({ ...env, signatures: [env.signatures[0]!] }, policy.keyOwners),
      'SIGNATURE_INVALID',
    );
  });

  test('trailing bytes, truncation, bad magic, version and reserved: SSHSIG_MALFORMED', () => {
    const good = alice.blob(message);
    const json = (sig: Buffer) =>
      JSON.stringify({
        payloadType: env0.payloadType,
        payload: env0.payload.toString('base64'),
        signatures: [{ keyid: alice.publicKey.keyid, sig: sig.toString('base64') }],
      });
    throwsCode(
      () => parseEnvelope(json(Buffer.concat([good, Buffer.from([0])]))),
      'SSHSIG_MALFORMED',
      /trailing/,
    );
    for (let n = 0; n < good.length; n++) {
      if (n === 64) continue; // 64 bytes is the raw Ed25519 form: it parses, and verifies nothing
      throwsCode(() => parseEnvelope(json(good.subarray(0, n))), 'SSHSIG_MALFORMED');
    }
    throwsCode(
      () => verifyTicketEnvelope(parseEnvelope(json(good.subarray(0, 64))), policy.keyOwners),
      'SIGNATURE_INVALID',
    );
    const magic = Buffer.from(good);
    magic[0] = 0x73; // "sSHSIG"
    throwsCode(() => parseEnvelope(json(magic)), 'SSHSIG_MALFORMED', /SSHSIG/);
    const version = Buffer.from(good);
    version.writeUInt32BE(2, 6);
    throwsCode(() => parseEnvelope(json(version)), 'SSHSIG_MALFORMED', /version 2/);
    const p = parseSshSig(good);
    const sigField = good.subarray(good.length - (4 + 11 + 4 + 64));
    const reserved = encodeSshSig({
      publicKey: p.publicKey.wire,
      namespace: SSHSIG_NAMESPACE,
      hashAlgorithm: 'sha512',
      signature: sigField,
      reserved: Buffer.from('x'),
    });
    throwsCode(() => parseEnvelope(json(reserved)), 'SSHSIG_MALFORMED', /reserved/);
    // Trailing bytes inside the signature field.
    const inner = encodeSshSig({
      publicKey: p.publicKey.wire,
      namespace: SSHSIG_NAMESPACE,
      hashAlgorithm: 'sha512',
      signature: Buffer.concat([sigField, Buffer.from([0])]),
    });
    throwsCode(() => parseEnvelope(json(inner)), 'SSHSIG_MALFORMED', /trailing/);
    // A length field pointing past the end.
    const long = Buffer.from(good);
    long.writeUInt32BE(0xffffff, 10);
    throwsCode(() => parseEnvelope(json(long)), 'SSHSIG_MALFORMED');
  });

  test('sk: flags are signed; a raw Ed25519 signature under an sk key does not count', () => {
    const tampered = Buffer.from(bob.blob(message, { flags: 0x00 }));
    tampered[tampered.length - 5] = 0x01; // claim the touch after the fact
    throwsCode(
      () =>
        verifyTicketEnvelope(
          { ...env0, signatures: [{ keyid: bob.publicKey.keyid, sig: tampered }] },
          policy.keyOwners,
        ),
      'SIGNATURE_INVALID',
    );
    // bob's sk key has the same Ed25519 point as a bare key; a bare signature is not the FIDO form.
    const bare = parseSshSig(bob.blob(message)).signature;
    throwsCode(
      () =>
        verifyTicketEnvelope(
          { ...env0, signatures: [{ keyid: bob.publicKey.keyid, sig: bare }] },
          policy.keyOwners,
        ),
      'SIGNATURE_INVALID',
    );
  });

  test('sk without user presence counts by default; with requireUserPresence it is USER_PRESENCE_REQUIRED', () => {
    const noTouch = withSig(env0, 1, bob.blob(message, { flags: 0x00 }));
    const t = verifyTicketEnvelope(noTouch, policy.keyOwners);
    assert.equal(t.signers[1]!.userPresent, false);
    assert.deepEqual(evaluateSignatures(t, policy), []);
    const strict = policyWith(
      {
        alice: { keys: [alice.line], roles: ['oncall'] },
        bob: { keys: [bob.line], roles: ['approver'] },
        carol: { keys: [carol.line], roles: ['approver'] },
      },
      '  requireUserPresence: true\n',
    );
    const failures = evaluateSignatures(verifyTicketEnvelope(noTouch, strict.keyOwners), strict);
    assert.deepEqual(
      failures.map((f) => f.code),
      ['USER_PRESENCE_REQUIRED'],
    );
    assert.match(failures[0]!.message, /bob signed without user presence/);
    // Touch and PIN: counts, and user verification is reported.
    const touched = withSig(env0, 1, bob.blob(message, { flags: 0x05 }));
    const tt = verifyTicketEnvelope(touched, strict.keyOwners);
    assert.equal(tt.signers[1]!.userVerified, true);
    assert.deepEqual(evaluateSignatures(tt, strict), []);
    // A plain ssh-ed25519 approval (carol) has no presence flag to show: it does not count.
    const byCarol = addSignature(createTicketEnvelope(ticketRequest(), alice), carol);
    assert.deepEqual(
      evaluateSignatures(verifyTicketEnvelope(byCarol, strict.keyOwners), strict).map(
        (f) => f.code,
      ),
      ['USER_PRESENCE_REQUIRED'],
    );
  });
});

describe('signing with real OpenSSH keys (S6)', () => {
  let dir: string;
  let agent: { sock: string; stop(): void } | undefined;
  before(() => {
    dir = tmp();
  });
  after(() => agent?.stop());

  test('a private key file (ssh-keygen -Y sign): its public key read without a passphrase', () => {
    const k = sshKeygenKey(dir, 'id_pass', 'correct horse');
    const pub = publicKeyOfPrivateKeyFile(readFileSync(k.path, 'latin1'), k.path);
    assert.equal(pub.keyid, sshKeygenFingerprint(k.pub));
    const plain = sshKeygenKey(dir, 'id_plain');
    const key = sshKeygenSigner(
      plain.path,
      publicKeyOfPrivateKeyFile(readFileSync(plain.path, 'latin1'), plain.path),
      { ...process.env, SSH_AUTH_SOCK: '' },
    );
    const p = policyWith({
      alice: { keys: [plain.pub], roles: ['oncall'] },
      bob: { keys: [bob.line], roles: ['approver'] },
    });
    const env = addSignature(createTicketEnvelope(ticketRequest(), key), bob);
    const t = verifyTicketEnvelope(parseEnvelope(serializeEnvelope(env)), p.keyOwners);
    assert.deepEqual(
      t.signers.map((s) => s.principal),
      ['alice', 'bob'],
    );
    const r = sshVerify(p, 'alice', env.signatures[0]!.sig, pae(env.payloadType, env.payload));
    assert.equal(r.verify.status, 0, r.verify.stderr);
  });

  test('a public key line signed by a real ssh-agent (ssh-add), and a .pub file', async () => {
    agent = await startAgent(dir);
    const k = sshKeygenKey(dir, 'id_agent');
    const env = { ...process.env, SSH_AUTH_SOCK: agent.sock };
    const add = run('ssh-add', [k.path], { env });
    assert.equal(add.status, 0, add.stderr);
    assert.ok(isSshPublicKeyLine(k.pub));
    const p = policyWith({
      alice: { keys: [alice.line], roles: ['oncall'] },
      bob: { keys: [k.pub], roles: ['approver'] },
    });
    const base = createTicketEnvelope(ticketRequest(), alice);
    for (const key of [
      agentSigner(k.pub, env),
      sshKeygenSigner(k.path + '.pub', parsePublicKey(k.pub), env),
    ]) {
      const signed = addSignature(base, key);
      const t = verifyTicketEnvelope(parseEnvelope(serializeEnvelope(signed)), p.keyOwners);
      assert.deepEqual(
        t.signers.map((s) => s.principal),
        ['alice', 'bob'],
      );
    }
    // Without the agent there is nothing to sign with: a clear KEY_MISSING.
    throwsCode(
      () =>
        addSignature(
          base,
          agentSigner(k.pub, { ...process.env, SSH_AUTH_SOCK: join(dir, 'none') }),
        ),
      'KEY_MISSING',
    );
  });
});

describe('ECDSA P-256 keys (ecdsa-sha2-nistp256, sk-ecdsa-sha2-nistp256@openssh.com)', () => {
  const dave = softEcdsaKey('dave ecdsa');
  const erin = softEcdsaKey('erin yubikey', true);
  const p = policyWith({
    alice: { keys: [alice.line], roles: ['oncall'] },
    dave: { keys: [dave.line], roles: ['approver'] },
    erin: { keys: [erin.line], roles: ['approver'] },
  });

  test('key ids as ssh-keygen -l prints them; ssh-keygen-made keys sign and verify natively', () => {
    for (const line of [dave.line, erin.line]) {
      assert.equal(parsePublicKey(line).keyid, sshKeygenFingerprint(line));
    }
    const dir = tmp();
    const path = join(dir, 'id_ecdsa');
    const made = run('ssh-keygen', ['-q', '-t', 'ecdsa', '-b', '256', '-N', '', '-f', path]);
    assert.equal(made.status, 0, made.stderr);
    const pub = readFileSync(path + '.pub', 'latin1').trim();
    const key = sshKeygenSigner(path, parsePublicKey(pub), { ...process.env, SSH_AUTH_SOCK: '' });
    const q = policyWith({
      alice: { keys: [alice.line], roles: ['oncall'] },
      frank: { keys: [pub], roles: ['approver'] },
    });
    const env = addSignature(createTicketEnvelope(ticketRequest(), alice), key);
    const t = verifyTicketEnvelope(parseEnvelope(serializeEnvelope(env)), q.keyOwners);
    assert.deepEqual(
      t.signers.map((s) => s.principal),
      ['alice', 'frank'],
    );
  });

  test('our ECDSA and sk-ECDSA blobs verify natively and under real ssh-keygen', () => {
    const env = addSignature(
      addSignature(createTicketEnvelope(ticketRequest(), alice), dave),
      erin,
    );
    const t = verifyTicketEnvelope(parseEnvelope(serializeEnvelope(env)), p.keyOwners);
    assert.deepEqual(
      t.signers.map((s) => [s.principal, s.userPresent]),
      [
        ['alice', false],
        ['dave', false],
        ['erin', true],
      ],
    );
    const message = pae(env.payloadType, env.payload);
    for (const [i, who] of [
      [1, 'dave'],
      [2, 'erin'],
    ] as const) {
      const r = sshVerify(p, who, env.signatures[i]!.sig, message);
      assert.equal(r.novalidate.status, 0, r.novalidate.stderr);
      assert.equal(r.verify.status, 0, r.verify.stderr);
    }
  });

  test('hostile: other curves, off-curve points, non-canonical mpints, edited sk flags', () => {
    const wire = dave.publicKey.wire;
    const b64 = (b: Buffer) => b.toString('base64');
    const p384 = Buffer.concat([
      sshString('ecdsa-sha2-nistp384'),
      sshString('nistp384'),
      sshString(Buffer.alloc(97, 4)),
    ]);
    const offCurve = Buffer.from(wire);
    offCurve[offCurve.length - 1]! ^= 1;
    const compressed = Buffer.concat([
      sshString('ecdsa-sha2-nistp256'),
      sshString('nistp256'),
      sshString(Buffer.concat([Buffer.from([2]), dave.publicKey.raw.subarray(1, 33)])),
    ]);
    for (const bad of [p384, offCurve, compressed]) {
      throwsCode(
        () => parsePublicKey(`${bad.subarray(4, 4 + bad.readUInt32BE(0))} ${b64(bad)}`),
        'KEY_INVALID',
      );
    }
    const message = Buffer.from('m');
    const good = dave.blob(message);
    // The signature field is the last string: type, then string(mpint r, mpint s).
    const parsed = parseSshSig(good);
    const r = parsed.signature.subarray(0, 32);
    const s = parsed.signature.subarray(32);
    const rebuild = (inner: Buffer) =>
      encodeSshSig({
        publicKey: wire,
        namespace: SSHSIG_NAMESPACE,
        hashAlgorithm: 'sha512',
        signature: Buffer.concat([sshString('ecdsa-sha2-nistp256'), sshString(inner)]),
      });
    const padded = Buffer.concat([
      sshString(Buffer.concat([Buffer.from([0, 0]), r])),
      sshString(s),
    ]);
    const negative = Buffer.concat([sshString(Buffer.from([0x80, 1])), sshString(s)]);
    const zero = Buffer.concat([sshString(Buffer.alloc(0)), sshString(s)]);
    for (const inner of [padded, negative, zero]) {
      throwsCode(() => parseSshSig(rebuild(inner)), 'SSHSIG_MALFORMED');
    }
    // sk-ECDSA flags are signed too: claiming the touch afterwards breaks the signature.
    const env = createTicketEnvelope(ticketRequest(), alice);
    const msg = pae(env.payloadType, env.payload);
    const noTouch = Buffer.from(erin.blob(msg, { flags: 0 }));
    noTouch[noTouch.length - 5] = 0x01;
    const t = verifyTicketEnvelope(
      { ...env, signatures: [...env.signatures, { keyid: erin.publicKey.keyid, sig: noTouch }] },
      p.keyOwners,
    );
    assert.deepEqual(t.unverified, [1]);
  });
});
