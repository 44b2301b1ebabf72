// DESIGN §1 step 6: the morning after. Real repositories, tickets made with the real CLI, events
// recorded by the real evidence writer (recordEvents), then audit / review / log as a reviewer
// and an auditor would run them.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { AuditEvent } from '../../src/audit/note.ts';
import { CSV_COLUMNS } from '../../src/audit/report.ts';
import { recordEvents } from '../../src/git/record.ts';
import { formatTime } from '../../src/ticket/time.ts';
import { errorCode, hasStack, Sandbox } from '../cli/harness.ts';
import { keys } from '../helpers/fixtures.ts';
import { parseCsv } from './csv.ts';

let sb: Sandbox;
let r: Record<string, string>;
let t1: string; // alice's ticket on main, used 2 days ago (overdue for review)
let t2: string; // dave's ticket on release/1.0, used 1 hour ago
let main3: string[]; // the three commits t1's push brought in
let rel: string;
let base: string;
const NOW = Date.now();
const REASON = 'INC-4711 "payments", down\nsecond line';

function ev(over: Partial<AuditEvent>): AuditEvent {
  return {
    kind: 'breakglass',
    actions: ['push'],
    ref: 'refs/heads/main',
    oldSha: base,
    newSha: base,
    pusher: 'alice',
    approvers: [],
    recordedAt: formatTime(NOW),
    recordedBy: 'pre-receive@git.example.com',
    ...over,
  };
}

async function ticket(who: string, approver: string, args: string[]): Promise<string> {
  const req = await sb.as(who, r[who]!, ['request', '--ttl', '15m', '--push', ...args]);
  assert.equal(req.code, 0, req.stderr);
  const id = req.stdout.trim();
  const appr = await sb.as(approver, r[approver]!, ['approve', id, '--push']);
  assert.equal(appr.code, 0, appr.stderr);
  return id;
}

async function auditJson(extra: string[] = []) {
  const res = await sb.run(sb.dir, ['audit', r.origin!, '--format', 'json', ...extra]);
  assert.equal(res.code, 0, res.stderr);
  return JSON.parse(res.stdout);
}

before(async () => {
  sb = await Sandbox.create();
  r = await sb.repos(['alice', 'bob', 'carol', 'dave']);
  base = sb.git(r.origin!, ['rev-parse', 'main']);
  // Three commits on main and one on release/1.0, pushed as if by the hook's let-through.
  const work = r.alice!;
  main3 = [sb.commit(work, 'fix 1'), sb.commit(work, 'fix 2'), sb.commit(work, 'fix 3')];
  sb.git(work, ['push', '-q', 'origin', 'main']);
  sb.git(work, ['checkout', '-q', '-b', 'release/1.0']);
  rel = sb.commit(work, 'release fix');
  sb.git(work, ['push', '-q', 'origin', 'release/1.0']);
  t1 = await ticket('alice', 'bob', [
    '--ref',
    'main',
    '--action',
    'push',
    '--reason',
    'INC-4711 payment outage hotfix',
    '--incident',
    'INC-4711',
  ]);
  t2 = await ticket('dave', 'carol', [
    '--ref',
    'release/*',
    '--action',
    'force-push',
    '--reason',
    'bad release tag',
  ]);
  const approvers = (name: 'bob' | 'carol') => [
    { principal: name, keyid: keys[name].publicKey.keyid },
  ];
  await recordEvents(r.origin!, [
    {
      event: ev({
        ticketId: t1,
        newSha: main3[2]!,
        requester: { principal: 'alice', keyid: keys.alice.publicKey.keyid },
        approvers: approvers('bob'),
        reason: REASON,
        incident: 'INC-4711',
        window: {
          notBefore: formatTime(NOW - 49 * 3_600_000),
          expiresAt: formatTime(NOW - 47 * 3_600_000),
        },
        recordedAt: formatTime(NOW - 48 * 3_600_000),
      }),
      commits: main3,
    },
    {
      event: ev({
        ticketId: t2,
        ref: 'refs/heads/release/1.0',
        actions: ['force-push'],
        oldSha: main3[2]!,
        newSha: rel,
        pusher: 'dave',
        requester: { principal: 'dave', keyid: keys.dave.publicKey.keyid },
        approvers: approvers('carol'),
        reason: '=HYPERLINK("http://evil.example")',
        replacedTip: main3[2]!,
        recordedAt: formatTime(NOW - 3_600_000),
      }),
      commits: [rel],
    },
    {
      event: ev({
        kind: 'violation',
        violation: 'push to main without a ticket or review',
        pusher: 'mallory',
        newSha: main3[0]!,
        recordedAt: formatTime(NOW - 30 * 60_000),
        recordedBy: 'action@github',
      }),
      commits: [main3[0]!],
    },
  ]);
});

