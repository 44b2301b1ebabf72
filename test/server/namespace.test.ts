import { test } from 'node:test';
import assert from 'node:assert/strict';
import { approvedEnvelope, keys, policyYaml, ticketRequest, T0 } from '../helpers/fixtures.ts';
import { addSignature, createTicketEnvelope, formatTicketId } from '../../src/ticket/sign.ts';
import { createRevocation } from '../../src/ticket/revocation.ts';
import { verifyTicketEnvelope } from '../../src/ticket/verify.ts';
import { parsePolicy } from '../../src/policy/policy.ts';
import { Fixture, ZERO } from './fixture.ts';

const ID = formatTicketId(T0, '7f3a9c');
const REF = `refs/breakglass/tickets/${ID}`;

async function withFixture(fn: (f: Fixture) => Promise<void>, policy?: string): Promise<void> {
  const f = new Fixture(policy ? { policy } : {});
  try {
    await fn(f);
  } finally {
    f.cleanup();
  }
}

/** A ticket requested by alice, created in the clone and already on the server. */
async function storedRequest(f: Fixture): Promise<string> {
  const sha = await f.workEnvelope(
    'tickets',
    ID,
    createTicketEnvelope(ticketRequest(), keys.alice),
  );
  f.land(sha, REF);
  return sha;
}

test('a new ticket signed by its requester may be pushed', () =>
  withFixture(async (f) => {
    const sha = await f.workEnvelope(
      'tickets',
      ID,
      createTicketEnvelope(ticketRequest(), keys.alice),
    );
    const r = await f.pre([[ZERO, sha, REF]]);
    assert.equal(r.code, 0, r.text);
  }));

test('an approval (one verified signature added, fast-forward) may be pushed', () =>
  withFixture(async (f) => {
    const old = await storedRequest(f);
    const approved = addSignature(createTicketEnvelope(ticketRequest(), keys.alice), keys.bob);
    const sha = await f.workEnvelope('tickets', ID, approved);
    const r = await f.pre([[old, sha, REF]]);
    assert.equal(r.code, 0, r.text);
  }));

test('a new ticket not signed by its requester is refused', () =>
  withFixture(async (f) => {
    const sha = await f.workEnvelope(
      'tickets',
      ID,
      createTicketEnvelope(ticketRequest(), keys.bob),
    );
    const r = await f.pre([[ZERO, sha, REF]]);
    assert.equal(r.code, 1);
    assert.match(r.err, /REQUESTER_SIGNATURE_MISSING \(N5\)/);
  }));

test('a ticket stored under another id is refused (TICKET_REF_INVALID)', () =>
  withFixture(async (f) => {
    const other = formatTicketId(T0, 'abcdef');
    const sha = await f.workEnvelope('tickets', other, approvedEnvelope());
    const r = await f.pre([[ZERO, sha, `refs/breakglass/tickets/${other}`]]);
    assert.equal(r.code, 1);
    assert.match(r.err, /TICKET_REF_INVALID \(N5\)/);
  }));

test('an added signature that verifies under no policy key is refused (SIGNATURE_INVALID)', () =>
  withFixture(async (f) => {
    const old = await storedRequest(f);
    const forged = addSignature(createTicketEnvelope(ticketRequest(), keys.alice), keys.mallory);
    const sha = await f.workEnvelope('tickets', ID, forged);
    const r = await f.pre([[old, sha, REF]]);
    assert.equal(r.code, 1);
    assert.match(r.err, /SIGNATURE_INVALID \(N6\)/);
  }));

test('a ticket whose payload changes is refused, also as a fast-forward', () =>
  withFixture(async (f) => {
    const old = await storedRequest(f);
    const changed = addSignature(
      createTicketEnvelope(ticketRequest({ actions: ['push', 'force-push'] }), keys.alice),
      keys.bob,
    );
    const sha = await f.workEnvelope('tickets', ID, changed);
    const r = await f.pre([[old, sha, REF]]);
    assert.equal(r.code, 1);
    assert.match(r.err, /NAMESPACE_VIOLATION \(N6\): ticket .*the signed payload changed/);
  }));

test('a rewritten ticket (not a fast-forward) and a removed signature are refused', () =>
  withFixture(async (f) => {
    const approved = approvedEnvelope();
    const first = await f.workEnvelope('tickets', ID, approved);
    f.land(first, REF);
    // A new root commit holding only the requester's signature.
    f.git(f.work, 'update-ref', '-d', REF);
    const stripped = await f.workEnvelope(
      'tickets',
      ID,
      createTicketEnvelope(ticketRequest(), keys.alice),
    );
    const r = await f.pre([[first, stripped, REF]]);
    assert.equal(r.code, 1);
    assert.match(r.err, /NAMESPACE_VIOLATION \(N6\): .*can only be fast-forwarded/);
    f.git(f.work, 'update-ref', REF, first);
    const removed = await f.workEnvelope(
      'tickets',
      ID,
      createTicketEnvelope(ticketRequest(), keys.alice),
    );
    const r2 = await f.pre([[first, removed, REF]]);
    assert.equal(r2.code, 1);
    assert.match(r2.err, /signature\(s\) removed/);
  }));

