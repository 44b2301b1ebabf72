// Authenticity (docs/rules.md A1-A4, T4): a ticket is what its signers signed, counted by
// distinct principal, under keys the policy trusts; keyid is only a hint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { verifySignatures, verifyTicketEnvelope } from '../../src/ticket/verify.ts';
import { createEnvelope, addSignature, signPayload } from '../../src/ticket/sign.ts';
import { TICKET_PAYLOAD_TYPE } from '../../src/ticket/payload.ts';
import type { Envelope } from '../../src/ticket/dsse.ts';
import {
  approvedEnvelope,
  keys,
  testPolicy,
  ticketRequest,
  throwsCode,
} from '../helpers/fixtures.ts';

const trusted = testPolicy().keyOwners;
const principals = (env: Envelope) =>
  verifyTicketEnvelope(env, trusted).signers.map((s) => s.principal);

test('alice requests, bob approves: both count, nothing unverified', () => {
  const env = approvedEnvelope();
  const t = verifyTicketEnvelope(env, trusted);
  assert.deepEqual(t.signers, [
    {
      principal: 'alice',
      keyid: keys.alice.publicKey.keyid,
      index: 0,
      userPresent: false,
      userVerified: false,
    },
    {
      principal: 'bob',
      keyid: keys.bob.publicKey.keyid,
      index: 1,
      userPresent: false,
      userVerified: false,
    },
  ]);
  assert.deepEqual(t.unverified, []);
  assert.equal(t.payload.requester, 'alice');
  assert.equal(t.payloadDigest, createHash('sha256').update(env.payload).digest('hex'));
});

test('A2: payload bytes edited after signing -> SIGNATURE_INVALID (nothing verifies)', () => {
  const env = approvedEnvelope();
  const text = env.payload.toString();
  for (const edited of [
    text.replace('refs/heads/main', 'refs/heads/prod'),
    text.replace('"maxUses":1', '"maxUses":9'),
    text.replace('}', ' }'), // same JSON meaning, different bytes
    text + '\n',
  ]) {
    assert.notEqual(edited, text);
    throwsCode(
      () => verifyTicketEnvelope({ ...env, payload: Buffer.from(edited) }, trusted),
      'SIGNATURE_INVALID',
    );
  }
});

test('A4: an edited payload is never parsed: garbage behind a broken signature is SIGNATURE_INVALID', () => {
  const env = approvedEnvelope();
  throwsCode(
    () => verifyTicketEnvelope({ ...env, payload: Buffer.from('{"version": 2') }, trusted),
    'SIGNATURE_INVALID',
  );
  // Signed garbage is authentic but still refused by the strict parser.
  const signedGarbage = createEnvelope(
    TICKET_PAYLOAD_TYPE,
    Buffer.from('{"version":1}'),
    keys.alice,
  );
  throwsCode(() => verifyTicketEnvelope(signedGarbage, trusted), 'PAYLOAD_MALFORMED');
  const signedV2 = createEnvelope(TICKET_PAYLOAD_TYPE, Buffer.from('{"version":2}'), keys.alice);
  throwsCode(() => verifyTicketEnvelope(signedV2, trusted), 'VERSION_UNSUPPORTED');
});

test('A1: another payloadType is PAYLOAD_TYPE; relabelling a signed document breaks its signature', () => {
  const env = approvedEnvelope();
  throwsCode(
    () => verifyTicketEnvelope({ ...env, payloadType: 'application/json' }, trusted),
    'PAYLOAD_TYPE',
  );
  // Something signed as a different type can't be passed off as a ticket.
  const other = 'application/vnd.git-breakglass.revocation.v1+json';
  const signedAsOther = createEnvelope(other, env.payload, keys.alice);
  throwsCode(
    () => verifyTicketEnvelope({ ...signedAsOther, payloadType: TICKET_PAYLOAD_TYPE }, trusted),
    'SIGNATURE_INVALID',
  );
});

test('a signature swapped in from another ticket does not count (and is reported)', () => {
  const mine = approvedEnvelope({}, []);
  const other = approvedEnvelope({ nonce: 'BBBBBBBBBBBBBBBBBBBBBB==' });
  const swapped: Envelope = { ...mine, signatures: [mine.signatures[0]!, other.signatures[1]!] };
  const t = verifyTicketEnvelope(swapped, trusted);
  assert.deepEqual(
    t.signers.map((s) => s.principal),
    ['alice'],
  );
  assert.deepEqual(t.unverified, [1]);
  // With only foreign signatures, nothing verifies at all.
  throwsCode(
    () => verifyTicketEnvelope({ ...mine, signatures: other.signatures }, trusted),
    'SIGNATURE_INVALID',
  );
});