after(async () => {
  await sb?.cleanup();
});

test('audit --format json: one row per event, every field as recorded', async () => {
  const report = await auditJson();
  assert.equal(report.schemaVersion, 1);
  assert.equal(report.repository, 'acme/api');
  assert.match(report.policySource, /policy\.yml/);
  assert.equal(report.rows.length, 3, 'three events, though t1 annotated three commits');
  assert.deepEqual(report.problems, []);
  const [a, b, v] = report.rows;
  // Sorted by time: t1 (2 days ago), t2 (1 hour ago), the violation (30 minutes ago).
  assert.equal(a.ticket, t1);
  assert.equal(a.kind, 'breakglass');
  assert.equal(a.ref, 'refs/heads/main');
  assert.deepEqual(a.actions, ['push']);
  assert.deepEqual(a.update, { old: base, new: main3[2] });
  assert.equal(a.commits.count, 3);
  assert.equal(a.commits.ids[0], main3[2], 'the new tip is listed first');
  assert.deepEqual([...a.commits.ids].sort(), [...main3].sort());
  assert.equal(a.pusher, 'alice');
  assert.deepEqual(a.requester, { principal: 'alice', keyid: keys.alice.publicKey.keyid });
  assert.deepEqual(a.approvers, [{ principal: 'bob', keyid: keys.bob.publicKey.keyid }]);
  assert.equal(a.reason, REASON);
  assert.equal(a.incident, 'INC-4711');
  assert.equal(a.window.expiresAt, formatTime(NOW - 47 * 3_600_000));
  assert.equal(a.time, formatTime(NOW - 48 * 3_600_000));
  assert.equal(a.recordedBy, 'pre-receive@git.example.com');
  assert.deepEqual(a.evidence, { note: true, useRecord: true, ticket: true });
  assert.equal(a.revocation, null);
  assert.equal(a.review.status, 'unreviewed');
  assert.ok(a.review.waitingMs >= 48 * 3_600_000);

  assert.equal(b.ticket, t2);
  assert.equal(b.ref, 'refs/heads/release/1.0');
  assert.deepEqual(b.actions, ['force-push']);
  assert.equal(b.replacedTip, main3[2]);
  assert.equal(b.commits.count, 1);
  assert.equal(b.pusher, 'dave');
  assert.equal(b.requester.principal, 'dave');
  assert.deepEqual(
    b.approvers.map((x: { principal: string }) => x.principal),
    ['carol'],
  );

  assert.equal(v.kind, 'violation');
  assert.equal(v.ticket, null);
  assert.equal(v.violation, 'push to main without a ticket or review');
  assert.equal(v.pusher, 'mallory');
  assert.equal(v.review.status, 'not-applicable');
  assert.equal(v.evidence.useRecord, false);

  assert.equal(report.summary.events, 3);
  assert.equal(report.summary.violations, 1);
  assert.equal(report.summary.awaitingReview, 2);
  assert.deepEqual(report.summary.byRequester, { alice: 1, dave: 1, '(none)': 1 });
});

test('filters: --ticket, --ref pattern, --since/--until', async () => {
  assert.deepEqual(
    (await auditJson(['--ticket', t2])).rows.map((x: { ticket: string }) => x.ticket),
    [t2],
  );
  const rel = await auditJson(['--ref', 'release/*']);
  assert.deepEqual(
    rel.rows.map((x: { ticket: string }) => x.ticket),
    [t2],
  );
  const recent = await auditJson(['--since', formatTime(NOW - 2 * 3_600_000)]);
  assert.equal(recent.rows.length, 2);
  const old = await auditJson(['--until', formatTime(NOW - 24 * 3_600_000)]);
  assert.deepEqual(
    old.rows.map((x: { ticket: string }) => x.ticket),
    [t1],
  );
  const bad = await sb.run(sb.dir, ['audit', r.origin!, '--since', 'yesterday']);
  assert.equal(bad.code, 2);
  assert.equal(errorCode(bad.stderr), 'TIME_INVALID');
});

