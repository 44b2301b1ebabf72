// Push decisions (docs/rules.md P1-P2): the normal path for listed pushers, a ticket for
// everything else on a protected ref, and one rejected update rejects the push.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decidePush, type Candidate, type PushInput } from '../../src/engine/decide.ts';
import { actionsOf, updateKind, type RefUpdate } from '../../src/engine/update.ts';
import type { Pusher } from '../../src/engine/evaluate.ts';
import { verifyTicketEnvelope } from '../../src/ticket/verify.ts';
import type { TicketRequest } from '../../src/ticket/sign.ts';
import { approvedEnvelope, T0, testPolicy } from '../helpers/fixtures.ts';

const policy = testPolicy();
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const Z = '0'.repeat(40);
const alice: Pusher = { known: true, login: 'alice', principal: 'alice' };
const bot: Pusher = { known: true, login: 'merge-bot', principal: 'merge-bot' };

const ff = (ref = 'refs/heads/main', over: Partial<RefUpdate> = {}): RefUpdate => ({
  ref,
  oldSha: A,
  newSha: B,
  fastForward: true,
  touchesPolicy: false,
  ...over,
});

let nonce = 0;
function candidate(
  request: Partial<TicketRequest> = {},
  usesConsumed = 0,
  revoked = false,
): Candidate {
  // A distinct nonce and id per ticket, as real tickets have.
  const n = (nonce++).toString(16).padStart(6, '0');
  const env = approvedEnvelope({
    id: `20261129T031200Z-${n}`,
    nonce: `${n}AAAAAAAAAAAAAAAA==`,
    ...request,
  });
  const ticket = verifyTicketEnvelope(env, policy.keyOwners);
  return { id: ticket.payload.id, ticket, state: { revoked, usesConsumed } };
}

function decide(over: Partial<PushInput>) {
  return decidePush({
    policy,
    updates: [ff()],
    pusher: alice,
    candidates: [],
    now: T0 + 60_000,
    ...over,
  });
}

const codes = (d: ReturnType<typeof decide>, i = 0) =>
  d.updates[i]!.rejections.map((r) => [r.ticketId, r.failures.map((f) => `${f.rule} ${f.code}`)]);

test('updates are classified and their actions listed (DESIGN §3)', () => {
  assert.equal(updateKind({ oldSha: Z, newSha: B, fastForward: false }), 'create');
  assert.equal(updateKind({ oldSha: A, newSha: Z, fastForward: false }), 'delete');
  assert.equal(updateKind({ oldSha: A, newSha: B, fastForward: true }), 'fast-forward');
  assert.equal(updateKind({ oldSha: A, newSha: B, fastForward: false }), 'force');
  assert.deepEqual(actionsOf(ff()), ['push']);
  assert.deepEqual(actionsOf(ff('refs/heads/main', { fastForward: false })), ['force-push']);
  assert.deepEqual(actionsOf(ff('refs/heads/main', { oldSha: Z })), ['create']);
  assert.deepEqual(actionsOf(ff('refs/heads/main', { newSha: Z })), ['delete']);
  assert.deepEqual(actionsOf(ff('refs/heads/main', { touchesPolicy: true })), [
    'push',
    'change-policy',
  ]);
  assert.deepEqual(actionsOf(ff('refs/heads/main', { oldSha: Z, touchesPolicy: true })), [
    'create',
    'change-policy',
  ]);
  assert.deepEqual(actionsOf(ff('refs/heads/main', { newSha: Z, touchesPolicy: true })), [
    'delete',
  ]);
  assert.deepEqual(actionsOf(ff('refs/heads/main', { unreviewedMerge: true })), [
    'merge-unreviewed',
  ]);
  assert.deepEqual(actionsOf(ff('refs/heads/main', { fastForward: false, touchesPolicy: true })), [
    'force-push',
    'change-policy',
  ]);
});

test('unprotected refs pass whatever happens to them', () => {
  const d = decide({
    updates: [
      ff('refs/heads/feature', { fastForward: false }),
      ff('refs/heads/x', { newSha: Z }),
      ff('refs/tags/v1', { oldSha: Z }),
    ],
    pusher: { known: false },
  });
  assert.equal(d.accepted, true);
  assert.deepEqual(
    d.updates.map((u) => u.path),
    ['unprotected', 'unprotected', 'unprotected'],
  );
  assert.deepEqual(d.ticketsUsed, []);
});

test('P1: merge-bot fast-forwarding main or a release branch is the normal path', () => {
  const d = decide({ updates: [ff(), ff('refs/heads/release/2')], pusher: bot });
  assert.equal(d.accepted, true);
  assert.deepEqual(
    d.updates.map((u) => u.path),
    ['normal', 'normal'],
  );
  assert.deepEqual(d.ticketsUsed, []);
});

