// Ticket rules T1-T15 (docs/rules.md): for each, a ticket that passes and one that fails with
// the rule's code. Scenario: alice (oncall) requests a 15-minute push to main at 03:12, bob
// (approver) approves, alice pushes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyTicketEnvelope, type VerifiedTicket } from '../../src/ticket/verify.ts';
import {
  evaluateTicket,
  evaluateUses,
  type Pusher,
  type TicketState,
  type UseRequest,
} from '../../src/engine/evaluate.ts';
import { addSignature, createTicketEnvelope, type TicketRequest } from '../../src/ticket/sign.ts';
import type { Policy } from '../../src/policy/policy.ts';
import { parsePolicy } from '../../src/policy/policy.ts';
import type { SigningKey } from '../../src/ticket/keys.ts';
import {
  approvedEnvelope,
  keys,
  policyYaml,
  T0,
  testPolicy,
  ticketRequest,
} from '../helpers/fixtures.ts';

const MIN = 60_000;
const alice: Pusher = { known: true, login: 'alice', principal: 'alice' };
const fresh: TicketState = { revoked: false, usesConsumed: 0 };
const defaultPolicy = testPolicy();

/** A ticket for `request`, signed by `requesterKey` then each approver, verified under `policy`. */
function ticket(
  request: Partial<TicketRequest> = {},
  approvers: SigningKey[] = [keys.bob],
  requesterKey: SigningKey = keys.alice,
  policy: Policy = defaultPolicy,
): VerifiedTicket {
  let env = createTicketEnvelope(ticketRequest(request), requesterKey);
  for (const k of approvers) env = addSignature(env, k);
  return verifyTicketEnvelope(env, policy.keyOwners);
}

interface Check {
  ticket?: VerifiedTicket;
  policy?: Policy;
  use?: Partial<UseRequest>;
  state?: Partial<TicketState>;
  now?: number;
}

/** The [rule, code] pairs that fail. */
function failures(c: Check = {}): [string, string][] {
  const policy = c.policy ?? defaultPolicy;
  const use: UseRequest = { ref: 'refs/heads/main', actions: ['push'], pusher: alice, ...c.use };
  return evaluateTicket(
    c.ticket ?? ticket({}, [keys.bob], keys.alice, policy),
    policy,
    use,
    { ...fresh, ...c.state },
    c.now ?? T0 + MIN,
  ).map((f) => [f.rule, f.code]);
}