test('T4: the same signature twice counts once', () => {
  const env = approvedEnvelope();
  const dup: Envelope = {
    ...env,
    signatures: [...env.signatures, env.signatures[1]!, env.signatures[1]!],
  };
  const t = verifyTicketEnvelope(dup, trusted);
  assert.deepEqual(
    t.signers.map((s) => [s.principal, s.index]),
    [
      ['alice', 0],
      ['bob', 1],
    ],
  );
  assert.deepEqual(t.unverified, []);
});

test("T4: alice's two keys count as one principal", () => {
  const env = approvedEnvelope({}, [keys.alice2]);
  assert.equal(env.signatures.length, 2);
  const t = verifyTicketEnvelope(env, trusted);
  assert.deepEqual(t.signers, [
    {
      principal: 'alice',
      keyid: keys.alice.publicKey.keyid,
      index: 0,
      userPresent: false,
      userVerified: false,
    },
  ]);
  assert.deepEqual(t.unverified, []);
});

test('A3: a signature under a key the policy does not list is ignored and reported by index', () => {
  const env = approvedEnvelope({}, [keys.bob, keys.mallory]);
  const t = verifyTicketEnvelope(env, trusted);
  assert.deepEqual(
    t.signers.map((s) => s.principal),
    ['alice', 'bob'],
  );
  assert.deepEqual(t.unverified, [2]);
  // A signature claiming a trusted keyid but made with another key is ignored too.
  const forged = {
    ...signPayload(env.payloadType, env.payload, keys.mallory),
    keyid: keys.carol.publicKey.keyid,
  };
  const t2 = verifyTicketEnvelope({ ...env, signatures: [env.signatures[0]!, forged] }, trusted);
  assert.deepEqual(
    t2.signers.map((s) => s.principal),
    ['alice'],
  );
  assert.deepEqual(t2.unverified, [1]);
});

test('A3: bob removed from the policy -> his signature no longer counts', () => {
  const withoutBob = testPolicy({ omitBob: true }).keyOwners;
  const t = verifyTicketEnvelope(approvedEnvelope(), withoutBob);
  assert.deepEqual(
    t.signers.map((s) => s.principal),
    ['alice'],
  );
  assert.deepEqual(t.unverified, [1]);
  // Only mallory signed: nothing trusted verifies.
  const env = createEnvelope(TICKET_PAYLOAD_TYPE, approvedEnvelope().payload, keys.mallory);
  throwsCode(() => verifyTicketEnvelope(env, trusted), 'SIGNATURE_INVALID');
  throwsCode(() => verifyTicketEnvelope({ ...env, signatures: [] }, trusted), 'SIGNATURE_INVALID');
});

test("A3: keyid is only a hint: wrong, empty or another trusted key's id still verifies", () => {
  const env = approvedEnvelope();
  const bobSig = env.signatures[1]!;
  for (const keyid of [
    'SHA256:not-a-key',
    '',
    keys.mallory.publicKey.keyid,
    keys.carol.publicKey.keyid,
    keys.alice.publicKey.keyid,
  ]) {
    const t = verifyTicketEnvelope(
      { ...env, signatures: [env.signatures[0]!, { ...bobSig, keyid }] },
      trusted,
    );
    assert.deepEqual(
      t.signers.map((s) => [s.principal, s.keyid]),
      [
        ['alice', keys.alice.publicKey.keyid],
        ['bob', keys.bob.publicKey.keyid],
      ],
      `hint ${JSON.stringify(keyid)}`,
    );
    assert.deepEqual(t.unverified, []);
  }
});

test('verifySignatures: bounded work for many signatures with misleading hints', () => {
  const env = approvedEnvelope();
  const junk = Array.from({ length: 30 }, (_, i) => ({
    keyid: i % 2 ? '' : keys.carol.publicKey.keyid,
    sig: signPayload(env.payloadType, Buffer.from(`other ${i}`), keys.mallory).sig,
  }));
  const r = verifySignatures({ ...env, signatures: [...junk, ...env.signatures] }, trusted);
  assert.deepEqual(r.unverified.length, 30);
  // Junk first costs trials, but the real signatures still verify by their hints.
  assert.deepEqual(
    r.signers.map((s) => s.principal),
    ['alice', 'bob'],
  );
});

test('addSignature refuses a second signature from the same key and never touches the payload', () => {
  const env = approvedEnvelope();
  throwsCode(() => addSignature(env, keys.bob), 'USAGE');
  const more = addSignature(env, keys.carol);
  assert.deepEqual(more.payload, env.payload);
  assert.deepEqual(more.signatures.slice(0, 2), env.signatures);
  assert.deepEqual(principals(more), ['alice', 'bob', 'carol']);
  void ticketRequest;
});