test('audit with a policy file that cannot be read, or outside a repository: the error, no stack', async () => {
  const missing = await sb.run(sb.dir, [
    'audit',
    r.origin!,
    '--policy',
    join(sb.dir, 'no-such-policy.yml'),
  ]);
  assert.equal(missing.code, 1);
  assert.equal(errorCode(missing.stderr), 'POLICY_MISSING');
  assert.ok(!hasStack(missing.stderr), missing.stderr);
  const notRepo = await sb.run(sb.dir, ['audit', join(sb.dir, 'no-such-repo')]);
  assert.equal(notRepo.code, 2);
  assert.equal(errorCode(notRepo.stderr), 'USAGE');
  assert.ok(!/warning/.test(notRepo.stderr), notRepo.stderr);
  assert.ok(!hasStack(notRepo.stderr), notRepo.stderr);
});

test('audit --format csv parses back (RFC 4180) with the same rows', async () => {
  const out = join(sb.dir, 'evidence.csv');
  const res = await sb.run(sb.dir, ['audit', r.origin!, '--format', 'csv', '--output', out]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout, '');
  const text = await readFile(out, 'utf8');
  const rows = parseCsv(text);
  assert.deepEqual(rows[0], [...CSV_COLUMNS]);
  assert.equal(rows.length, 4);
  const col = (name: string) => CSV_COLUMNS.indexOf(name as (typeof CSV_COLUMNS)[number]);
  const a = rows[1]!;
  assert.equal(a[col('ticket')], t1);
  assert.equal(a[col('reason')], REASON, 'quotes, comma and newline survive');
  assert.equal(a[col('commit_count')], '3');
  assert.equal(a[col('approvers')], 'bob');
  assert.equal(a[col('review_status')], 'unreviewed');
  // A formula from a pusher is defused for spreadsheets.
  assert.equal(rows[2]![col('reason')], `'=HYPERLINK("http://evil.example")`);
  assert.equal(rows[3]![col('kind')], 'violation');
});

