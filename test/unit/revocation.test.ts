// T12 evidence: a revocation counts only when signed by the ticket's requester, an approver or
// an admin, and names this exact ticket (id and payload digest).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createRevocation,
  REVOCATION_PAYLOAD_TYPE,
  verifyRevocation,
} from '../../src/ticket/revocation.ts';
import { verifyTicketEnvelope } from '../../src/ticket/verify.ts';
import { createEnvelope } from '../../src/ticket/sign.ts';
import { approvedEnvelope, keys, T0, testPolicy, throwsCode } from '../helpers/fixtures.ts';

const policy = testPolicy();
const ticket = verifyTicketEnvelope(approvedEnvelope(), policy.keyOwners);
const other = verifyTicketEnvelope(
  approvedEnvelope({ nonce: 'BBBBBBBBBBBBBBBBBBBBBB==' }),
  policy.keyOwners,
);

test('the requester or an approver may revoke', () => {
  const byAlice = createRevocation(ticket, 'alice', 'fixed', T0 + 60_000, keys.alice);
  assert.equal(verifyRevocation(byAlice, ticket, policy).revoker, 'alice');
  const byCarol = createRevocation(ticket, 'carol', 'not needed', T0 + 60_000, keys.carol);
  assert.equal(verifyRevocation(byCarol, ticket, policy).ticketDigest, ticket.payloadDigest);
});

test('anyone else, a wrong signer, or another ticket: REVOCATION_INVALID', () => {
  // dave is oncall but not this ticket's requester, nor an approver.
  throwsCode(
    () => verifyRevocation(createRevocation(ticket, 'dave', 'x', T0, keys.dave), ticket, policy),
    'REVOCATION_INVALID',
    /not signed by its revoker/,
  );
  // Claims to be bob, signed by mallory.
  throwsCode(
    () => verifyRevocation(createRevocation(ticket, 'bob', 'x', T0, keys.mallory), ticket, policy),
    'REVOCATION_INVALID',
  );
  // Same id, different payload (digest differs): does not revoke this ticket.
  assert.equal(other.payload.id, ticket.payload.id);
  throwsCode(
    () => verifyRevocation(createRevocation(other, 'alice', 'x', T0, keys.alice), ticket, policy),
    'REVOCATION_INVALID',
    /not this ticket/,
  );
});

test('a ticket is not a revocation and a revocation is not a ticket', () => {
  throwsCode(() => verifyRevocation(approvedEnvelope(), ticket, policy), 'REVOCATION_INVALID');
  const rev = createRevocation(ticket, 'alice', 'x', T0, keys.alice);
  throwsCode(() => verifyTicketEnvelope(rev, policy.keyOwners), 'PAYLOAD_TYPE');
  const junk = createEnvelope(REVOCATION_PAYLOAD_TYPE, Buffer.from('{"type":1}'), keys.alice);
  throwsCode(() => verifyRevocation(junk, ticket, policy), 'REVOCATION_INVALID');
});
