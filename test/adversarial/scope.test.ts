// Hostile pushes against scope, time and the push rules (docs/threat-model.md TM3-TM6, TM13;
// rules T5-T11, T14, P1, P2): genuine, fully approved tickets used for something they do not cover,
// at the wrong time, by the wrong person; and protected updates that try to look harmless.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { keys } from '../helpers/fixtures.ts';
import { Arena, newId, storedTicket, type Expect } from './harness.ts';

const MIN = 60_000;
/** Now, on whole seconds (ticket times have second precision when we write them). */
const nowS = () => Math.floor(Date.now() / 1000) * 1000;

describe('adversarial: scope, time, holder and push rules', () => {
  let arena: Arena;
  let hotfix: string;

  before(async () => {
    arena = await Arena.create({
      branches: ['main2', 'release/1', 'prod/a/b'],
      tweaks: { protect: ['refs/heads/main2', 'refs/heads/prod/**'] },
    });
    hotfix = await arena.commitOn(arena.alice);
  });
  after(async () => {
    await arena?.close();
  });

  /**
   * Pushes a fresh ticket (alice requests, bob approves; `spec` bends it) together with
   * `refspecs`, naming it with -o, as `as` (default alice).
   */
  async function withTicket(
    spec: Parameters<typeof storedTicket>[2],
    refspecs: string[],
    e: Expect,
    o: { as?: string } = {},
  ) {
    const t = await storedTicket(arena, arena.alice, spec);
    return arena.hostile(
      () =>
        arena.push(arena.alice, [t.refspec, ...refspecs], {
          tickets: [t.id],
          ...(o.as ? { as: o.as } : {}),
        }),
      e,
    );
  }

  it('a ticket for another repository (acme/other): REPOSITORY_MISMATCH', async () => {
    await withTicket({ repository: 'acme/other' }, [`${hotfix}:refs/heads/main`], {
      code: 'REPOSITORY_MISMATCH',
      rule: 'T5',
    });
  });

  it('refs/heads/main2 with a ticket for main: SCOPE_REF', async () => {
    const c = await arena.commitOn(arena.alice, { ref: 'refs/heads/main2' });
    await withTicket({ refs: ['main'] }, [`${c}:refs/heads/main2`], {
      code: 'SCOPE_REF',
      rule: 'T6',
    });
  });

  it('a one-segment glob (prod/*) stretched to prod/a/b: SCOPE_REF', async () => {
    const c = await arena.commitOn(arena.alice, { ref: 'refs/heads/prod/a/b' });
    await withTicket({ refs: ['refs/heads/prod/*'] }, [`${c}:refs/heads/prod/a/b`], {
      code: 'SCOPE_REF',
      rule: 'T6',
    });
  });

  it('a ticket for main carrying a second, uncovered protected ref: whole push refused', async () => {
    const c = await arena.commitOn(arena.alice, { ref: 'refs/heads/release/1' });
    const r = await withTicket(
      { refs: ['main'] },
      [`${hotfix}:refs/heads/main`, `${c}:refs/heads/release/1`],
      { code: 'SCOPE_REF', rule: 'T6' },
    );
    assert.match(r.stdout, /refs\/heads\/main\t\[remote rejected\]/);
  });

  it('refs/heads/main/../x: git itself refuses the ref name; the server is untouched', async () => {
    const before = await arena.snapshot();
    const r = await arena.push(arena.alice, [`${hotfix}:refs/heads/main/../x`]);
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stderr, /git-breakglass/, 'the hook never saw it');
    assert.match(r.stderr, /not a valid|invalid|refspec/i);
    assert.deepEqual(await arena.snapshot(), before);
  });

  it('a 269-character ref under release/* (beyond what patterns match): REF_INVALID', async () => {
    const long = `refs/heads/release/${'a'.repeat(250)}`;
    await withTicket({ refs: ['release/*'], actions: ['create'] }, [`${hotfix}:${long}`], {
      code: 'REF_INVALID',
    });
  });

  it('an unprotected branch riding along with a refused main update does not land either', async () => {
    const r = await arena.hostile(
      () =>
        arena.push(arena.alice, [`${hotfix}:refs/heads/feature-x`, `${hotfix}:refs/heads/main`], {
          as: 'dave',
        }),
      { code: 'TICKET_REQUIRED', rule: 'P2' },
    );
    assert.match(r.stdout, /refs\/heads\/feature-x\t\[remote rejected\]/);
  });

  it('commit pin mismatch (ticket pins another commit): SCOPE_COMMIT', async () => {
    const pinned = await arena.commitOn(arena.alice, { content: 'the reviewed fix\n' });
    await withTicket({ commits: [pinned] }, [`${hotfix}:refs/heads/main`], {
      code: 'SCOPE_COMMIT',
      rule: 'T8',
    });
  });

  it('expired one second ago: TICKET_EXPIRED', async () => {
    const exp = nowS() - 1000;
    await withTicket({ issuedAt: exp - 15 * MIN, expiresAt: exp }, [`${hotfix}:refs/heads/main`], {
      code: 'TICKET_EXPIRED',
      rule: 'T10',
    });
  });

  it('not yet valid, one minute beyond the 2m clock skew: TICKET_NOT_YET_VALID', async () => {
    const nb = nowS() + 3 * MIN;
    await withTicket(
      { issuedAt: nb, notBefore: nb, expiresAt: nb + 15 * MIN },
      [`${hotfix}:refs/heads/main`],
      { code: 'TICKET_NOT_YET_VALID', rule: 'T9' },
    );
  });

  it('lifetime one second over maxTtl (60m): TTL_TOO_LONG', async () => {
    const t0 = nowS() - 1000;
    await withTicket(
      { issuedAt: t0, expiresAt: t0 + 60 * MIN + 1000 },
      [`${hotfix}:refs/heads/main`],
      { code: 'TTL_TOO_LONG', rule: 'T11' },
    );
  });

  it('issuedAt after notBefore (dodging the TTL cap by a late issuedAt): PAYLOAD_MALFORMED', async () => {
    const t0 = nowS();
    await withTicket(
      { issuedAt: t0 + 30 * MIN, notBefore: t0 - MIN, expiresAt: t0 + 80 * MIN },
      [`${hotfix}:refs/heads/main`],
      { code: 'PAYLOAD_MALFORMED', rule: 'N5' },
    );
  });

  it("holder mismatch: bob pushes alice's ticket: HOLDER_MISMATCH", async () => {
    const t = await storedTicket(arena, arena.alice);
    await arena.setup(arena.alice, [t.refspec]);
    const bobFix = await arena.commitOn(arena.bob);
    await arena.hostile(
      () => arena.push(arena.bob, [`${bobFix}:refs/heads/main`], { tickets: [t.id] }),
      { code: 'HOLDER_MISMATCH', rule: 'T14' },
    );
  });

  it('a login the policy does not know (eve) with a valid ticket: HOLDER_MISMATCH', async () => {
    await withTicket(
      {},
      [`${hotfix}:refs/heads/main`],
      { code: 'HOLDER_MISMATCH', rule: 'T14' },
      {
        as: 'eve',
      },
    );
  });

  it('a malformed identity variable does not fall back to another source: HOLDER_MISMATCH', async () => {
    // REMOTE_USER is set but not a login; the hook must not fall through to the Unix user.
    const r = await withTicket(
      {},
      [`${hotfix}:refs/heads/main`],
      { code: 'HOLDER_MISMATCH', rule: 'T14' },
      { as: 'alice\nBreak-glass-Ticket: forged' },
    );
    assert.match(r.stderr, /invalid login/);
  });

  it('release/1 looks like a side branch but is protected by release/*: TICKET_REQUIRED', async () => {
    const c = await arena.commitOn(arena.alice, { ref: 'refs/heads/release/1' });
    // As dave, who holds no ticket (alice's live tickets would be found and examined).
    await arena.hostile(
      () => arena.push(arena.alice, [`${c}:refs/heads/release/1`], { as: 'dave' }),
      {
        code: 'TICKET_REQUIRED',
        rule: 'P2',
      },
    );
  });

  it('creating a protected branch (release/2) with a push-only ticket: SCOPE_ACTION', async () => {
    await withTicket({ refs: ['release/*'] }, [`${hotfix}:refs/heads/release/2`], {
      code: 'SCOPE_ACTION',
      rule: 'T7',
    });
  });

  it('deleting main with a push-only ticket: SCOPE_ACTION', async () => {
    const r = await withTicket({}, [':refs/heads/main'], { code: 'SCOPE_ACTION', rule: 'T7' });
    assert.match(r.stderr, /action delete is not in the ticket's actions/);
  });

  it('force-pushing main with a push-only ticket: SCOPE_ACTION', async () => {
    const rewrite = await arena.commitOn(arena.alice, { orphan: true });
    const r = await withTicket({}, [`+${rewrite}:refs/heads/main`], {
      code: 'SCOPE_ACTION',
      rule: 'T7',
    });
    assert.match(r.stderr, /action force-push is not in the ticket's actions/);
  });

  it('the listed pusher (merge-bot) force-pushing without a ticket: TICKET_REQUIRED', async () => {
    const rewrite = await arena.commitOn(arena.alice, { orphan: true });
    await arena.hostile(
      () => arena.push(arena.alice, [`+${rewrite}:refs/heads/main`], { as: 'merge-bot' }),
      { code: 'TICKET_REQUIRED', rule: 'P2' },
    );
  });

  it('the listed pusher (merge-bot) deleting release/1 without a ticket: TICKET_REQUIRED', async () => {
    await arena.hostile(
      () => arena.push(arena.alice, [':refs/heads/release/1'], { as: 'merge-bot' }),
      { code: 'TICKET_REQUIRED', rule: 'P2' },
    );
  });

  it('a ticket id that does not exist, named with -o: TICKET_NOT_FOUND', async () => {
    await arena.hostile(
      () => arena.push(arena.alice, [`${hotfix}:refs/heads/main`], { tickets: [newId()] }),
      { code: 'TICKET_NOT_FOUND' },
    );
  });

  // Controls: the same arena accepts the honest versions (within the skew is still valid).
  it('control: a ticket valid from 90 s in the future (inside the 2m skew) is accepted', async () => {
    const nb = nowS() + 90_000;
    const t = await storedTicket(arena, arena.alice, {
      issuedAt: nb,
      notBefore: nb,
      expiresAt: nb + 15 * MIN,
    });
    const r = await arena.push(arena.alice, [t.refspec, `${hotfix}:refs/heads/main`], {
      tickets: [t.id],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await arena.tip(), hotfix);
  });
});

describe('adversarial: the policy changing itself (policy read from the repository)', () => {
  let arena: Arena;
  /** main + a commit adding mallory as an approver to .breakglass/policy.yml. */
  let smuggled: string;

  before(async () => {
    arena = await Arena.create({ pin: false, branches: ['release/1'] });
    const policy = (await arena.server.git(['show', 'main:.breakglass/policy.yml'])).stdout;
    const evil = policy.replace(
      '  merge-bot:',
      `  mallory:\n    keys: ["${keys.mallory.publicKey.text}"]\n    roles: [approver, oncall]\n    logins: [mallory]\n  merge-bot:`,
    );
    assert.notEqual(evil, policy);
    smuggled = await arena.commitOn(arena.alice, {
      file: '.breakglass/policy.yml',
      content: evil,
    });
  });
  after(async () => {
    await arena?.close();
  });

  it('a policy change smuggled into a push-only ticketed push: SCOPE_ACTION (change-policy)', async () => {
    const t = await storedTicket(arena, arena.alice);
    const r = await arena.hostile(
      () =>
        arena.push(arena.alice, [t.refspec, `${smuggled}:refs/heads/main`], { tickets: [t.id] }),
      { code: 'SCOPE_ACTION', rule: 'T7' },
    );
    assert.match(r.stderr, /action change-policy is not in the ticket's actions/);
  });

  it('a ticket approved by mallory, whom the same push adds to the policy: refused', async () => {
    const t = await storedTicket(arena, arena.alice, { actions: ['push', 'change-policy'] }, [
      keys.alice,
      keys.mallory,
    ]);
    await arena.hostile(
      () =>
        arena.push(arena.alice, [t.refspec, `${smuggled}:refs/heads/main`], { tickets: [t.id] }),
      { code: 'SIGNATURE_INVALID', rule: 'N5', also: ['APPROVALS_MISSING'] },
    );
  });

  it('the listed pusher (merge-bot) fast-forwarding a policy change: TICKET_REQUIRED', async () => {
    const r = await arena.hostile(
      () => arena.push(arena.alice, [`${smuggled}:refs/heads/main`], { as: 'merge-bot' }),
      { code: 'TICKET_REQUIRED', rule: 'P2' },
    );
    assert.match(r.stderr, /push \+ change-policy/);
  });

  it('a policy change on a new protected branch (release/9) with a create-only ticket: SCOPE_ACTION', async () => {
    const t = await storedTicket(arena, arena.alice, {
      refs: ['release/*'],
      actions: ['create'],
    });
    const r = await arena.hostile(
      () =>
        arena.push(arena.alice, [t.refspec, `${smuggled}:refs/heads/release/9`], {
          tickets: [t.id],
        }),
      { code: 'SCOPE_ACTION', rule: 'T7' },
    );
    assert.match(r.stderr, /change-policy/);
  });
});
