// Short fault run inside `npm test` (the full one is `npm run faults`): a few random kills of
// post-receive, stale locks, a broken journal directory and a concurrent notes writer, each
// ending with every accepted event recorded exactly once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  brokenJournalTrial,
  concurrentWriterTrial,
  killTrial,
  makePendingTemplate,
  staleLocksTrial,
  type PendingTemplate,
} from './lib.ts';

describe('faults (short run; npm run faults for 100 trials)', () => {
  let t: PendingTemplate;
  before(async () => {
    t = await makePendingTemplate(3, 2);
  });
  after(async () => {
    await t?.close();
  });

  it('post-receive killed at random moments: the next flushes record every event exactly once', async () => {
    // Early, middle and late kills, of node alone and of its process group with git.
    for (const [frac, mode] of [
      [0.05, 'node'],
      [0.5, 'group'],
      [0.8, 'node'],
      [1.1, 'group'],
    ] as const) {
      const r = await killTrial(t, frac * t.flushMs, mode);
      assert.ok(
        r.ok,
        `kill at ${Math.round(r.delayMs)} ms (${mode}, ${r.phase}): ${JSON.stringify(r.verdict)} ${r.note ?? ''}`,
      );
      assert.deepEqual(r.verdict.noteCounts, [1, 1, 1]);
      assert.deepEqual(r.verdict.useCounts, [1, 1, 1]);
      assert.equal(r.verdict.eventsInNotes, 3);
    }
  });

  it('stale recorder lock, processing/ leftovers and orphan reservations are recovered', async () => {
    const r = await staleLocksTrial(t, { gitLock: false });
    assert.ok(r.ok, r.details.join('\n'));
  });

  for (const which of ['pending', 'reservations'] as const) {
    it(`an unusable ${which} directory rejects ticketed pushes (fail closed), nothing changes`, async () => {
      const r = await brokenJournalTrial(which);
      assert.ok(r.ok, r.detail);
    });
  }

  // git notes moves the ref without an old-value check, so it can overwrite a notes commit of
  // ours; the event must still be used once and reported once by the audit, never doubled.
  it('a concurrent git notes writer: no event doubled, each used once and in the audit once', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await concurrentWriterTrial(t);
      assert.ok(r.ok, r.detail);
      assert.ok(r.writerNotes > 0, 'the writer wrote notes');
    }
  });
});
