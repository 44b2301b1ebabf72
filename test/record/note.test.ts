import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  appendBlock,
  eventKey,
  formatNoteBlock,
  noteHasBlock,
  parseNote,
  type AuditEvent,
} from '../../src/audit/note.ts';
import {
  consumedRefOf,
  formatUseRecord,
  parseUseRecord,
  useRecordOf,
} from '../../src/audit/consumed.ts';
import { BreakglassError } from '../../src/errors.ts';
import { pushEvent, TICKET } from './repo.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const hex = (i: number) => i.toString(16).padStart(40, '0');

test('a push event formats as the DESIGN §7 block', () => {
  assert.equal(
    formatNoteBlock(pushEvent(A, B)),
    [
      `Break-glass-Ticket: ${TICKET}`,
      'Break-glass-Action: push',
      'Break-glass-Ref: refs/heads/main',
      `Break-glass-Update: ${A}..${B}`,
      'Break-glass-Pusher: alice',
      'Break-glass-Requester: alice SHA256:aliceKEYid+/0',
      'Break-glass-Approvers: bob SHA256:bobKEYid',
      'Break-glass-Reason: INC-4711 payment outage hotfix',
      'Break-glass-Window: 2026-11-29T03:12:00Z/2026-11-29T03:27:00Z',
      'Break-glass-Recorded: 2026-11-29T03:14:09Z pre-receive@git.example.com',
      '',
    ].join('\n'),
  );
});

test('a force push lists the replaced tip and the dropped commits, bounded at 50', () => {
  const dropped = Array.from({ length: 53 }, (_, i) => hex(i + 1));
  const e = pushEvent(A, B, {
    actions: ['force-push'],
    approvers: [
      { principal: 'bob', keyid: 'SHA256:b' },
      { principal: 'carol', keyid: 'SHA256:c' },
    ],
    incident: 'INC-4711',
    replacedTip: A,
    dropped,
  });
  const block = formatNoteBlock(e);
  const lines = block.split('\n');
  assert.ok(lines.includes('Break-glass-Approvers: bob SHA256:b, carol SHA256:c'));
  assert.ok(lines.includes('Break-glass-Incident: INC-4711'));
  assert.ok(lines.includes(`Break-glass-Replaced: ${A}`));
  const droppedLine = lines.find((l) => l.startsWith('Break-glass-Dropped: '))!;
  assert.equal(
    droppedLine,
    `Break-glass-Dropped: 53 commits: ${dropped.slice(0, 50).join(', ')}, ... and 3 more`,
  );
  assert.equal(
    lines.at(-2),
    'Break-glass-Recorded: 2026-11-29T03:14:09Z pre-receive@git.example.com',
  );
  const parsed = parseNote(block);
  assert.deepEqual(parsed.errors, []);
  assert.deepEqual(parsed.events[0]!.dropped, dropped.slice(0, 50));
  assert.equal(parsed.events[0]!.droppedCount, 53);
  // Re-formatting what was parsed gives the same block back.
  assert.equal(formatNoteBlock(parsed.events[0]!), block);
  assert.match(
    formatNoteBlock({ ...e, dropped: [hex(9)] }),
    /Break-glass-Dropped: 1 commit: 0+9\n/,
  );
});

test('parseNote round-trips formatNoteBlock for push, force-push and violation events', () => {
  const events: AuditEvent[] = [
    pushEvent(A, B),
    pushEvent(A, B, {
      actions: ['force-push', 'change-policy'],
      replacedTip: A,
      dropped: [hex(1)],
    }),
    {
      kind: 'violation',
      violation: 'push to refs/heads/main bypassed protection without a ticket',
      actions: ['force-push'],
      ref: 'refs/heads/main',
      oldSha: A,
      newSha: B,
      pusher: 'mallory',
      approvers: [],
      recordedAt: '2026-11-29T04:00:00.5Z',
      recordedBy: 'action@github',
    },
    pushEvent(A, B, {
      reason: 'tab\there \\ back\\nslash, "quotes" ünïcödé',
      pusher: 'svc account',
    }),
  ];
  let note: string | undefined;
  for (const e of events) note = appendBlock(note, formatNoteBlock(e));
  const parsed = parseNote(note!);
  assert.deepEqual(parsed.errors, []);
  assert.deepEqual(parsed.events, events);
  assert.ok(note!.startsWith('Break-glass-Ticket'));
  assert.match(note!, /\n\nBreak-glass-Violation: push to refs\/heads\/main bypassed/);
});

