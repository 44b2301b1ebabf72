// Post-incident reviews (DESIGN §1 step 6): who may sign one, and what a forged one looks like.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createReview,
  hintedSigners,
  REVIEW_PAYLOAD_TYPE,
  standingReview,
  verifyReview,
  encodeReview,
  type ReviewPayload,
} from '../../src/audit/review.ts';
import { createEnvelope, addSignature } from '../../src/ticket/sign.ts';
import { verifySignatures, verifyTicketEnvelope } from '../../src/ticket/verify.ts';
import { approvedEnvelope, keys, testPolicy, T0, ticketRequest } from '../helpers/fixtures.ts';

const policy = testPolicy();
const ticket = verifyTicketEnvelope(approvedEnvelope(), policy.keyOwners);
const later = T0 + 8 * 3_600_000;

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'no error';
}

test('carol (approver, not involved) signs a review that verifies', () => {
  const env = createReview(
    policy,
    ticket,
    'carol',
    'justified',
    'hotfix was needed',
    later,
    keys.carol,
  );
  assert.equal(env.payloadType, REVIEW_PAYLOAD_TYPE);
  const r = verifyReview(env, ticket, policy);
  assert.equal(r.reviewer, 'carol');
  assert.equal(r.outcome, 'justified');
  assert.equal(r.ticket, ticket.payload.id);
  assert.equal(r.ticketDigest, ticket.payloadDigest);
  assert.equal(r.reviewedAt, '2026-11-29T11:12:00Z');
  assert.equal(r.keyid, keys.carol.publicKey.keyid);
});

test('the requester may not review her own ticket (R5), even holding a reviewer role', () => {
  assert.equal(
    code(() => createReview(policy, ticket, 'alice', 'justified', 'me', later, keys.alice)),
    'REVIEW_INVALID',
  );
  // A policy where alice is also an approver: still refused.
  const p2 = testPolicy({ extra: '' });
  const aliceApprover = {
    ...p2,
    principals: new Map(p2.principals).set('alice', {
      ...p2.principals.get('alice')!,
      roles: ['oncall', 'approver'],
    }),
  };
  assert.equal(
    code(() => createReview(aliceApprover, ticket, 'alice', 'justified', 'me', later, keys.alice)),
    'REVIEW_INVALID',
  );
  // Hand-made envelope signed by alice bypassing createReview: verifyReview refuses it too.
  const forged = createEnvelope(
    REVIEW_PAYLOAD_TYPE,
    encodeReview(payload({ reviewer: 'alice' })),
    keys.alice,
  );
  assert.equal(
    code(() => verifyReview(forged, ticket, aliceApprover)),
    'REVIEW_INVALID',
  );
});

test('the holder may not review the ticket they used (R5)', () => {
  const t = verifyTicketEnvelope(
    addSignature(
      createEnvelope(
        'application/vnd.git-breakglass.ticket.v1+json',
        approvedEnvelope({ holder: 'carol' }).payload,
        keys.alice,
      ),
      keys.bob,
    ),
    policy.keyOwners,
  );
  assert.equal(t.payload.holder, 'carol');
  assert.equal(
    code(() => createReview(policy, t, 'carol', 'justified', 'x', later, keys.carol)),
    'REVIEW_INVALID',
  );
});

test('an approver may not review the ticket they approved (R5), though they hold a reviewer role', () => {
  // bob approved `ticket`; reviewerRoles is [approver], which bob holds.
  assert.ok(ticket.signers.some((x) => x.principal === 'bob'));
  assert.equal(
    code(() => createReview(policy, ticket, 'bob', 'justified', 'x', later, keys.bob)),
    'REVIEW_INVALID',
  );
  const forged = createEnvelope(
    REVIEW_PAYLOAD_TYPE,
    encodeReview(payload({ reviewer: 'bob' })),
    keys.bob,
  );
  assert.throws(
    () => verifyReview(forged, ticket, policy),
    (e: { code?: string; message?: string }) =>
      e.code === 'REVIEW_INVALID' && /bob approved ticket .* and can't review it/.test(e.message!),
  );
  // Every signer counts, even one whose approval was not needed: carol as a second approver.
  const both = verifyTicketEnvelope(addSignature(approvedEnvelope(), keys.carol), policy.keyOwners);
  assert.equal(
    code(() => createReview(policy, both, 'carol', 'justified', 'x', later, keys.carol)),
    'REVIEW_INVALID',
  );
});

