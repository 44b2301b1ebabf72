// The pure report: de-duplication across commits, the review window, filters, and the formats'
// escaping rules, without git.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AuditEvent } from '../../src/audit/note.ts';
import {
  buildReport,
  csvField,
  dedupeEvents,
  formatJson,
  formatMarkdown,
  formatTable,
  rowJson,
  type AuditData,
  type ReviewFacts,
} from '../../src/audit/report.ts';
import { parseCsv } from './csv.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const T = '20261129T031200Z-7f3a9c';
const NOW = Date.parse('2026-11-30T12:00:00Z');

function event(over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    kind: 'breakglass',
    ticketId: T,
    actions: ['push'],
    ref: 'refs/heads/main',
    oldSha: A,
    newSha: B,
    pusher: 'alice',
    requester: { principal: 'alice', keyid: 'SHA256:a' },
    approvers: [{ principal: 'bob', keyid: 'SHA256:b' }],
    reason: 'INC-4711 "quoted", comma\nnewline \u202e',
    window: { notBefore: '2026-11-29T03:12:00Z', expiresAt: '2026-11-29T03:27:00Z' },
    recordedAt: '2026-11-29T03:14:09Z',
    recordedBy: 'pre-receive@git.example.com',
    ...over,
  };
}

function data(over: Partial<AuditData> = {}): AuditData {
  return {
    events: dedupeEvents([
      { event: event(), commit: B },
      { event: event(), commit: C },
      { event: event(), commit: B },
    ]),
    tickets: new Map(),
    ticketIds: new Set([T]),
    uses: [],
    revocations: new Map(),
    reviews: new Map(),
    problems: [],
    ...over,
  };
}

function review(at: string, valid: boolean | null = true): ReviewFacts {
  return {
    ticket: T,
    reviewer: 'carol',
    outcome: 'justified',
    note: 'ok',
    reviewedAt: at,
    reviewedAtMs: Date.parse(at),
    valid,
    ...(valid === false ? { error: 'forged' } : {}),
  };
}

test('one event annotating several commits is one row listing each commit once', () => {
  const r = buildReport(data(), { now: NOW });
  assert.equal(r.rows.length, 1);
  assert.deepEqual(r.rows[0]!.commits, { count: 2, ids: [B, C] });
  assert.equal(r.rows[0]!.review.status, 'unreviewed');
  assert.equal(r.rows[0]!.review.waitingMs, NOW - Date.parse('2026-11-29T03:14:09Z'));
});

test('a review covers uses before it; a later use waits again; invalid or unverified never count', () => {
  const later = dedupeEvents([
    { event: event(), commit: B },
    { event: event({ oldSha: B, newSha: C, recordedAt: '2026-11-30T08:00:00Z' }), commit: C },
  ]);
  const reviews = new Map([[T, review('2026-11-29T09:00:00Z')]]);
  const r = buildReport(data({ events: later, reviews }), { now: NOW });
  assert.deepEqual(
    r.rows.map((x) => x.review.status),
    ['reviewed', 'unreviewed'],
  );
  const overdue = buildReport(data({ events: later, reviews }), {
    now: NOW,
    olderThanMs: 3_600_000,
  });
  assert.deepEqual(
    overdue.rows.map((x) => x.update.new),
    [C],
  );
  assert.equal(overdue.filters.olderThan, '1h');
  const notYet = buildReport(data({ events: later, reviews }), {
    now: NOW,
    olderThanMs: 5 * 3_600_000,
  });
  assert.equal(notYet.rows.length, 0);
  for (const valid of [false, null]) {
    const bad = buildReport(
      data({ reviews: new Map([[T, review('2026-11-29T09:00:00Z', valid)]]) }),
      {
        now: NOW,
        unreviewed: true,
      },
    );
    assert.equal(bad.rows.length, 1);
    assert.equal(bad.rows[0]!.review.status, valid === false ? 'invalid' : 'unverified');
  }
});

test('a use record without a note is still a row, flagged', () => {
  const r = buildReport(
    data({
      events: [],
      uses: [
        {
          ticket: T,
          ref: 'refs/heads/main',
          oldSha: A,
          newSha: B,
          actions: ['push'],
          pusher: 'alice',
          recordedAt: '2026-11-29T03:14:09Z',
          recordedBy: 'pre-receive@x',
          commits: 3,
        },
      ],
    }),
    { now: NOW },
  );
  assert.equal(r.rows.length, 1);
  assert.deepEqual(r.rows[0]!.evidence, { note: false, useRecord: true, ticket: true });
  assert.equal(r.rows[0]!.commits.count, 3);
});

test('rowJson is exactly JSON.stringify of the row (the fast path changes nothing)', () => {
  const d = data({
    events: dedupeEvents([
      { event: event(), commit: B },
      {
        event: event({
          kind: 'violation',
          ticketId: undefined,
          violation: 'bypass \\ "x"',
          newSha: C,
        }),
        commit: C,
      },
      {
        event: event({
          actions: ['force-push'],
          replacedTip: A,
          dropped: [C],
          droppedCount: 7,
          newSha: A,
        }),
        commit: A,
      },
    ]),
    reviews: new Map([[T, review('2026-11-29T03:20:00Z')]]),
    revocations: new Map([
      [
        T,
        {
          ticket: T,
          revoker: 'bob',
          revokedAt: '2026-11-29T03:20:00Z',
          reason: 'done',
          valid: true,
        },
      ],
    ]),
  });
  const r = buildReport(d, { now: NOW });
  assert.equal(r.rows.length, 3);
  for (const row of r.rows) assert.equal(rowJson(row), JSON.stringify(row));
  const doc = JSON.parse([...formatJson(r)].join(''));
  assert.deepEqual(doc.rows, JSON.parse(JSON.stringify(r.rows)));
  assert.equal(doc.schemaVersion, 1);
});

test('csv fields: RFC 4180 quoting and spreadsheet formulas defused', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField('=1+1'), "'=1+1");
  assert.equal(csvField('@SUM(A1)'), "'@SUM(A1)");
  assert.equal(csvField(null), '');
  assert.equal(csvField(3), '3');
  assert.deepEqual(parseCsv(['x', csvField('a,"b"\r\nc')].join(',') + '\r\n'), [
    ['x', 'a,"b"\r\nc'],
  ]);
});

test('table and markdown never pass control or bidi characters through', () => {
  const r = buildReport(data(), { now: NOW });
  const table = [...formatTable(r)].join('');
  assert.ok(!/[\u202e\n]newline/.test(table));
  assert.ok(!table.includes('\u202e'));
  const md = [...formatMarkdown(r)].join('');
  assert.ok(!md.includes('\u202e'));
  assert.ok(md.includes('INC-4711 "quoted", comma?newline ?'));
});
