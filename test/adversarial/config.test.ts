// Server set-ups that used to open a way around the hook (docs/threat-model.md TM6, TM9):
// a symbolic ref aliasing a protected ref, and an in-repository policy whose own branch it does
// not protect. Both pushes below were ACCEPTED before the fixes (no ticket, no note).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Arena, storedTicket } from './harness.ts';

describe('adversarial: symbolic refs on the server (TM9)', () => {
  let arena: Arena;

  before(async () => {
    arena = await Arena.create({ branches: ['feature'] });
    // A rename alias, as admins leave behind after master -> main, and two more.
    await arena.server.git(['symbolic-ref', 'refs/heads/master', 'refs/heads/main']);
    await arena.server.git(['symbolic-ref', 'refs/heads/audit', 'refs/notes/breakglass']);
    await arena.server.git(['symbolic-ref', 'refs/heads/wip', 'refs/heads/feature']);
  });
  after(async () => {
    await arena?.close();
  });

  it('pushing main through the alias refs/heads/master, no ticket: SYMBOLIC_REF', async () => {
    const c = await arena.commitOn(arena.alice);
    const r = await arena.hostile(
      () => arena.push(arena.alice, [`${c}:refs/heads/master`], { as: 'dave' }),
      { code: 'SYMBOLIC_REF', rule: 'TM9' },
    );
    assert.match(r.stderr, /symbolic ref to refs\/heads\/main/);
  });

  it('pushing through the alias with a valid ticket for main: SYMBOLIC_REF', async () => {
    const t = await storedTicket(arena, arena.alice);
    await arena.setup(arena.alice, [t.refspec]);
    const c = await arena.commitOn(arena.alice);
    await arena.hostile(
      () => arena.push(arena.alice, [`${c}:refs/heads/master`], { tickets: [t.id] }),
      { code: 'SYMBOLIC_REF', rule: 'TM9' },
    );
  });

  it('writing refs/notes/breakglass through a branch alias: SYMBOLIC_REF', async () => {
    const c = await arena.commitOn(arena.alice);
    await arena.hostile(() => arena.push(arena.alice, [`+${c}:refs/heads/audit`]), {
      code: 'SYMBOLIC_REF',
      rule: 'TM9',
    });
  });

  it('control: an alias of an unprotected branch still works', async () => {
    const c = await arena.commitOn(arena.alice, { ref: 'refs/heads/feature' });
    const r = await arena.push(arena.alice, [`${c}:refs/heads/wip`], { as: 'dave' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await arena.tip('refs/heads/feature'), c);
  });
});

describe('adversarial: an in-repository policy must protect its own branch (TM6)', () => {
  let arena: Arena;
  let evilPolicy: string;

  before(async () => {
    arena = await Arena.create({ pin: false, branches: ['develop'] });
    // git-flow: the default branch is develop, which the policy (main, release/*) leaves open.
    await arena.server.git(['symbolic-ref', 'HEAD', 'refs/heads/develop']);
    const policy = (await arena.server.git(['show', 'develop:.breakglass/policy.yml'])).stdout;
    evilPolicy = policy.replace(
      'refs: ["refs/heads/main", "refs/heads/release/*"]',
      'refs: ["refs/heads/nothing-here"]',
    );
    assert.notEqual(evilPolicy, policy);
  });
  after(async () => {
    await arena?.close();
  });

  it('rewriting the policy on the unprotected default branch: POLICY_INVALID', async () => {
    const c = await arena.commitOn(arena.alice, {
      ref: 'refs/heads/develop',
      file: '.breakglass/policy.yml',
      content: evilPolicy,
    });
    const r = await arena.hostile(
      () => arena.push(arena.alice, [`${c}:refs/heads/develop`], { as: 'dave' }),
      { code: 'POLICY_INVALID' },
    );
    assert.match(r.stderr, /read from refs\/heads\/develop, which it does not protect/);
  });

  it('pushing main while the policy sits on an unprotected branch: POLICY_INVALID', async () => {
    const c = await arena.commitOn(arena.alice);
    await arena.hostile(() => arena.push(arena.alice, [`${c}:refs/heads/main`], { as: 'dave' }), {
      code: 'POLICY_INVALID',
    });
  });

  it('bootstrapping an empty repository with a policy that leaves main open: POLICY_INVALID', async () => {
    const s = arena.server;
    // Empty the repository (no branches): the next push is a bootstrap.
    await s.git(['symbolic-ref', 'HEAD', 'refs/heads/main']);
    for (const b of ['main', 'develop']) await s.git(['update-ref', '-d', `refs/heads/${b}`]);
    const c = await arena.commitOn(arena.alice, {
      parent: (await arena.alice.git(['rev-parse', 'refs/srv/heads/main'])).stdout.trim(),
      file: '.breakglass/policy.yml',
      content: evilPolicy,
    });
    await arena.hostile(() => arena.push(arena.alice, [`${c}:refs/heads/main`]), {
      code: 'POLICY_INVALID',
    });
  });
});

describe('adversarial: replace refs (N9, TM16)', () => {
  let arena: Arena;
  let policy: string;

  before(async () => {
    arena = await Arena.create({ pin: false });
    policy = (await arena.server.git(['show', 'main:.breakglass/policy.yml'])).stdout;
  });
  after(async () => {
    await arena?.close();
  });

  /** A root commit like main whose policy no longer protects release/*. */
  async function evilTwinOfMain(): Promise<string> {
    const evil = policy.replace(
      'refs: ["refs/heads/main", "refs/heads/release/*"]',
      'refs: ["refs/heads/main"]',
    );
    assert.notEqual(evil, policy);
    return arena.commitOn(arena.alice, {
      orphan: true,
      file: '.breakglass/policy.yml',
      content: evil,
    });
  }

  it('pushing refs/replace/<main> with a policy that opens release/*: NAMESPACE_VIOLATION (N9)', async () => {
    const twin = await evilTwinOfMain();
    const main = await arena.tip();
    await arena.hostile(() => arena.push(arena.alice, [`${twin}:refs/replace/${main}`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N9',
    });
  });

  it('a replace ref already on the server does not change the policy the hook reads', async () => {
    // As if pushed before the hook was installed, or made by hand: git would now show the evil
    // twin's policy for main. The hook reads the objects themselves (--no-replace-objects).
    const twin = await evilTwinOfMain();
    await arena.server.git(['fetch', '-q', arena.alice.dir, twin]);
    await arena.server.git(['replace', await arena.tip(), twin]);
    assert.match(
      (await arena.server.git(['show', 'main:.breakglass/policy.yml'])).stdout,
      /refs: \["refs\/heads\/main"\]/,
      'git itself honours the replace ref',
    );
    // An unprotected push first: it re-keys the fast path's cache, which must not learn the
    // twin's patterns (release/* left open) either.
    const f = await arena.commitOn(arena.alice);
    const ok = await arena.push(arena.alice, [`${f}:refs/heads/feature-warm`], { as: 'dave' });
    assert.equal(ok.code, 0, ok.stderr);
    for (let i = 0; i < 2; i++) {
      const c = await arena.commitOn(arena.alice);
      await arena.hostile(
        () => arena.push(arena.alice, [`${c}:refs/heads/release/r${i}`], { as: 'dave' }),
        { code: 'TICKET_REQUIRED' },
      );
    }
  });
});