test('a reason with newlines and a fake trailer cannot inject a trailer', () => {
  const reason =
    'fix\nBreak-glass-Approvers: ceo SHA256:fake\r\n\nBreak-glass-Ticket: x\u2028y\u202e';
  const block = formatNoteBlock(
    pushEvent(A, B, { reason, pusher: 'eve\nBreak-glass-Pusher: bob' }),
  );
  const lines = block.trimEnd().split('\n');
  assert.equal(lines.length, 10);
  assert.equal(lines.filter((l) => l.startsWith('Break-glass-Approvers')).length, 1);
  assert.equal(
    lines.find((l) => l.startsWith('Break-glass-Reason')),
    'Break-glass-Reason: fix\\nBreak-glass-Approvers: ceo SHA256:fake\\r\\n\\nBreak-glass-Ticket: x\\u{2028}y\\u{202e}',
  );
  const parsed = parseNote(block);
  assert.deepEqual(parsed.errors, []);
  assert.equal(parsed.events.length, 1);
  assert.equal(parsed.events[0]!.reason, reason);
  assert.equal(parsed.events[0]!.pusher, 'eve\nBreak-glass-Pusher: bob');
  assert.deepEqual(parsed.events[0]!.approvers, [{ principal: 'bob', keyid: 'SHA256:bobKEYid' }]);
});

test('parseNote never throws, keeps free text out, tolerates unknown trailers, reports broken blocks', () => {
  const good = formatNoteBlock(pushEvent(A, B)).replace(
    'Break-glass-Pusher',
    'Break-glass-Future-Field: whatever\nBreak-glass-Pusher',
  );
  const text = [
    'A note someone wrote by hand.',
    good,
    'Break-glass-Ticket: x\nBreak-glass-Action: push', // missing fields
    `Break-glass-Ticket: ${TICKET}\nBreak-glass-Ticket: ${TICKET}\n` + 'junk line',
    formatNoteBlock(pushEvent(A, B)).replace(`${A}..${B}`, 'HEAD..main'),
  ].join('\n\n');
  const parsed = parseNote(text);
  assert.equal(parsed.events.length, 1);
  assert.deepEqual(parsed.events[0], pushEvent(A, B));
  assert.ok(parsed.errors.some((e) => e.startsWith('block 3: Break-glass-Ref missing')));
  assert.ok(parsed.errors.some((e) => e.startsWith('block 4: Break-glass-Ticket appears twice')));
  assert.ok(parsed.errors.some((e) => e.startsWith('block 4: not a trailer line')));
  assert.ok(parsed.errors.some((e) => e.startsWith('block 5: Break-glass-Update')));
  for (const junk of ['', '\n\n\n', '\u0000\u0001', 'Break-glass-', 'Break-glass-Recorded: nope']) {
    assert.doesNotThrow(() => parseNote(junk));
  }
  assert.ok(parseNote('Break-glass-Recorded: 2026-11-29T03:14:09+01:00 x').errors.length > 0);
});

test('appendBlock separates blocks by one blank line; noteHasBlock matches whole blocks only', () => {
  const block = formatNoteBlock(pushEvent(A, B));
  assert.equal(appendBlock(undefined, block), block);
  assert.equal(appendBlock('hand note\n\n\n', block), `hand note\n\n${block}`);
  const both = appendBlock(appendBlock('x', block), formatNoteBlock(pushEvent(B, A)));
  assert.ok(noteHasBlock(both, block));
  assert.ok(!noteHasBlock(block.replace('alice\n', 'alice2\n'), block));
  assert.ok(!noteHasBlock(`${block.trimEnd()}\nBreak-glass-Extra: 1\n`, block));
  assert.equal(eventKey(pushEvent(A, B)), `breakglass ${TICKET} refs/heads/main ${A}..${B}`);
});