test('break-glass refs are never deleted', () =>
  withFixture(async (f) => {
    const old = await storedRequest(f);
    const r = await f.pre([[old, ZERO, REF]]);
    assert.equal(r.code, 1);
    assert.match(r.err, /NAMESPACE_VIOLATION \(N1\)/);
  }));

test('a blob or a tag where a ticket commit belongs is refused (TICKET_REF_INVALID)', () =>
  withFixture(async (f) => {
    f.write('ticket.json', '{}');
    const blob = f.git(f.work, 'hash-object', '-w', 'ticket.json');
    const r = await f.pre([[ZERO, blob, REF]]);
    assert.equal(r.code, 1);
    assert.match(r.err, /TICKET_REF_INVALID \(N4\): ticket .* points to a blob/);
    const commit = await f.workEnvelope('tickets', ID, approvedEnvelope());
    f.git(f.work, 'tag', '-a', '-m', 'wrapped', 'wrapped', commit);
    const tag = f.git(f.work, 'rev-parse', 'wrapped');
    const t = await f.pre([[ZERO, tag, REF]]);
    assert.equal(t.code, 1);
    assert.match(t.err, /TICKET_REF_INVALID \(N4\): ticket .* points to a tag/);
  }));

test('unknown break-glass paths are refused (N2)', () =>
  withFixture(async (f) => {
    const sha = f.commit();
    for (const ref of ['refs/breakglass/other/x', `refs/breakglass/tickets/not-an-id`]) {
      const r = await f.pre([[ZERO, sha, ref]]);
      assert.equal(r.code, 1, ref);
      assert.match(r.err, /NAMESPACE_VIOLATION \(N2\)/);
    }
  }));

test('clients may not write notes or consumed records; a configured recorder may', () =>
  withFixture(
    async (f) => {
      const sha = f.commit();
      for (const ref of ['refs/notes/breakglass', `refs/breakglass/consumed/${ID}`]) {
        const r = await f.pre([[ZERO, sha, ref]]);
        assert.equal(r.code, 1, ref);
        assert.match(r.err, /NAMESPACE_VIOLATION \(N3\)/);
        const bot = await f.pre([[ZERO, sha, ref]], { env: { GL_USERNAME: 'merge-bot' } });
        assert.equal(bot.code, 0, bot.text);
      }
    },
    policyYaml({ extra: 'recorders: [merge-bot]\n' }),
  ));

test('revocations: created once, and only when they verify', () =>
  withFixture(async (f) => {
    const env = approvedEnvelope();
    const ticketSha = await f.workEnvelope('tickets', ID, env);
    f.land(ticketSha, REF);
    const policy = parsePolicy(policyYaml());
    const ticket = verifyTicketEnvelope(env, policy.keyOwners);
    const byMallory = createRevocation(ticket, 'mallory', 'nope', T0, keys.mallory);
    const bad = await f.workEnvelope('revoked', ID, byMallory);
    const r = await f.pre([[ZERO, bad, `refs/breakglass/revoked/${ID}`]]);
    assert.equal(r.code, 1);
    assert.match(r.err, /N7/);
    f.git(f.work, 'update-ref', '-d', `refs/breakglass/revoked/${ID}`);
    const good = await f.workEnvelope(
      'revoked',
      ID,
      createRevocation(ticket, 'alice', 'done', T0, keys.alice),
    );
    assert.equal((await f.pre([[ZERO, good, `refs/breakglass/revoked/${ID}`]])).code, 0);
    f.land(good, `refs/breakglass/revoked/${ID}`);
    const again = await f.workEnvelope(
      'revoked',
      ID,
      createRevocation(ticket, 'bob', 'again', T0, keys.bob),
    );
    const r2 = await f.pre([[good, again, `refs/breakglass/revoked/${ID}`]]);
    assert.equal(r2.code, 1);
    assert.match(r2.err, /NAMESPACE_VIOLATION \(N7\): .* a revocation is created once/);
  }));

test('one bad break-glass ref rejects the whole push', () =>
  withFixture(async (f) => {
    const old = await storedRequest(f);
    const sha = f.commit();
    const r = await f.pre([
      [ZERO, sha, 'refs/heads/feature'],
      [old, ZERO, REF],
    ]);
    assert.equal(r.code, 1);
  }));