test('audit --format md: an evidence report with every event', async () => {
  const res = await sb.run(sb.dir, ['audit', r.origin!, '--format', 'md']);
  assert.equal(res.code, 0, res.stderr);
  const md = res.stdout;
  const report = await auditJson();
  for (const row of report.rows) assert.ok(md.includes(row.id), `event ${row.id} is in the report`);
  assert.ok(md.includes(`Ticket \`${t1}\``));
  assert.ok(md.includes(`Ticket \`${t2}\``));
  assert.match(md, /## Summary/);
  assert.match(md, /## Awaiting review/);
  assert.match(md, /CC8\.1/);
  assert.match(md, /A\.8\.15/);
  assert.ok(!md.includes('[=HYPERLINK'), 'markdown from records is escaped');
});

test('audit table is the default format', async () => {
  const res = await sb.run(sb.dir, ['audit', r.origin!]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^TIME\s+REF\s+ACTION/);
  assert.ok(res.stdout.includes(t1) && res.stdout.includes(t2));
  assert.match(res.stdout, /VIOLATION/);
});

test('review duty: --unreviewed --older-than 24h fails, a review by carol closes it', async () => {
  const before = await sb.run(sb.dir, [
    'audit',
    r.origin!,
    '--unreviewed',
    '--older-than',
    '24h',
    '--json',
  ]);
  assert.equal(before.code, 1);
  const listed = JSON.parse(before.stdout);
  assert.deepEqual(
    listed.rows.map((x: { ticket: string }) => x.ticket),
    [t1],
  );
  assert.match(
    before.stderr,
    new RegExp(`1 break-glass event\\(s\\) waiting for review longer than 1d.*\\n.*${t1}`),
  );

  // The requester can't close her own review, nor can dave (no reviewer role).
  await sb.git(r.carol!, ['fetch', '-q', 'origin', '+refs/breakglass/*:refs/breakglass/*']);
  const self = await sb.as('alice', r.alice!, [
    'review',
    t1,
    '--outcome',
    'justified',
    '--note',
    'mine',
  ]);
  assert.equal(self.code, 1);
  assert.equal(errorCode(self.stderr), 'REVIEW_INVALID');
  assert.ok(!hasStack(self.stderr));
  const dave = await sb.as('dave', r.dave!, [
    'review',
    t1,
    '--outcome',
    'justified',
    '--note',
    'lgtm',
  ]);
  assert.equal(dave.code, 1);
  assert.equal(errorCode(dave.stderr), 'REVIEW_INVALID');
  const bad = await sb.as('carol', r.carol!, ['review', t1, '--outcome', 'fine', '--note', 'x']);
  assert.equal(bad.code, 2);

  const ok = await sb.as('carol', r.carol!, [
    'review',
    t1,
    '--outcome',
    'justified',
    '--note',
    'outage confirmed; fix reviewed in PR 812',
    '--push',
    '--json',
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).outcome, 'justified');

  const after = await sb.run(sb.dir, ['audit', r.origin!, '--unreviewed', '--older-than', '24h']);
  assert.equal(after.code, 0, after.stderr);
  const report = await auditJson();
  const row = report.rows.find((x: { ticket: string }) => x.ticket === t1);
  assert.equal(row.review.status, 'reviewed');
  assert.equal(row.review.outcome, 'justified');
  assert.equal(row.review.reviewer, 'carol');
  assert.equal(row.review.note, 'outage confirmed; fix reviewed in PR 812');
  assert.equal(row.review.waitingMs, null);
  assert.deepEqual(report.summary.byOutcome, { justified: 1 });
  // --older-than 0m lists exactly the rest: t2 (the violation is not reviewable).
  const rest = await sb.run(sb.dir, [
    'audit',
    r.origin!,
    '--unreviewed',
    '--older-than',
    '0m',
    '--json',
  ]);
  assert.equal(rest.code, 1);
  assert.deepEqual(
    JSON.parse(rest.stdout).rows.map((x: { ticket: string }) => x.ticket),
    [t2],
  );
});

test('log ID: request, approval, use with its commits, expiry, review', async () => {
  const res = await sb.run(sb.dir, ['log', t1, '--git-dir', r.origin!, '--json']);
  assert.equal(res.code, 0, res.stderr);
  const tl = JSON.parse(res.stdout);
  assert.equal(tl.ticket, t1);
  assert.equal(tl.requester, 'alice');
  const kinds = tl.entries.map((e: { kind: string }) => e.kind);
  for (const k of ['requested', 'approved', 'used', 'reviewed']) assert.ok(kinds.includes(k), k);
  assert.ok(kinds.includes('expires') || kinds.includes('expired'));
  const approved = tl.entries.find((e: { kind: string }) => e.kind === 'approved');
  assert.equal(approved.actor, 'bob');
  assert.equal(approved.keyid, keys.bob.publicKey.keyid);
  const used = tl.entries.find((e: { kind: string }) => e.kind === 'used');
  assert.deepEqual([...used.commits].sort(), [...main3].sort());
  const reviewed = tl.entries.find((e: { kind: string }) => e.kind === 'reviewed');
  assert.equal(reviewed.actor, 'carol');
  assert.equal(reviewed.valid, true);
  const text = await sb.run(sb.dir, ['log', t1, '--git-dir', r.origin!]);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /approved\s+approval by bob/);
  const missing = await sb.run(sb.dir, ['log', '20200101T000000Z-abcdef', '--git-dir', r.origin!]);
  assert.equal(missing.code, 1);
  assert.equal(errorCode(missing.stderr), 'TICKET_NOT_FOUND');
});

test('in a clone: bg-sign fetch, then audit reads the local evidence with the clone policy', async () => {
  const f = await sb.run(r.bob!, ['fetch']);
  assert.equal(f.code, 0, f.stderr);
  const res = await sb.run(r.bob!, ['audit', '--json', '--ticket', t2]);
  assert.equal(res.code, 0, res.stderr);
  const report = JSON.parse(res.stdout);
  assert.match(report.policySource, /origin/);
  assert.deepEqual(
    report.rows.map((x: { ticket: string }) => x.ticket),
    [t2],
  );
  assert.equal(report.rows[0].evidence.useRecord, true);
});