test('P1 does not cover: other pushers, unknown pushers, force, create, delete, policy changes, unreviewed merges', () => {
  for (const pusher of [
    alice,
    { known: false } as Pusher,
    { known: true, login: 'merge-bot-2', principal: undefined } as Pusher,
  ]) {
    const d = decide({ pusher });
    assert.equal(d.accepted, false);
    assert.deepEqual(codes(d), [[null, ['P2 TICKET_REQUIRED']]]);
  }
  for (const over of [
    { fastForward: false },
    { oldSha: Z },
    { newSha: Z },
    { touchesPolicy: true },
    { unreviewedMerge: true },
  ] as Partial<RefUpdate>[]) {
    const d = decide({ updates: [ff('refs/heads/main', over)], pusher: bot });
    assert.equal(d.accepted, false, JSON.stringify(over));
    assert.deepEqual(codes(d), [[null, ['P2 TICKET_REQUIRED']]]);
    assert.match(
      d.updates[0]!.rejections[0]!.failures[0]!.message,
      /refs\/heads\/main is protected: .* needs a break-glass ticket/,
    );
  }
});

test('P2: alice with an approved ticket pushes to main (break-glass path)', () => {
  const c = candidate();
  const d = decide({ candidates: [c] });
  assert.equal(d.accepted, true);
  assert.equal(d.updates[0]!.path, 'breakglass');
  assert.equal(d.updates[0]!.ticketId, c.id);
  assert.deepEqual(d.ticketsUsed, [c.id]);
});

test('P2: a protected ref needs a ticket covering every action of the update', () => {
  const pushOnly = candidate();
  const force = ff('refs/heads/main', { fastForward: false, touchesPolicy: true });
  const d = decide({ updates: [force], candidates: [pushOnly] });
  assert.equal(d.accepted, false);
  assert.deepEqual(codes(d), [[pushOnly.id, ['T7 SCOPE_ACTION']]]);
  assert.match(d.updates[0]!.rejections[0]!.failures[0]!.message, /force-push, change-policy/);
  const forceOnly = candidate({ actions: ['force-push'] });
  assert.deepEqual(codes(decide({ updates: [force], candidates: [forceOnly] })), [
    [forceOnly.id, ['T7 SCOPE_ACTION']],
  ]);
  const both = candidate({ actions: ['force-push', 'change-policy'] });
  assert.equal(decide({ updates: [force], candidates: [both] }).updates[0]!.path, 'breakglass');
});

test('creating a protected branch needs `create`', () => {
  const create = ff('refs/heads/release/9', { oldSha: Z });
  const pushTicket = candidate({ refs: ['release/*'] });
  assert.deepEqual(codes(decide({ updates: [create], candidates: [pushTicket] })), [
    [pushTicket.id, ['T7 SCOPE_ACTION']],
  ]);
  const createTicket = candidate({ refs: ['release/*'], actions: ['create'] });
  assert.equal(decide({ updates: [create], candidates: [createTicket] }).accepted, true);
});

test('touching .breakglass/ needs `change-policy`, even for merge-bot', () => {
  const touch = ff('refs/heads/main', { touchesPolicy: true });
  const pushTicket = candidate();
  assert.deepEqual(codes(decide({ updates: [touch], candidates: [pushTicket] })), [
    [pushTicket.id, ['T7 SCOPE_ACTION']],
  ]);
  const policyTicket = candidate({ actions: ['push', 'change-policy'] });
  assert.equal(decide({ updates: [touch], candidates: [policyTicket] }).accepted, true);
});

test('an unreviewed merge needs `merge-unreviewed`', () => {
  const merge = ff('refs/heads/main', { unreviewedMerge: true });
  const pushTicket = candidate();
  assert.deepEqual(codes(decide({ updates: [merge], candidates: [pushTicket] })), [
    [pushTicket.id, ['T7 SCOPE_ACTION']],
  ]);
  assert.equal(
    decide({ updates: [merge], candidates: [candidate({ actions: ['merge-unreviewed'] })] })
      .accepted,
    true,
  );
});

test('delete with pinned commits: `delete` in scope allows it (no new tip to pin), otherwise SCOPE_ACTION', () => {
  const del = ff('refs/heads/main', { newSha: Z });
  const pinnedDelete = candidate({ actions: ['delete'], commits: [C] });
  const d = decide({ updates: [del], candidates: [pinnedDelete] });
  assert.equal(d.accepted, true);
  assert.equal(d.updates[0]!.path, 'breakglass');
  const pinnedPush = candidate({ commits: [Z] }); // even pinning the zero id does not make it a delete ticket
  assert.deepEqual(codes(decide({ updates: [del], candidates: [pinnedPush] })), [
    [pinnedPush.id, ['T7 SCOPE_ACTION']],
  ]);
});

test('pinned commits: the pushed tip must be pinned', () => {
  const pinned = candidate({ commits: [C] });
  assert.deepEqual(codes(decide({ candidates: [pinned] })), [[pinned.id, ['T8 SCOPE_COMMIT']]]);
  assert.equal(
    decide({ updates: [ff('refs/heads/main', { newSha: C })], candidates: [pinned] }).accepted,
    true,
  );
});