test('the DESIGN §1 ticket passes every rule', () => {
  assert.deepEqual(failures(), []);
  const env = approvedEnvelope();
  const t = verifyTicketEnvelope(env, defaultPolicy.keyOwners);
  const [f] = evaluateTicket(
    t,
    defaultPolicy,
    { ref: 'refs/heads/dev', actions: ['push'], pusher: alice },
    fresh,
    T0,
  );
  assert.equal(f!.code, 'SCOPE_REF');
  assert.match(f!.message, /refs\/heads\/dev is not in the ticket's refs \(refs\/heads\/main\)/);
});

test('T1: a requester the policy does not know -> PRINCIPAL_UNKNOWN', () => {
  assert.deepEqual(failures({ ticket: ticket({ requester: 'eve', holder: 'alice' }) }), [
    ['T1', 'PRINCIPAL_UNKNOWN'],
  ]);
});

test("T1: the requester's own signature is missing -> REQUESTER_SIGNATURE_MISSING", () => {
  // dave (oncall) signed a ticket that names alice as requester.
  assert.deepEqual(failures({ ticket: ticket({}, [keys.bob], keys.dave) }), [
    ['T1', 'REQUESTER_SIGNATURE_MISSING'],
  ]);
  // alice's signature under a key the policy no longer lists does not count either.
  const withoutAlice2 = parsePolicy(policyYaml().replace(`, "${keys.alice2.publicKey.text}"`, ''));
  const t = ticket({}, [keys.bob], keys.alice2, withoutAlice2);
  assert.deepEqual(failures({ ticket: t, policy: withoutAlice2 }), [
    ['T1', 'REQUESTER_SIGNATURE_MISSING'],
  ]);
  // ...but her second listed key is hers.
  assert.deepEqual(failures({ ticket: ticket({}, [keys.bob], keys.alice2) }), []);
});

test('T2: the requester needs a requester role -> REQUESTER_ROLE', () => {
  // bob (approver only) requests, carol approves.
  const t = ticket({ requester: 'bob', holder: 'bob' }, [keys.carol], keys.bob);
  const bob: Pusher = { known: true, login: 'bob', principal: 'bob' };
  assert.deepEqual(failures({ ticket: t, use: { pusher: bob } }), [['T2', 'REQUESTER_ROLE']]);
  // dave (oncall) may request; carol approves.
  const d = ticket({ requester: 'dave', holder: 'dave' }, [keys.carol], keys.dave);
  assert.deepEqual(
    failures({ ticket: d, use: { pusher: { known: true, login: 'dave', principal: 'dave' } } }),
    [],
  );
});

test('T3: approvals come from approver principals other than the requester -> APPROVALS_MISSING', () => {
  assert.deepEqual(failures({ ticket: ticket({}, []) }), [['T3', 'APPROVALS_MISSING']]);
  // dave is oncall, not an approver; merge-bot has no roles; mallory is not in the policy.
  for (const k of [keys.dave, keys.mergeBot, keys.mallory]) {
    assert.deepEqual(failures({ ticket: ticket({}, [k]) }), [['T3', 'APPROVALS_MISSING']]);
  }
  const t = ticket({}, [keys.dave, keys.mallory]);
  const [f] = evaluateTicket(
    t,
    defaultPolicy,
    { ref: 'refs/heads/main', actions: ['push'], pusher: alice },
    fresh,
    T0,
  );
  assert.match(
    f!.message,
    /has 0; dave signed without an approver role; 1 signature\(s\) verify under no trusted key/,
  );
  // carol counts as well as bob.
  assert.deepEqual(failures({ ticket: ticket({}, [keys.carol]) }), []);
});

test('T3: separation of duties: a requester who is also an approver never approves her own ticket', () => {
  const policy = parsePolicy(
    policyYaml().replace(
      'roles: [oncall]\n    logins: [alice',
      'roles: [oncall, approver]\n    logins: [alice',
    ),
  );
  assert.deepEqual(failures({ policy, ticket: ticket({}, [], keys.alice, policy) }), [
    ['T3', 'APPROVALS_MISSING'],
  ]);
  assert.deepEqual(failures({ policy, ticket: ticket({}, [keys.alice2], keys.alice, policy) }), [
    ['T3', 'APPROVALS_MISSING'],
  ]);
  assert.deepEqual(failures({ policy, ticket: ticket({}, [keys.bob], keys.alice, policy) }), []);
});

test('T3/T4: with approvals: 2, bob and carol pass; bob twice or bob alone do not', () => {
  const policy = testPolicy({ approvals: 2 });
  assert.deepEqual(
    failures({ policy, ticket: ticket({}, [keys.bob, keys.carol], keys.alice, policy) }),
    [],
  );
  assert.deepEqual(failures({ policy, ticket: ticket({}, [keys.bob], keys.alice, policy) }), [
    ['T3', 'APPROVALS_MISSING'],
  ]);
  const env = approvedEnvelope();
  const twice = verifyTicketEnvelope(
    { ...env, signatures: [...env.signatures, env.signatures[1]!] },
    policy.keyOwners,
  );
  assert.deepEqual(failures({ policy, ticket: twice }), [['T3', 'APPROVALS_MISSING']]);
  // alice's second key adds no approval either.
  assert.deepEqual(
    failures({ policy, ticket: ticket({}, [keys.bob, keys.alice2], keys.alice, policy) }),
    [['T3', 'APPROVALS_MISSING']],
  );
});

test('T3: approvals: 0 lets the requester act alone', () => {
  const policy = testPolicy({ approvals: 0 });
  assert.deepEqual(failures({ policy, ticket: ticket({}, [], keys.alice, policy) }), []);
});

test('T5: a ticket for another repository -> REPOSITORY_MISMATCH', () => {
  assert.deepEqual(failures({ ticket: ticket({ repository: 'acme/web' }) }), [
    ['T5', 'REPOSITORY_MISMATCH'],
  ]);
  assert.deepEqual(failures({ ticket: ticket({ repository: 'acme/api' }) }), []);
});

test('T6: the ref must match the ticket scope -> SCOPE_REF', () => {
  assert.deepEqual(failures({ use: { ref: 'refs/heads/release/1' } }), [['T6', 'SCOPE_REF']]);
  assert.deepEqual(failures({ use: { ref: 'refs/heads/main2' } }), [['T6', 'SCOPE_REF']]);
  const t = ticket({ refs: ['main', 'release/*'] });
  assert.deepEqual(failures({ ticket: t, use: { ref: 'refs/heads/release/1' } }), []);
  assert.deepEqual(failures({ ticket: t, use: { ref: 'refs/heads/release/1/x' } }), [
    ['T6', 'SCOPE_REF'],
  ]);
});

test('T7: every action the update performs must be in scope -> SCOPE_ACTION', () => {
  assert.deepEqual(failures({ use: { actions: ['force-push'] } }), [['T7', 'SCOPE_ACTION']]);
  assert.deepEqual(failures({ use: { actions: ['push', 'change-policy'] } }), [
    ['T7', 'SCOPE_ACTION'],
  ]);
  const t = ticket({ actions: ['push', 'force-push', 'change-policy'] });
  assert.deepEqual(failures({ ticket: t, use: { actions: ['force-push', 'change-policy'] } }), []);
  assert.deepEqual(failures({ ticket: t, use: { actions: ['delete'] } }), [['T7', 'SCOPE_ACTION']]);
});

test('T8: with pinned commits the new tip must be one of them -> SCOPE_COMMIT', () => {
  const t = ticket({ commits: ['a'.repeat(40), 'c'.repeat(40)] });
  assert.deepEqual(failures({ ticket: t, use: { newSha: 'a'.repeat(40) } }), []);
  assert.deepEqual(failures({ ticket: t, use: { newSha: 'c'.repeat(40) } }), []);
  assert.deepEqual(failures({ ticket: t, use: { newSha: 'b'.repeat(40) } }), [
    ['T8', 'SCOPE_COMMIT'],
  ]);
  assert.deepEqual(failures({ ticket: t, use: { newSha: 'A'.repeat(40) } }), [
    ['T8', 'SCOPE_COMMIT'],
  ]);
  // No pins: any new tip.
  assert.deepEqual(failures({ use: { newSha: 'b'.repeat(40) } }), []);
});

test('T9: not before notBefore minus the clock skew -> TICKET_NOT_YET_VALID', () => {
  const later = ticket({ notBefore: T0 + 10 * MIN, ttlMs: 15 * MIN });
  assert.deepEqual(failures({ ticket: later, now: T0 }), [['T9', 'TICKET_NOT_YET_VALID']]);
  assert.deepEqual(failures({ ticket: later, now: T0 + 8 * MIN - 1 }), [
    ['T9', 'TICKET_NOT_YET_VALID'],
  ]);
  assert.deepEqual(
    failures({ ticket: later, now: T0 + 8 * MIN }),
    [],
    '2m skew: 03:20 is fine for 03:22',
  );
  assert.deepEqual(failures({ ticket: later, now: T0 + 10 * MIN }), []);
  const noSkew = testPolicy({ clockSkew: '0s' });
  const t = ticket({ notBefore: T0 + 10 * MIN }, [keys.bob], keys.alice, noSkew);
  assert.deepEqual(failures({ policy: noSkew, ticket: t, now: T0 + 10 * MIN - 1 }), [
    ['T9', 'TICKET_NOT_YET_VALID'],
  ]);
});

test('T10: expiry is hard, no skew -> TICKET_EXPIRED', () => {
  // 15 minutes from 03:12: valid until 03:26:59.999, dead at 03:27:00.
  assert.deepEqual(failures({ now: T0 + 15 * MIN - 1 }), []);
  assert.deepEqual(failures({ now: T0 + 15 * MIN }), [['T10', 'TICKET_EXPIRED']]);
  assert.deepEqual(failures({ now: T0 + 15 * MIN + 60 * 1000 }), [['T10', 'TICKET_EXPIRED']]);
});

test('T11: expiresAt - issuedAt must be within maxTtl -> TTL_TOO_LONG', () => {
  const policy = testPolicy({ maxTtl: '10m' });
  const sign = (r: Partial<TicketRequest>) => ticket(r, [keys.bob], keys.alice, policy);
  assert.deepEqual(failures({ policy, ticket: sign({ ttlMs: 10 * MIN }) }), []);
  assert.deepEqual(failures({ policy, ticket: sign({ ttlMs: 10 * MIN + 1000 }) }), [
    ['T11', 'TTL_TOO_LONG'],
  ]);
  // The lifetime counts from issuedAt: a later notBefore does not stretch the cap.
  assert.deepEqual(
    failures({
      policy,
      ticket: sign({ notBefore: T0 + 5 * MIN, ttlMs: 10 * MIN }),
      now: T0 + 6 * MIN,
    }),
    [['T11', 'TTL_TOO_LONG']],
  );
  assert.deepEqual(failures({ ticket: ticket({ ttlMs: 61 * MIN }) }), [['T11', 'TTL_TOO_LONG']]);
});

test('T12: a revoked ticket -> TICKET_REVOKED', () => {
  assert.deepEqual(failures({ state: { revoked: true } }), [['T12', 'TICKET_REVOKED']]);
  assert.deepEqual(failures({ state: { revoked: false } }), []);
});

test('T13: uses left -> TICKET_USED_UP', () => {
  assert.deepEqual(failures({ state: { usesConsumed: 1 } }), [['T13', 'TICKET_USED_UP']]);
  const roomy = parsePolicy(policyYaml({ maxUses: 3 }));
  const three = ticket({ maxUses: 3 }, [keys.bob], keys.alice, roomy);
  assert.deepEqual(failures({ policy: roomy, ticket: three, state: { usesConsumed: 2 } }), []);
  assert.deepEqual(failures({ policy: roomy, ticket: three, state: { usesConsumed: 3 } }), [
    ['T13', 'TICKET_USED_UP'],
  ]);
});

test('T15: more uses than the policy maxUses (default and ceiling) -> USES_TOO_MANY', () => {
  // The reproduction: --max-uses 1000 under a policy whose maxUses is 1 was approved and used.
  const greedy = ticket({ maxUses: 1000 });
  assert.deepEqual(failures({ ticket: greedy }), [['T15', 'USES_TOO_MANY']]);
  assert.deepEqual(evaluateUses(greedy, defaultPolicy), [
    {
      code: 'USES_TOO_MANY',
      rule: 'T15',
      message: "ticket allows 1000 uses, over the policy's maxUses of 1",
    },
  ]);
  // At the ceiling is fine; raising the ceiling admits more.
  const three = ticket({ maxUses: 3 });
  assert.deepEqual(failures({ ticket: three }), [['T15', 'USES_TOO_MANY']]);
  const roomy = parsePolicy(policyYaml({ maxUses: 3 }));
  assert.deepEqual(failures({ policy: roomy, ticket: three }), []);
  assert.deepEqual(evaluateUses(ticket({ maxUses: 1 }), defaultPolicy), []);
});

test('T14: the holder is the pusher, where the edge knows the pusher -> HOLDER_MISMATCH', () => {
  const bob: Pusher = { known: true, login: 'bob', principal: 'bob' };
  const eve: Pusher = { known: true, login: 'eve', principal: undefined };
  assert.deepEqual(failures({ use: { pusher: bob } }), [['T14', 'HOLDER_MISMATCH']]);
  assert.deepEqual(failures({ use: { pusher: eve } }), [['T14', 'HOLDER_MISMATCH']]);
  assert.deepEqual(
    failures({ use: { pusher: { known: true, login: 'alice-gh', principal: 'alice' } } }),
    [],
  );
  assert.deepEqual(failures({ use: { pusher: { known: false } } }), []);
  // alice requests on behalf of dave: dave holds it.
  const forDave = ticket({ holder: 'dave' });
  assert.deepEqual(
    failures({
      ticket: forDave,
      use: { pusher: { known: true, login: 'dave', principal: 'dave' } },
    }),
    [],
  );
  assert.deepEqual(failures({ ticket: forDave }), [['T14', 'HOLDER_MISMATCH']]);
});

test('failures accumulate: an expired ticket for the wrong ref, repository and pusher reports all', () => {
  const t = ticket({ repository: 'acme/web' }, []);
  assert.deepEqual(
    failures({
      ticket: t,
      use: {
        ref: 'refs/heads/prod',
        actions: ['force-push'],
        pusher: { known: true, login: 'bob', principal: 'bob' },
      },
      state: { revoked: true, usesConsumed: 1 },
      now: T0 + 20 * MIN,
    }),
    [
      ['T3', 'APPROVALS_MISSING'],
      ['T5', 'REPOSITORY_MISMATCH'],
      ['T6', 'SCOPE_REF'],
      ['T7', 'SCOPE_ACTION'],
      ['T10', 'TICKET_EXPIRED'],
      ['T12', 'TICKET_REVOKED'],
      ['T13', 'TICKET_USED_UP'],
      ['T14', 'HOLDER_MISMATCH'],
    ],
  );
  assert.deepEqual(failures({ use: { ref: 'refs/heads/prod' }, now: T0 + 15 * MIN }), [
    ['T6', 'SCOPE_REF'],
    ['T10', 'TICKET_EXPIRED'],
  ]);
});

test('T9/T10 fail closed: a reference time that is not a number never makes a ticket valid', () => {
  for (const now of [NaN, Infinity, -Infinity]) {
    assert.deepEqual(failures({ now }), [['T10', 'TIME_INVALID']], String(now));
  }
});

test('T13 fails closed: a use count that is not a number counts as used up', () => {
  assert.deepEqual(failures({ state: { usesConsumed: NaN } }), [['T13', 'TICKET_USED_UP']]);
});
