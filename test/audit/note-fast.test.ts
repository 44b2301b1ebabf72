// parseNoteFast (the audit's fast path) against parseNote (the contract): whenever the fast path
// answers, the answer is parseNote's; for notes as the recorder writes them, it does answer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  appendBlock,
  formatNoteBlock,
  parseNote,
  parseNoteFast,
  type AuditEvent,
  NoteCache,
} from '../../src/audit/note.ts';

const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const oid = fc.oneof(hex(40), hex(64));
const plainName = fc.stringMatching(/^[a-z][a-z0-9._@-]{0,20}$/);
// Mostly plain, sometimes anything (escapes, spaces, commas, slashes, control and bidi chars).
const text = fc.oneof(
  { weight: 40, arbitrary: fc.stringMatching(/^[\w#:,./"'-]([\w #:,./"'-]{0,58}[\w#:,./"'-])?$/) },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 10 }) },
);
const time = fc
  .oneof(
    {
      weight: 30,
      arbitrary: fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }),
    },
    { weight: 1, arbitrary: fc.constant(null) },
  )
  .map((d) => (d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : '2026-02-30T00:00:00Z'));
const oddTime = fc.oneof(
  { weight: 30, arbitrary: time },
  fc.constantFrom(
    '1969-12-31T23:59:59Z',
    '2024-02-29T12:00:00Z',
    '2023-02-29T12:00:00Z',
    '2100-02-29T00:00:00Z',
    '2000-02-29T00:00:00Z',
    '2026-11-29T24:00:00Z',
    '2026-11-29T23:60:00Z',
    '2026-11-29T23:59:60Z',
    '2026-13-01T00:00:00Z',
    '2026-00-10T00:00:00Z',
    '2026-11-00T00:00:00Z',
    '2026-11-29T03:12:00.5Z',
    '2026-11-29t03:12:00Z',
    '2026-11-29T03:12:00+00:00',
  ),
);
const principal = fc.record({
  principal: fc.oneof({ weight: 4, arbitrary: plainName }, { weight: 1, arbitrary: text }),
  keyid: fc.oneof(
    { weight: 4, arbitrary: hex(8).map((h) => `SHA256:${h}`) },
    { weight: 1, arbitrary: text },
  ),
});

const event: fc.Arbitrary<AuditEvent> = fc
  .record(
    {
      kind: fc.constantFrom('breakglass' as const, 'violation' as const),
      ticketId: fc.oneof(fc.constant('20261129T031200Z-7f3a9c'), text),
      actions: fc.array(fc.oneof(fc.constantFrom('push', 'force-push', 'delete'), text), {
        minLength: 1,
        maxLength: 3,
      }),
      ref: fc.oneof(
        { weight: 4, arbitrary: fc.constant('refs/heads/main') },
        { weight: 1, arbitrary: text },
      ),
      oldSha: oid,
      newSha: oid,
      pusher: fc.oneof(plainName, text),
      requester: principal,
      approvers: fc.array(principal, { maxLength: 3 }),
      reason: text,
      incident: text,
      window: fc.record({ notBefore: oddTime, expiresAt: oddTime }),
      recordedAt: oddTime,
      recordedBy: fc.oneof(fc.constant('pre-receive@git.example.com'), text),
      replacedTip: oid,
      violation: text,
    },
    {
      requiredKeys: [
        'kind',
        'actions',
        'ref',
        'oldSha',
        'newSha',
        'pusher',
        'approvers',
        'recordedAt',
        'recordedBy',
      ],
    },
  )
  .chain((e) =>
    fc.oneof(
      { weight: 9, arbitrary: fc.constant(e) },
      {
        weight: 1,
        arbitrary: fc.array(oid, { maxLength: 3 }).map((dropped) => ({ ...e, dropped })),
      },
    ),
  )
  .map((e) => {
    const out = { ...e } as AuditEvent;
    if (e.kind === 'breakglass' && out.ticketId === undefined) out.ticketId = 'T-1';
    return out;
  });

// Small edits that a hand-edited or hostile note might have.
const edit = fc.oneof(
  { weight: 12, arbitrary: fc.constant((s: string) => s) },
  fc.constant((s: string) => s.replace('\n', '\r\n')),
  fc.constant((s: string) => s + '\n'),
  fc.constant((s: string) => '\n' + s),
  fc.constant((s: string) => s.replace(/\n$/, ' \n')),
  fc.constant((s: string) => s.replace(/^Break-glass-Ref.*\n/m, '')),
  fc.constant((s: string) => s.replace(/^(Break-glass-Pusher.*\n)/m, '$1$1')),
  fc.constant((s: string) => s.replace(/^(Break-glass-Reason.*\n)/m, 'Break-glass-Extra: x\n$1')),
  fc.constant((s: string) => s.replace(': ', ':')),
  fc.constant((s: string) => `free text\n\n${s}`),
  fc.constant((s: string) => s.replace('..', '...')),
  fc.constant((s: string) => s.replace('/', '//')),
  fc.record({ at: fc.nat(), ch: fc.string({ minLength: 1, maxLength: 2 }) }).map(
    ({ at, ch }) =>
      (s: string) =>
        s.slice(0, at % (s.length + 1)) + ch + s.slice(at % (s.length + 1)),
  ),
  fc
    .nat()
    .map(
      (at) => (s: string) => s.slice(0, at % (s.length + 1)) + s.slice((at % (s.length + 1)) + 1),
    ),
);

function noteOf(events: AuditEvent[]): string {
  let text: string | undefined;
  for (const e of events) text = appendBlock(text, formatNoteBlock(e));
  return text ?? '';
}

test('parseNoteFast gives exactly what parseNote gives, whenever it answers', () => {
  let answered = 0;
  fc.assert(
    fc.property(fc.array(event, { minLength: 1, maxLength: 3 }), edit, (events, change) => {
      const note = change(noteOf(events));
      const fast = parseNoteFast(note);
      if (fast === null) return;
      answered++;
      assert.deepStrictEqual(fast, parseNote(note));
      // Shared values (the audit's cache) change nothing either.
      const cache = new NoteCache();
      assert.deepStrictEqual(parseNoteFast(note, undefined, cache), fast);
      assert.deepStrictEqual(parseNoteFast(note, undefined, cache), fast);
    }),
    { numRuns: 3000 },
  );
  assert.ok(answered > 150, `the fast path answered only ${answered} times`);
});

test('parseNoteFast answers for notes as the recorder writes them', () => {
  const e: AuditEvent = {
    kind: 'breakglass',
    ticketId: '20261129T031200Z-7f3a9c',
    actions: ['push', 'force-push'],
    ref: 'refs/heads/main',
    oldSha: 'a'.repeat(40),
    newSha: 'b'.repeat(64),
    pusher: 'alice',
    requester: { principal: 'alice', keyid: 'SHA256:abc' },
    approvers: [
      { principal: 'bob', keyid: 'SHA256:def' },
      { principal: 'carol', keyid: 'SHA256:123' },
    ],
    reason: 'INC-4711 payment outage, hotfix #1 / rollback',
    incident: 'INC-4711',
    window: { notBefore: '2024-02-29T03:12:00Z', expiresAt: '2024-02-29T03:27:00Z' },
    recordedAt: '2024-02-29T03:14:09Z',
    recordedBy: 'pre-receive@git.example.com',
    replacedTip: 'c'.repeat(40),
  };
  const v: AuditEvent = {
    kind: 'violation',
    violation: 'force push without a ticket',
    actions: ['force-push'],
    ref: 'refs/heads/main',
    oldSha: 'c'.repeat(40),
    newSha: 'd'.repeat(40),
    pusher: 'mallory',
    approvers: [],
    recordedAt: '2026-11-29T03:14:09Z',
    recordedBy: 'action@github',
  };
  const note = noteOf([e, v]);
  const fast = parseNoteFast(note);
  assert.deepStrictEqual(fast, { events: [e, v], errors: [] });
  assert.deepStrictEqual(fast, parseNote(note));
  // Escaped text, a dropped list or an impossible date: the full parser decides.
  assert.equal(parseNoteFast(noteOf([{ ...e, reason: 'line\nbreak' }])), null);
  assert.equal(parseNoteFast(noteOf([{ ...e, dropped: ['e'.repeat(40)] }])), null);
  assert.equal(parseNoteFast(noteOf([{ ...e, recordedAt: '2023-02-29T03:14:09Z' }])), null);
  assert.equal(parseNoteFast(note.replace('Break-glass-Ref', 'Break-glass-Rev')), null);
});