test('one ticket covering several refs in one push counts as one use', () => {
  const c = candidate({ refs: ['main', 'release/*'] });
  const d = decide({
    updates: [ff(), ff('refs/heads/release/1'), ff('refs/heads/release/2')],
    candidates: [c],
  });
  assert.equal(d.accepted, true);
  assert.deepEqual(
    d.updates.map((u) => u.ticketId),
    [c.id, c.id, c.id],
  );
  assert.deepEqual(d.ticketsUsed, [c.id]);
});

test('the first ticket that passes is used; the ones tried before it are not', () => {
  const expiredForMain = candidate({ now: T0 - 30 * 60_000 });
  const good = candidate();
  const d = decide({ candidates: [expiredForMain, good] });
  assert.equal(d.accepted, true);
  assert.equal(d.updates[0]!.ticketId, good.id);
  assert.deepEqual(d.ticketsUsed, [good.id]);
});

test('one rejected update rejects the whole push, and uses no ticket', () => {
  const c = candidate(); // main only
  const d = decide({
    updates: [ff(), ff('refs/heads/release/1'), ff('refs/heads/feature')],
    candidates: [c],
  });
  assert.equal(d.accepted, false);
  assert.deepEqual(
    d.updates.map((u) => u.path),
    ['breakglass', 'rejected', 'unprotected'],
  );
  assert.deepEqual(codes(d, 1), [[c.id, ['T6 SCOPE_REF']]]);
  // Nothing is consumed by a push that does not happen.
  assert.deepEqual(d.ticketsUsed, []);
});

test('a candidate that could not be loaded is reported with its error', () => {
  const broken: Candidate = {
    id: '20261129T031200Z-deadbeef',
    error: {
      code: 'TICKET_REF_INVALID',
      rule: 'A',
      message: 'ticket 20261129T031200Z-deadbeef has no ticket.json in its tree',
    },
  };
  const d = decide({ candidates: [broken] });
  assert.equal(d.accepted, false);
  assert.deepEqual(codes(d), [[broken.id, ['A TICKET_REF_INVALID']]]);
  // Next to a good ticket it is just skipped.
  const good = candidate();
  assert.equal(decide({ candidates: [broken, good] }).updates[0]!.ticketId, good.id);
  // Unprotected refs do not look at candidates at all.
  assert.equal(
    decide({ updates: [ff('refs/heads/feature')], candidates: [broken] }).accepted,
    true,
  );
});

test('used-up and revoked tickets are rejected with their rules', () => {
  const used = candidate({}, 1);
  const revoked = candidate({}, 0, true);
  const d = decide({ candidates: [used, revoked] });
  assert.equal(d.accepted, false);
  assert.deepEqual(codes(d), [
    [used.id, ['T13 TICKET_USED_UP']],
    [revoked.id, ['T12 TICKET_REVOKED']],
  ]);
});

test('a ticket copied to another ref id is refused: its uses and revocation follow its own id', () => {
  const used = candidate({}, 1);
  const copy: Candidate = {
    ...used,
    id: '20261129T031300Z-c0ffee',
    state: { revoked: false, usesConsumed: 0 },
  };
  const d = decide({ candidates: [copy] });
  assert.equal(d.accepted, false);
  assert.deepEqual(codes(d), [[copy.id, ['T13 TICKET_REF_INVALID']]]);
  assert.deepEqual(d.ticketsUsed, []);
});

test('the pusher must hold the ticket (T14) on the break-glass path', () => {
  const c = candidate();
  const bob: Pusher = { known: true, login: 'bob', principal: 'bob' };
  assert.deepEqual(codes(decide({ pusher: bob, candidates: [c] })), [
    [c.id, ['T14 HOLDER_MISMATCH']],
  ]);
  // Where the pusher is unknown (no identity from the platform) the holder is not checked.
  assert.equal(decide({ pusher: { known: false }, candidates: [c] }).accepted, true);
});

test('a ref name git accepts but the policy cannot match is rejected, never unprotected', () => {
  // git check-ref-format accepts names over 255 characters; ours do not match any pattern, so
  // without this rule `release/*` would not protect refs/heads/release/<240 characters>.
  const long = 'refs/heads/release/' + 'a'.repeat(240);
  const d = decide({ updates: [ff(long, { oldSha: Z })] });
  assert.equal(d.accepted, false);
  assert.equal(d.updates[0]!.path, 'rejected');
  assert.deepEqual(codes(d), [[null, ['P2 REF_INVALID']]]);
  // Not even a ticket for release/* helps: no pattern can vouch for the name.
  const c = candidate({ refs: ['release/**'], actions: ['create'] });
  assert.equal(decide({ updates: [ff(long, { oldSha: Z })], candidates: [c] }).accepted, false);
});
