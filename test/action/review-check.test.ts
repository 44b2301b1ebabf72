// The scheduled review duty (issue 5 item 3): the Action on schedule / workflow_dispatch fails
// while any break-glass event has waited longer than review-older-than for a signed review, the
// same check as `bg-sign audit --unreviewed --older-than`. Events are written into origin by the
// real evidence writer with past times; reviews are signed and stored as the CLI does.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '../../src/audit/note.ts';
import {
  createReview,
  encodeReview,
  REVIEW_PAYLOAD_TYPE,
  type ReviewOutcome,
} from '../../src/audit/review.ts';
import { recordEvents } from '../../src/git/record.ts';
import { readEnvelope, writeEnvelope } from '../../src/git/store.ts';
import { createEnvelope } from '../../src/ticket/sign.ts';
import { formatTime } from '../../src/ticket/time.ts';
import { verifyTicketEnvelope, type VerifiedTicket } from '../../src/ticket/verify.ts';
import { keys, testPolicy } from '../helpers/fixtures.ts';
import { asAcme, fixture, webhookExample, World, type Payload } from './harness.ts';

const HOUR = 3_600_000;
const policy = testPolicy();
let w: World;
let t1: string; // used 48 h ago: overdue at 24h
let t2: string; // used 1 h ago: overdue only at 0m
let base: string;

const SCHEDULE = { schedule: '17 7 * * 1-5' };

function dispatch(): Payload {
  const p = asAcme(webhookExample('workflow_dispatch', () => true));
  p.ref = 'refs/heads/main';
  return p;
}

function ev(over: Partial<AuditEvent>): AuditEvent {
  return {
    kind: 'breakglass',
    actions: ['push'],
    ref: 'refs/heads/main',
    oldSha: base,
    newSha: base,
    pusher: 'alice',
    approvers: [{ principal: 'bob', keyid: keys.bob.publicKey.keyid }],
    requester: { principal: 'alice', keyid: keys.alice.publicKey.keyid },
    recordedAt: formatTime(Date.now()),
    recordedBy: 'pre-receive@git.example.com',
    ...over,
  };
}

async function ticketOf(id: string): Promise<VerifiedTicket> {
  return verifyTicketEnvelope(await readEnvelope(w.originCtx, 'tickets', id), policy.keyOwners);
}

/** Stores a review on origin under refs/breakglass/reviews/<id>, as `bg-sign review --push` does. */
async function storeReview(id: string, env: ReturnType<typeof createReview>): Promise<void> {
  await writeEnvelope(w.originCtx, 'reviews', id, env, `review ${id}`, {
    name: 'carol',
    email: 'carol@example.com',
  });
}

function rowsOf(events: string | undefined): { ticket: string; kind: string; review: Payload }[] {
  return JSON.parse(events ?? 'null');
}

before(async () => {
  w = await World.create();
  base = await w.tip();
  const now = Date.now();
  t1 = await w.ticket({ now: now - 49 * HOUR, reason: 'INC-4711 payment outage hotfix' });
  t2 = await w.ticket({ now: now - 2 * HOUR, reason: 'INC-4712 cache stampede' });
  await recordEvents(w.origin, [
    {
      event: ev({
        ticketId: t1,
        reason: 'INC-4711 payment outage hotfix',
        recordedAt: formatTime(now - 48 * HOUR),
      }),
      commits: [base],
    },
    {
      event: ev({
        ticketId: t2,
        pusher: 'dave',
        requester: { principal: 'dave', keyid: keys.dave.publicKey.keyid },
        reason: 'INC-4712 cache stampede',
        recordedAt: formatTime(now - HOUR),
      }),
      commits: [base],
    },
    {
      // A bypass the detector flagged 30 h ago: no ticket, so nothing to review here.
      event: ev({
        kind: 'violation',
        actions: ['push'],
        pusher: 'mallory',
        requester: undefined,
        approvers: [],
        violation: 'refs/heads/main pushed directly by mallory',
        recordedAt: formatTime(now - 30 * HOUR),
        recordedBy: 'action@github',
      }),
      commits: [base],
    },
  ]);
});
after(() => w.dispose());