test("R6: an involved person's later review does not overrule a valid one; a valid later one corrects it", () => {
  const carol = createReview(policy, ticket, 'carol', 'justified', 'ok', later, keys.carol);
  const bobs = createEnvelope(
    REVIEW_PAYLOAD_TYPE,
    encodeReview(
      payload({ reviewer: 'bob', outcome: 'unjustified', reviewedAt: '2026-11-29T12:00:00Z' }),
    ),
    keys.bob,
  );
  // Newest first, as the review ref's history lists them: bob's (invalid) on top of carol's.
  const s = standingReview(
    [
      { where: 'c3', envelope: bobs },
      { where: 'c2', error: 'not an envelope' },
      { where: 'c1', envelope: carol },
    ],
    ticket,
    policy,
  );
  assert.equal(s.review?.reviewer, 'carol');
  assert.equal(s.review?.outcome, 'justified');
  assert.deepEqual(
    s.rejected.map((x) => x.where),
    ['c3', 'c2'],
  );
  assert.match(s.rejected[0]!.error, /bob approved ticket/);
  // A later valid review by an uninvolved reviewer is the current verdict.
  const p3 = testPolicy();
  const withDave = {
    ...p3,
    principals: new Map(p3.principals).set('dave', {
      ...p3.principals.get('dave')!,
      roles: ['oncall', 'approver'],
    }),
  };
  const daves = createReview(
    withDave,
    ticket,
    'dave',
    'false-emergency',
    'could wait',
    later + 1000,
    keys.dave,
  );
  const s2 = standingReview(
    [
      { where: 'c4', envelope: daves },
      { where: 'c1', envelope: carol },
    ],
    ticket,
    withDave,
  );
  assert.equal(s2.review?.reviewer, 'dave');
  assert.equal(s2.review?.outcome, 'false-emergency');
  assert.deepEqual(s2.rejected, []);
  // Nothing valid: no standing review.
  assert.equal(standingReview([{ where: 'c3', envelope: bobs }], ticket, policy).review, null);
});

test('a key without a reviewer role is refused (R4)', () => {
  assert.equal(
    code(() => createReview(policy, ticket, 'dave', 'justified', 'x', later, keys.dave)),
    'REVIEW_INVALID',
  );
  const forged = createEnvelope(
    REVIEW_PAYLOAD_TYPE,
    encodeReview(payload({ reviewer: 'dave' })),
    keys.dave,
  );
  assert.equal(
    code(() => verifyReview(forged, ticket, policy)),
    'REVIEW_INVALID',
  );
});

test('signing as someone else is refused (R3)', () => {
  // mallory is not in the policy; she claims to be carol.
  assert.equal(
    code(() => createReview(policy, ticket, 'carol', 'justified', 'x', later, keys.mallory)),
    'REVIEW_INVALID',
  );
  const forged = createEnvelope(REVIEW_PAYLOAD_TYPE, encodeReview(payload()), keys.dave);
  assert.equal(
    code(() => verifyReview(forged, ticket, policy)),
    'REVIEW_INVALID',
  );
});

test('a review of another ticket, or with edited payload, is refused (R2)', () => {
  const other = verifyTicketEnvelope(
    approvedEnvelope(ticketRequest({ now: T0 + 1000, id: '20261129T031201Z-abcdef' })),
    policy.keyOwners,
  );
  const env = createReview(policy, other, 'carol', 'unjustified', 'x', later, keys.carol);
  assert.equal(
    code(() => verifyReview(env, ticket, policy)),
    'REVIEW_INVALID',
  );
  const good = createReview(policy, ticket, 'carol', 'justified', 'x', later, keys.carol);
  const edited = {
    ...good,
    payload: encodeReview({ ...payload(), outcome: 'false-emergency' }),
  };
  assert.equal(
    code(() => verifyReview(edited, ticket, policy)),
    'REVIEW_INVALID',
  );
});

