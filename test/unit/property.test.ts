// Property: no random change to an approved ticket's payload bytes or signatures yields a
// ticket that verifies and authorises the push (bounded runs, deterministic seed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { verifyTicketEnvelope } from '../../src/ticket/verify.ts';
import { evaluateTicket } from '../../src/engine/evaluate.ts';
import { parseEnvelope, serializeEnvelope, type Envelope } from '../../src/ticket/dsse.ts';
import { BreakglassError } from '../../src/errors.ts';
import { approvedEnvelope, T0, testPolicy } from '../helpers/fixtures.ts';

const policy = testPolicy();
const original = approvedEnvelope();
const use = {
  ref: 'refs/heads/main',
  actions: ['push' as const],
  pusher: { known: true as const, login: 'alice', principal: 'alice' },
};

/** True if the envelope is accepted end to end: authentic and authorising alice's push. */
function authorises(env: Envelope): boolean {
  try {
    const t = verifyTicketEnvelope(env, policy.keyOwners);
    return (
      evaluateTicket(t, policy, use, { revoked: false, usesConsumed: 0 }, T0 + 60_000).length === 0
    );
  } catch (e) {
    if (e instanceof BreakglassError) return false;
    throw e; // anything else is a crash: the property fails
  }
}

type Edit = { at: number; kind: 'xor' | 'set' | 'insert' | 'delete'; byte: number };
const edit = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom<Edit['kind']>('xor', 'set', 'insert', 'delete'),
  byte: fc.integer({ min: 0, max: 255 }),
});

function applyEdits(bytes: Uint8Array, edits: Edit[]): Buffer {
  let out = Buffer.from(bytes);
  for (const e of edits) {
    const at = out.length ? e.at % out.length : 0;
    if (e.kind === 'xor') out[at] = out[at]! ^ (e.byte || 1);
    else if (e.kind === 'set') out[at] = e.byte;
    else if (e.kind === 'insert')
      out = Buffer.concat([out.subarray(0, at), Buffer.from([e.byte]), out.subarray(at)]);
    else out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
  }
  return out;
}

test('the unmodified ticket authorises the push (the property starts from a valid ticket)', () => {
  assert.equal(authorises(original), true);
});

test('property: edited payload bytes never verify (SIGNATURE_INVALID)', () => {
  fc.assert(
    fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
      const payload = applyEdits(original.payload, edits);
      fc.pre(!payload.equals(original.payload));
      assert.throws(
        () => verifyTicketEnvelope({ ...original, payload }, policy.keyOwners),
        (e: unknown) => e instanceof BreakglassError && e.code === 'SIGNATURE_INVALID',
      );
    }),
    { numRuns: 300, seed: 20261129 },
  );
});

test('property: an edited signature never counts, so the ticket no longer authorises', () => {
  fc.assert(
    fc.property(
      fc.nat({ max: original.signatures.length - 1 }),
      fc.array(
        edit.filter((e) => e.kind === 'xor' || e.kind === 'set'),
        { minLength: 1, maxLength: 3 },
      ),
      (which, edits) => {
        const sig = applyEdits(original.signatures[which]!.sig, edits);
        fc.pre(!sig.equals(original.signatures[which]!.sig));
        const signatures = original.signatures.map((s, i) => (i === which ? { ...s, sig } : s));
        assert.equal(authorises({ ...original, signatures }), false);
      },
    ),
    { numRuns: 300, seed: 20261129 },
  );
});

test('property: a mutated ticket.json either fails with a code or is the same ticket', () => {
  const text = Buffer.from(serializeEnvelope(original));
  fc.assert(
    fc.property(fc.array(edit, { minLength: 1, maxLength: 3 }), (edits) => {
      const mutated = applyEdits(text, edits);
      let env: Envelope;
      try {
        env = parseEnvelope(mutated);
      } catch (e) {
        assert.ok(e instanceof BreakglassError, `a crash, not a coded error: ${String(e)}`);
        return;
      }
      if (authorises(env)) {
        // Only layout changed (e.g. whitespace): the signed bytes are exactly the original ones.
        assert.deepEqual(env.payload, original.payload);
        assert.equal(env.payloadType, original.payloadType);
      }
    }),
    { numRuns: 300, seed: 20261129 },
  );
});