describe('review-check (schedule / workflow_dispatch)', () => {
  it('fails on an event unreviewed for longer than 24h: summary table, warnings, outputs, one issue', async () => {
    w.github.on('POST /repos/acme/api/issues', {
      status: 201,
      json: fixture('issue-created.json'),
    });
    const r = await w.run('schedule', SCHEDULE, { inputs: { 'open-issue': 'true' } });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'overdue');
    assert.equal(r.outputs.ticket, t1);
    const rows = rowsOf(r.outputs.events);
    assert.deepEqual(
      rows.map((x) => x.ticket),
      [t1],
    );
    assert.equal(rows[0]!.review.status, 'unreviewed');
    assert.ok(rows[0]!.review.waitingMs > 47 * HOUR);
    assert.match(
      r.summary,
      /### git-breakglass: 1 break-glass event\(s\) awaiting review longer than 24h/,
    );
    assert.match(
      r.summary,
      /\| time \| ref \| ticket \| pusher \| requester \| reason \| waiting \|/,
    );
    assert.match(
      r.summary,
      new RegExp(
        `\\| \\S+Z \\| refs/heads/main \\| ${t1} \\| alice \\| alice \\| INC-4711 payment outage hotfix \\| 2d \\|`,
      ),
    );
    assert.doesNotMatch(r.summary, new RegExp(t2));
    assert.doesNotMatch(r.summary, /mallory/, 'a violation is not awaiting review');
    assert.match(
      r.stdout,
      new RegExp(
        `::warning title=Break-glass review overdue::break-glass event on refs/heads/main at \\S+ \\(ticket ${t1}, pushed by alice\\) has waited 2d for a post-incident review \\(no review\\); run bg-sign review ${t1}`,
      ),
    );
    assert.match(r.stdout, /::error title=Break-glass review overdue::1 break-glass event\(s\)/);
    const issues = w.github.requests.filter((q) => q.url === '/repos/acme/api/issues');
    assert.equal(issues.length, 1);
    const issue = JSON.parse(issues[0]!.body) as { title: string; body: string };
    assert.equal(issue.title, 'Break-glass: 1 event(s) awaiting review longer than 24h');
    assert.match(issue.body, new RegExp(`- \`${t1}\` on \`refs/heads/main\``));
    assert.doesNotMatch(issue.body, new RegExp(t2));
  });

  it('0m lists every unreviewed use (not the violation)', async () => {
    const r = await w.run('schedule', SCHEDULE, { inputs: { 'review-older-than': '0m' } });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.deepEqual(
      rowsOf(r.outputs.events).map((x) => x.ticket),
      [t1, t2],
    );
    assert.equal(r.outputs.ticket, `${t1},${t2}`);
    assert.match(
      r.summary,
      new RegExp(`\\| ${t2} \\| dave \\| dave \\| INC-4712 cache stampede \\| 1h`),
    );
    assert.doesNotMatch(r.summary, /mallory/);
  });

  it('a review by someone without the reviewer role does not count (invalid review)', async () => {
    const ticket = await ticketOf(t1);
    const payload = {
      type: 'git-breakglass/review' as const,
      version: 1 as const,
      ticket: t1,
      ticketDigest: ticket.payloadDigest,
      reviewer: 'dave',
      outcome: 'justified' as ReviewOutcome,
      note: 'looks fine to me',
      reviewedAt: formatTime(Date.now()),
    };
    await storeReview(t1, createEnvelope(REVIEW_PAYLOAD_TYPE, encodeReview(payload), keys.dave));
    const r = await w.run('schedule', SCHEDULE);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const rows = rowsOf(r.outputs.events);
    assert.deepEqual(
      rows.map((x) => [x.ticket, x.review.status]),
      [[t1, 'invalid']],
    );
    assert.match(r.summary, /\| 2d \(invalid review\) \|/);
    assert.match(r.stdout, /\(invalid review: .*reviewer role/);
  });

  it('passes once carol signs a review (workflow_dispatch), and 0m then lists only the rest', async () => {
    const env = createReview(
      policy,
      await ticketOf(t1),
      'carol',
      'justified',
      'outage confirmed; fix reviewed in PR 812',
      Date.now(),
      keys.carol,
    );
    await storeReview(t1, env);
    const r = await w.run('workflow_dispatch', dispatch());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'normal');
    assert.equal(r.outputs.events, '[]');
    assert.equal(r.outputs.ticket, '');
    assert.match(r.summary, /no break-glass event awaits review longer than 24h/);
    assert.doesNotMatch(r.stdout, /::warning|::error/);

    const rest = await w.run('schedule', SCHEDULE, { inputs: { 'review-older-than': '0m' } });
    assert.equal(rest.code, 1, rest.stdout);
    assert.deepEqual(
      rowsOf(rest.outputs.events).map((x) => x.ticket),
      [t2],
    );
  });

  it('fails closed on a review-older-than that is not a duration', async () => {
    const r = await w.run('schedule', SCHEDULE, { inputs: { 'review-older-than': 'soon' } });
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /input review-older-than: "soon" is not a duration.*\[DURATION_INVALID\]/,
    );
  });
});
