// Through the real hooks: a ticketed push is recorded by post-receive, the notification command
// gets it, `bg-sign audit` on the server lists it, and the namespace guard refuses reviews by the
// requester or by a key without the reviewer role while accepting carol's.
import assert from 'node:assert/strict';
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { encodeReview, REVIEW_PAYLOAD_TYPE, type ReviewPayload } from '../../src/audit/review.ts';
import { writeEnvelope } from '../../src/git/store.ts';
import type { SigningKey } from '../../src/ticket/keys.ts';
import { createEnvelope } from '../../src/ticket/sign.ts';
import { formatTime } from '../../src/ticket/time.ts';
import { payloadDigest } from '../../src/ticket/verify.ts';
import { encodePayload } from '../../src/ticket/payload.ts';
import { ensureBundle } from '../cli/harness.ts';
import { keys } from '../helpers/fixtures.ts';
import { BUNDLE, run, TestServer, type DevClone } from '../helpers/server.ts';

let server: TestServer;
let alice: DevClone;
let bob: DevClone;
let carol: DevClone;
let id: string;
let tip: string;

before(async () => {
  ensureBundle();
  server = await TestServer.create({ pin: false });
  [alice, bob, carol] = await Promise.all([
    server.clone('alice'),
    server.clone('bob'),
    server.clone('carol'),
  ]);
  await server.git(['config', 'breakglass.notify', 'cat > notified.json']);
  tip = await alice.commit('hotfix.txt', 'fix\n', 'hotfix');
  id = await alice.makeTicket({ commits: [tip] });
  const pushed = await alice.pushTickets([id]);
  assert.equal(pushed.code, 0, pushed.stderr);
  const r = await alice.push(['HEAD:main'], { tickets: [id] });
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await server?.close();
});

test('post-receive records the push and runs the notification command with it', async () => {
  const doc = JSON.parse(await readFile(join(server.gitDir, 'notified.json'), 'utf8'));
  assert.equal(doc.type, 'git-breakglass/events');
  assert.equal(doc.events.length, 1);
  const e = doc.events[0];
  assert.equal(e.ticketId, id);
  assert.equal(e.ref, 'refs/heads/main');
  assert.equal(e.newSha, tip);
  assert.equal(e.pusher, 'alice');
  assert.equal(e.requester.principal, 'alice');
  assert.deepEqual(
    e.approvers.map((a: { principal: string }) => a.principal),
    ['bob'],
  );
  const log = await readFile(join(server.gitDir, 'breakglass', 'notify.log'), 'utf8');
  assert.match(log, new RegExp(`status="ok" exit=0 .*tickets="${id}"`));
});

test('bg-sign audit on the server lists the event the hook recorded', async () => {
  const r = await run(process.execPath, [BUNDLE, 'audit', server.gitDir, '--json'], {
    cwd: server.root,
    env: alice.env,
  });
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.rows.length, 1);
  const row = report.rows[0];
  assert.equal(row.ticket, id);
  assert.equal(row.update.new, tip);
  assert.deepEqual(row.commits.ids, [tip]);
  assert.deepEqual(row.evidence, { note: true, useRecord: true, ticket: true });
  assert.equal(row.review.status, 'unreviewed');
});

/** A review envelope signed by `key`, stored on reviews/<id> in `dev`'s clone, then pushed. */
async function pushForgedReview(dev: DevClone, reviewer: string, key: SigningKey) {
  await dev.git(['fetch', '-q', dev.url, '+refs/breakglass/*:refs/breakglass/*'], { check: true });
  const ticket = alice.tickets.get(id)!;
  const payload: ReviewPayload = {
    type: 'git-breakglass/review',
    version: 1,
    ticket: id,
    ticketDigest: payloadDigest(encodePayload(ticket)),
    reviewer,
    outcome: 'justified',
    note: 'looks fine to me',
    reviewedAt: formatTime(Date.now()),
  };
  const env = createEnvelope(REVIEW_PAYLOAD_TYPE, encodeReview(payload), key);
  await writeEnvelope({ cwd: dev.dir, env: dev.env }, 'reviews', id, env, `review ${id}`, {
    name: dev.user,
    email: `${dev.user}@example.test`,
  });
  return dev.git(['push', dev.url, `refs/breakglass/reviews/${id}`]);
}

test('the hook refuses a review signed by the requester (R5)', async () => {
  const r = await pushForgedReview(alice, 'alice', keys.alice);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /REVIEW_INVALID/);
  assert.equal(await server.ref(`refs/breakglass/reviews/${id}`), null);
});

test('the hook refuses a review signed by a key without the reviewer role (R4)', async () => {
  const r = await pushForgedReview(bob, 'dave', keys.dave);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /REVIEW_INVALID/);
  assert.equal(await server.ref(`refs/breakglass/reviews/${id}`), null);
});

test("carol's review is accepted by the hook and closes the review duty", async () => {
  const r = await carol.bg([
    'review',
    id,
    '--outcome',
    'justified',
    '--note',
    'INC-4711 confirmed',
    '--push',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.notEqual(await server.ref(`refs/breakglass/reviews/${id}`), null);
  const audit = await run(
    process.execPath,
    [BUNDLE, 'audit', server.gitDir, '--unreviewed', '--older-than', '0m', '--json'],
    { cwd: server.root, env: alice.env },
  );
  assert.equal(audit.code, 0, audit.stderr);
  assert.deepEqual(JSON.parse(audit.stdout).rows, []);
});

test('audit flush records what a missing post-receive left in the journal', async () => {
  const hook = join(server.gitDir, 'hooks', 'post-receive');
  await rename(hook, `${hook}.off`);
  let next: string;
  let id2: string;
  try {
    next = await alice.commit('hotfix2.txt', 'fix 2\n', 'hotfix 2');
    id2 = await alice.makeTicket({ commits: [next] });
    assert.equal((await alice.pushTickets([id2])).code, 0);
    const r = await alice.push(['HEAD:main'], { tickets: [id2] });
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await rename(`${hook}.off`, hook);
  }
  assert.equal(await server.note(next), null, 'nothing recorded yet');
  const flushed = await run(process.execPath, [BUNDLE, 'audit', 'flush', server.gitDir, '--json'], {
    cwd: server.root,
    env: alice.env,
  });
  assert.equal(flushed.code, 0, flushed.stderr);
  const out = JSON.parse(flushed.stdout);
  assert.equal(out.recorded.length, 1);
  assert.equal(out.recorded[0].ticket, id2);
  assert.equal(out.recorded[0].newSha, next);
  assert.match((await server.note(next)) ?? '', new RegExp(`Break-glass-Ticket: ${id2}`));
  const text = await run(process.execPath, [BUNDLE, 'audit', 'flush', server.gitDir], {
    cwd: server.root,
    env: alice.env,
  });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /0 event\(s\) recorded/, 'a second flush finds nothing left');
});