test('use records format and parse strictly', () => {
  const r = useRecordOf(pushEvent(A, B), 3);
  const msg = formatUseRecord(r);
  assert.equal(
    msg,
    `breakglass: ${TICKET} used on refs/heads/main (push)\n\n` +
      `{"ticket":"${TICKET}","ref":"refs/heads/main","oldSha":"${A}","newSha":"${B}","actions":["push"],` +
      `"pusher":"alice","recordedAt":"2026-11-29T03:14:09Z","recordedBy":"pre-receive@git.example.com","commits":3}\n`,
  );
  assert.deepEqual(parseUseRecord(msg), r);
  assert.equal(consumedRefOf(TICKET), `refs/breakglass/consumed/${TICKET}`);
  const bad = [
    msg.replace('"commits":3', '"commits":3,"extra":1'),
    msg.replace('"commits":3', '"commits":-1'),
    msg.replace('(push)', '(force-push)'),
    msg.replace('["push"]', '["teleport"]'),
    msg.replace('03:14:09Z', '03:14:09'),
    msg.replace(`"${A}"`, '"HEAD"'),
    msg.replace('\n\n', '\n'),
    msg + 'trailing\n',
    'x'.repeat(70_000),
  ];
  for (const m of bad) {
    assert.throws(
      () => parseUseRecord(m),
      (e: unknown) => e instanceof BreakglassError && e.code === 'AUDIT_RECORD_INVALID',
      m.slice(0, 60),
    );
  }
  assert.throws(() => consumedRefOf('../../heads/main'), { code: 'AUDIT_RECORD_INVALID' });
  assert.throws(() => useRecordOf({ ...pushEvent(A, B), kind: 'violation' }, 1), {
    code: 'AUDIT_RECORD_INVALID',
  });
});

test('any text in free fields round-trips and stays inside its own trailer (property)', () => {
  const text = fc.string({ unit: 'binary', maxLength: 200 });
  const name = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 });
  fc.assert(
    fc.property(
      text,
      text,
      name,
      name,
      text,
      fc.array(name, { minLength: 1, maxLength: 4 }),
      (reason, incident, pusher, principal, violation, actions) => {
        const e: AuditEvent = pushEvent(A, B, {
          reason,
          incident,
          pusher,
          actions,
          requester: { principal, keyid: 'SHA256:k' },
          approvers: [{ principal: pusher, keyid: principal }],
          recordedBy: principal,
        });
        for (const ev of [e, { ...e, kind: 'violation' as const, violation }]) {
          const block = formatNoteBlock(ev);
          const lines = block.trimEnd().split('\n');
          assert.equal(lines.length, ev.kind === 'violation' ? 12 : 11);
          assert.ok(lines.every((l) => /^Break-glass-[A-Za-z]+: /.test(l)));
          const parsed = parseNote(block);
          assert.deepEqual(parsed.errors, []);
          assert.deepEqual(parsed.events, [ev]);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('parseNote survives arbitrary and oversized input', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (junk) => {
      const r = parseNote(`${formatNoteBlock(pushEvent(A, B))}${junk}`);
      assert.ok(Array.isArray(r.events) && Array.isArray(r.errors));
    }),
    { numRuns: 500 },
  );
  const huge = formatNoteBlock(pushEvent(A, B)) + '\n' + 'x'.repeat(2 * 1024 * 1024);
  const r = parseNote(huge);
  assert.equal(r.events.length, 1);
  assert.match(r.errors.join(), /longer than/);
});

test('trailing blanks survive storage that trims lines', () => {
  const e = pushEvent(A, B, { reason: 'ends with space ', recordedBy: 'host\u00a0' });
  const block = formatNoteBlock(e);
  assert.ok(block.includes('Break-glass-Reason: ends with space\\u{20}\n'));
  const trimmed = block.replace(/[ \t]+$/gm, '');
  assert.deepEqual(parseNote(trimmed).events, [e]);
});

test('emoji stay readable; lone surrogates are escaped so the stored UTF-8 round-trips', () => {
  const block = formatNoteBlock(pushEvent(A, B, { reason: 'fire 🔥 \ud800 end' }));
  assert.ok(block.includes('Break-glass-Reason: fire 🔥 \\u{d800} end\n'));
  const stored = Buffer.from(block, 'utf8').toString('utf8');
  assert.equal(parseNote(stored).events[0]!.reason, 'fire 🔥 \ud800 end');
});
