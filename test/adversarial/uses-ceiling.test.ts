// T15 through the real hook: a ticket signed for more uses than the policy's maxUses (the
// reproduction: `--max-uses 1000` under `maxUses: 1`, approved, used 5 times) is refused, and a
// ticket within the ceiling still works.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Arena, storedTicket } from './harness.ts';

describe('adversarial: tickets.maxUses is a ceiling (T15)', () => {
  let arena: Arena;

  before(async () => {
    arena = await Arena.create();
  });
  after(async () => {
    await arena?.close();
  });

  it('an approved ticket allowing 1000 uses under maxUses 1: USES_TOO_MANY', async () => {
    const t = await storedTicket(arena, arena.alice, { maxUses: 1000 });
    await arena.setup(arena.alice, [t.refspec]);
    const c = await arena.commitOn(arena.alice);
    const r = await arena.hostile(
      () => arena.push(arena.alice, [`${c}:refs/heads/main`], { tickets: [t.id] }),
      { code: 'USES_TOO_MANY', rule: 'T15' },
    );
    assert.match(r.stderr, /ticket allows 1000 uses, over the policy's maxUses of 1/);
  });

  it('control: the same push with a ticket at the ceiling (maxUses 1) lands', async () => {
    const t = await storedTicket(arena, arena.alice, { maxUses: 1 });
    await arena.setup(arena.alice, [t.refspec]);
    const c = await arena.commitOn(arena.alice);
    const r = await arena.push(arena.alice, [`${c}:refs/heads/main`], { tickets: [t.id] });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await arena.tip(), c);
  });
});
