// One note block may name several refs of one push (DESIGN §7, issue 10 E5): Ref/Update pairs
// repeat in order, everything else once; the parser gives one event per ref.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  formatNoteBlock,
  parseNote,
  type AuditEvent,
  type RefUpdate,
} from '../../src/audit/note.ts';

const oid = (c: string) => c.repeat(40);
const base: AuditEvent = {
  kind: 'breakglass',
  ticketId: '20261129T031200Z-7f3a9c',
  actions: ['push'],
  ref: 'refs/heads/main',
  oldSha: oid('a'),
  newSha: oid('b'),
  pusher: 'alice',
  requester: { principal: 'alice', keyid: 'SHA256:aliceKEYid' },
  approvers: [{ principal: 'bob', keyid: 'SHA256:bobKEYid' }],
  reason: 'INC-4711 payment outage hotfix',
  recordedAt: '2026-11-29T03:14:09Z',
  recordedBy: 'pre-receive@git.example.com',
};
const refs: RefUpdate[] = [
  { ref: 'refs/heads/main', oldSha: oid('a'), newSha: oid('b') },
  { ref: 'refs/heads/release/1', oldSha: oid('c'), newSha: oid('b') },
  { ref: 'refs/heads/hotfix', oldSha: '0'.repeat(40), newSha: oid('b') },
];

test('a block for several refs of one push writes Ref/Update pairs in order, the rest once', () => {
  const block = formatNoteBlock({ ...base, refs });
  assert.equal(
    block,
    [
      'Break-glass-Ticket: 20261129T031200Z-7f3a9c',
      'Break-glass-Action: push',
      'Break-glass-Ref: refs/heads/main',
      `Break-glass-Update: ${oid('a')}..${oid('b')}`,
      'Break-glass-Ref: refs/heads/release/1',
      `Break-glass-Update: ${oid('c')}..${oid('b')}`,
      'Break-glass-Ref: refs/heads/hotfix',
      `Break-glass-Update: ${'0'.repeat(40)}..${oid('b')}`,
      'Break-glass-Pusher: alice',
      'Break-glass-Requester: alice SHA256:aliceKEYid',
      'Break-glass-Approvers: bob SHA256:bobKEYid',
      'Break-glass-Reason: INC-4711 payment outage hotfix',
      'Break-glass-Recorded: 2026-11-29T03:14:09Z pre-receive@git.example.com',
      '',
    ].join('\n'),
  );
});

test('parseNote expands a multi-ref block into one event per ref; each formats back to the block', () => {
  const block = formatNoteBlock({ ...base, refs });
  const { events, errors } = parseNote(block);
  assert.deepEqual(errors, []);
  assert.deepEqual(
    events.map((e) => [e.ref, e.oldSha, e.newSha]),
    refs.map((r) => [r.ref, r.oldSha, r.newSha]),
  );
  for (const e of events) {
    assert.deepEqual(e.refs, refs);
    assert.equal(e.reason, base.reason);
    assert.equal(formatNoteBlock(e), block);
  }
  // A one-ref block stays as before: no `refs` on the event.
  const single = parseNote(formatNoteBlock({ ...base, refs: [refs[0]!] }));
  assert.deepEqual(single.events, [base]);
});

test('formatNoteBlock refuses an event whose own update is not among its refs', () => {
  assert.throws(() => formatNoteBlock({ ...base, refs: refs.slice(1) }), /not among its refs/);
});

test('repeated refs must be adjacent Ref/Update pairs naming distinct refs, else the block is refused', () => {
  const block = formatNoteBlock({ ...base, refs });
  const lines = block.trimEnd().split('\n');
  const refused = (text: string, why: RegExp) => {
    const r = parseNote(text);
    assert.deepEqual(r.events, [], text);
    assert.ok(
      r.errors.some((e) => why.test(e)),
      r.errors.join('; '),
    );
  };
  // An Update moved away from its Ref.
  const moved = [...lines];
  const [upd] = moved.splice(3, 1);
  moved.splice(8, 0, upd!);
  refused(moved.join('\n'), /not as adjacent pairs/);
  // A Ref without its Update.
  refused(lines.filter((_, i) => i !== 5).join('\n'), /not as adjacent pairs/);
  // Two Updates for one Ref.
  const twice = [...lines];
  twice.splice(4, 0, lines[3]!);
  refused(twice.join('\n'), /not as adjacent pairs/);
  // One ref named twice.
  refused(
    formatNoteBlock({ ...base, refs: [refs[0]!, { ...refs[1]!, ref: refs[0]!.ref }] }),
    /names one ref twice/,
  );
  // A bad object id in the second pair refuses the whole block.
  refused(block.replace(`${oid('c')}..`, 'c..'), /not <old>..<new> object ids/);
  // Other trailers still appear once.
  refused(block + 'Break-glass-Pusher: mallory\n', /Break-glass-Pusher appears twice/);
});

test('multi-ref blocks round-trip for any refs and reasons (property)', () => {
  const sha = fc.constantFrom(oid('a'), oid('b'), oid('c'), '0'.repeat(40), 'd'.repeat(64));
  fc.assert(
    fc.property(
      fc.uniqueArray(
        fc.record({ ref: fc.string({ minLength: 1, maxLength: 30 }), oldSha: sha, newSha: sha }),
        {
          minLength: 1,
          maxLength: 6,
          selector: (u) => u.ref,
        },
      ),
      fc.nat(5),
      fc.string({ maxLength: 60 }),
      (generated, pick, reason) => {
        const updates = generated.map((u) => ({ ...u }));
        const own = updates[pick % updates.length]!;
        const e: AuditEvent = { ...base, ...own, reason, refs: updates };
        const block = formatNoteBlock(e);
        const { events, errors } = parseNote(block + '\n' + formatNoteBlock(base));
        assert.deepEqual(errors, []);
        assert.equal(events.length, updates.length + 1);
        assert.deepEqual(
          events.slice(0, -1).map((x) => ({ ref: x.ref, oldSha: x.oldSha, newSha: x.newSha })),
          updates,
        );
        for (const x of events.slice(0, -1)) {
          assert.equal(x.reason, reason);
          assert.equal(formatNoteBlock(x), block);
        }
      },
    ),
  );
});
