// planReport (the CLI's report, rows made as they are written) against buildReport (rows held):
// same rows in the same order, same summary (key order too) and the same bytes in every format.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { UseRecord } from '../../src/audit/consumed.ts';
import type { AuditEvent } from '../../src/audit/note.ts';
import {
  buildReport,
  dedupeEvents,
  formatReport,
  planReport,
  summarize,
  type AuditData,
  type ReportOptions,
  type ReviewFacts,
} from '../../src/audit/report.ts';

const NOW = Date.parse('2026-12-01T00:00:00Z');
const sha = (n: number, c = 'a') => c.repeat(34) + String(n).padStart(6, '0');
const tid = (n: number) =>
  `20261129T0312${String(n % 60).padStart(2, '0')}Z-${String(n).padStart(6, '0')}`;

function event(n: number): AuditEvent {
  const violation = n % 7 === 3;
  const e: AuditEvent = {
    kind: violation ? 'violation' : 'breakglass',
    actions: n % 5 === 0 ? ['force-push', 'push'] : ['push'],
    ref: n % 3 === 0 ? 'refs/heads/release/1' : 'refs/heads/main',
    oldSha: sha(n),
    newSha: sha(n, 'b'),
    pusher: n % 2 ? 'alice' : 'bob',
    approvers: n % 4 ? [{ principal: 'carol', keyid: 'SHA256:c' }] : [],
    // Several events share a time: the id breaks the tie.
    recordedAt: `2026-11-${String(10 + (n % 9)).padStart(2, '0')}T03:14:0${n % 3}Z`,
    recordedBy: 'pre-receive@git.example.com',
  };
  if (violation) e.violation = `pushed without a ticket #${n}`;
  else {
    e.ticketId = tid(n % 40);
    if (n % 6) e.requester = { principal: n % 4 ? 'dave' : 'erin', keyid: 'SHA256:d' };
    if (n % 8) e.reason = `INC-${n} "why",\nnewline`;
  }
  if (n % 11 === 0) e.dropped = [sha(n, 'd')];
  return e;
}

function use(n: number): UseRecord {
  return {
    ticket: tid(n % 40),
    ref: 'refs/heads/main',
    oldSha: sha(n, 'e'),
    newSha: sha(n, 'f'),
    actions: ['push'],
    commits: 2,
    pusher: 'alice',
    recordedAt: `2026-11-1${n % 10}T05:00:00Z`,
    recordedBy: 'pre-receive@git.example.com',
  } as UseRecord;
}

function data(): AuditData {
  const items: { event: AuditEvent; commit: string }[] = [];
  for (let n = 0; n < 200; n++) {
    items.push({ event: event(n), commit: sha(n, 'b') });
    if (n % 10 === 0) items.push({ event: event(n), commit: sha(n, 'c') });
  }
  const reviews = new Map<string, ReviewFacts>();
  for (let i = 0; i < 40; i += 3) {
    const at = `2026-11-1${i % 10}T04:00:00Z`;
    reviews.set(tid(i), {
      ticket: tid(i),
      reviewer: 'frank',
      outcome: i % 2 ? 'justified' : 'false-emergency',
      note: 'ok',
      reviewedAt: at,
      reviewedAtMs: Date.parse(at),
      valid: i % 9 === 0 ? false : i % 5 === 0 ? null : true,
    });
  }
  const tickets = new Map(
    Array.from({ length: 40 }, (_, i) => [
      tid(i),
      {
        id: tid(i),
        requester: 'gina',
        holder: 'gina',
        reason: `ticket reason ${i}`,
        notBefore: '2026-11-01T00:00:00Z',
        expiresAt: '2026-11-30T00:00:00Z',
        maxUses: 3,
        approvers: [{ principal: 'hal', keyid: 'SHA256:h' }],
      },
    ]),
  );
  return {
    events: dedupeEvents(items),
    tickets,
    ticketIds: new Set(Array.from({ length: 30 }, (_, i) => tid(i))),
    uses: Array.from({ length: 12 }, (_, i) => use(i)),
    revocations: new Map(),
    reviews,
    problems: [{ kind: 'note', where: sha(1), message: 'bad note' }],
  };
}

const cases: [string, Omit<ReportOptions, 'now'>][] = [
  ['everything', {}],
  [
    'since/until',
    { since: Date.parse('2026-11-12T00:00:00Z'), until: Date.parse('2026-11-16T00:00:00Z') },
  ],
  ['one ticket', { ticket: tid(4) }],
  ['ref filter', { refFilter: (r) => r.endsWith('main'), refText: 'main' }],
  ['unreviewed', { unreviewed: true }],
  ['older than', { unreviewed: true, olderThanMs: 20 * 86_400_000 }],
  ['nothing kept', { since: Date.parse('2030-01-01T00:00:00Z') }],
];

for (const [name, opts] of cases) {
  test(`planReport matches buildReport: ${name}`, () => {
    const d = data();
    const held = buildReport(d, { now: NOW, ...opts });
    const view = planReport(d, { now: NOW, ...opts });
    const rows = [...view.rows];
    assert.equal(view.rows.length, held.rows.length);
    assert.deepEqual(rows, held.rows);
    // Made afresh on every pass, the same each time.
    assert.deepEqual([...view.rows], rows);
    // Same counts and the same key order as counting the held rows.
    assert.equal(JSON.stringify(view.summary), JSON.stringify(summarize(held.rows)));
    assert.equal(JSON.stringify(held.summary), JSON.stringify(summarize(held.rows)));
    for (const format of ['json', 'csv', 'md', 'table'] as const) {
      assert.equal(
        [...formatReport(view, format)].join(''),
        [...formatReport(held, format)].join(''),
        format,
      );
    }
    if (name === 'everything') {
      assert.ok(held.rows.some((r) => r.kind === 'violation'));
      assert.ok(held.rows.some((r) => !r.evidence.note)); // use records without a note
      assert.ok(held.rows.some((r) => r.review.status === 'reviewed'));
      assert.ok(held.rows.some((r) => r.review.status === 'invalid'));
    }
  });
}