test('a strict payload: unknown field, bad outcome, bad time (R2) and wrong type (R1)', () => {
  const sign = (obj: unknown, type = REVIEW_PAYLOAD_TYPE) =>
    createEnvelope(type, Buffer.from(JSON.stringify(obj)), keys.carol);
  assert.equal(
    code(() => verifyReview(sign({ ...payload(), extra: 1 }), ticket, policy)),
    'REVIEW_INVALID',
  );
  assert.equal(
    code(() => verifyReview(sign({ ...payload(), outcome: 'fine' }), ticket, policy)),
    'REVIEW_INVALID',
  );
  assert.equal(
    code(() =>
      verifyReview(sign({ ...payload(), reviewedAt: '2026-11-29 11:12' }), ticket, policy),
    ),
    'REVIEW_INVALID',
  );
  assert.equal(
    code(() =>
      verifyReview(
        sign(payload(), 'application/vnd.git-breakglass.ticket.v1+json'),
        ticket,
        policy,
      ),
    ),
    'REVIEW_INVALID',
  );
  assert.equal(
    code(() => verifyReview(sign(payload()), ticket, policy)),
    'no error',
  );
});

function payload(over: Partial<ReviewPayload> = {}): ReviewPayload {
  return {
    type: 'git-breakglass/review',
    version: 1,
    ticket: ticket.payload.id,
    ticketDigest: ticket.payloadDigest,
    reviewer: 'carol',
    outcome: 'justified',
    note: 'ok',
    reviewedAt: '2026-11-29T11:12:00Z',
    ...over,
  };
}

test('hintedSigners gives verifySignatures its signers, or null (then verifySignatures decides)', async () => {
  const signed = createEnvelope(
    REVIEW_PAYLOAD_TYPE,
    encodeReview(payload({ reviewedAt: '2026-11-29T12:00:00Z' })),
    keys.carol,
  );
  const withSig = (sigs: typeof signed.signatures) => ({ ...signed, signatures: sigs });
  const carolSig = signed.signatures[0]!;
  const bobSig = addSignature(signed, keys.bob).signatures[1]!;
  const alice2Sig = addSignature(signed, keys.alice2).signatures[1]!;
  const aliceSig = addSignature(signed, keys.alice).signatures[1]!;
  const cases = [
    signed,
    addSignature(signed, keys.bob),
    // The same signature twice, and one person's two keys: each principal counts once.
    withSig([carolSig, carolSig]),
    withSig([aliceSig, carolSig, alice2Sig]),
    // A wrong hint (another trusted key's id), an unknown key, a damaged signature, none at all.
    withSig([{ ...bobSig, keyid: keys.carol.publicKey.keyid }]),
    withSig([{ ...carolSig, keyid: 'SHA256:unknown' }]),
    withSig([{ ...carolSig, sig: Buffer.from(carolSig.sig.map((b, i) => (i === 5 ? b ^ 1 : b))) }]),
    withSig([]),
    { ...signed, payload: Buffer.from(payload.toString().replace('ok', 'ko')) },
  ];
  for (const env of cases) {
    const hinted = await hintedSigners(env, policy.keyOwners);
    if (hinted !== null) assert.deepEqual(hinted, verifySignatures(env, policy.keyOwners).signers);
  }
  // The usual case takes the fast answer.
  assert.deepEqual(await hintedSigners(signed, policy.keyOwners), [
    {
      principal: 'carol',
      keyid: keys.carol.publicKey.keyid,
      index: 0,
      userPresent: false,
      userVerified: false,
    },
  ]);
  assert.equal(
    verifyReview(signed, ticket, policy, await hintedSigners(signed, policy.keyOwners)).reviewer,
    'carol',
  );
});
