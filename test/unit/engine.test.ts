import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyTicketEnvelope } from '../../src/ticket/verify.ts';
import { evaluateTicket } from '../../src/engine/evaluate.ts';
import { decidePush } from '../../src/engine/decide.ts';
import { approvedEnvelope, keys, testPolicy, T0 } from '../helpers/fixtures.ts';

const alicePusher = { known: true as const, login: 'alice', principal: 'alice' };

test('an approved ticket authorises alice to push to main', () => {
  const policy = testPolicy();
  const t = verifyTicketEnvelope(approvedEnvelope(), policy.keyOwners);
  const f = evaluateTicket(
    t,
    policy,
    { ref: 'refs/heads/main', actions: ['push'], pusher: alicePusher },
    { revoked: false, usesConsumed: 0 },
    T0 + 60_000,
  );
  assert.deepEqual(f, []);
});

test('decidePush: direct push without a ticket is rejected with TICKET_REQUIRED', () => {
  const policy = testPolicy();
  const d = decidePush({
    policy,
    updates: [
      {
        ref: 'refs/heads/main',
        oldSha: 'a'.repeat(40),
        newSha: 'b'.repeat(40),
        fastForward: true,
        touchesPolicy: false,
      },
    ],
    pusher: alicePusher,
    candidates: [],
    now: T0,
  });
  assert.equal(d.accepted, false);
  assert.equal(d.updates[0]!.rejections[0]!.failures[0]!.code, 'TICKET_REQUIRED');
});

test('decidePush: merge-bot fast-forward is the normal path; its force push is not', () => {
  const policy = testPolicy();
  const bot = { known: true as const, login: 'merge-bot', principal: 'merge-bot' };
  const base = {
    ref: 'refs/heads/main',
    oldSha: 'a'.repeat(40),
    newSha: 'b'.repeat(40),
    touchesPolicy: false,
  };
  assert.equal(
    decidePush({
      policy,
      updates: [{ ...base, fastForward: true }],
      pusher: bot,
      candidates: [],
      now: T0,
    }).updates[0]!.path,
    'normal',
  );
  assert.equal(
    decidePush({
      policy,
      updates: [{ ...base, fastForward: false }],
      pusher: bot,
      candidates: [],
      now: T0,
    }).accepted,
    false,
  );
  assert.equal(
    decidePush({
      policy,
      updates: [{ ...base, fastForward: true, touchesPolicy: true }],
      pusher: bot,
      candidates: [],
      now: T0,
    }).accepted,
    false,
  );
});

test('decidePush: unprotected refs pass; a ticket covers main', () => {
  const policy = testPolicy();
  const t = verifyTicketEnvelope(approvedEnvelope(), policy.keyOwners);
  const d = decidePush({
    policy,
    updates: [
      {
        ref: 'refs/heads/feature',
        oldSha: '0'.repeat(40),
        newSha: 'c'.repeat(40),
        fastForward: false,
        touchesPolicy: false,
      },
      {
        ref: 'refs/heads/main',
        oldSha: 'a'.repeat(40),
        newSha: 'b'.repeat(40),
        fastForward: true,
        touchesPolicy: false,
      },
    ],
    pusher: alicePusher,
    candidates: [{ id: t.payload.id, ticket: t, state: { revoked: false, usesConsumed: 0 } }],
    now: T0 + 1000,
  });
  assert.equal(d.accepted, true);
  assert.deepEqual(
    d.updates.map((u) => u.path),
    ['unprotected', 'breakglass'],
  );
  assert.deepEqual(d.ticketsUsed, [t.payload.id]);
  void keys;
});
