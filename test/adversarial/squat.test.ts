// E3: no client can make recording impossible (docs/threat-model.md, rule N10). git keeps refs
// as paths, so a ref under or over a name the recorder writes (refs/notes/breakglass,
// refs/breakglass/consumed/<id>) keeps that name from ever being created: break-glass pushes
// would land with no note and no use record. Through the real installed hooks: such names are
// refused by push; one already on the server (a repository from before this rule) makes every
// break-glass push fail closed, and install-hooks says so and how to fix it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { installHooks } from '../../src/server/install.ts';
import { BUNDLE } from '../helpers/server.ts';
import { Arena, newId, storedTicket, type Stored } from './harness.ts';

describe('adversarial: refs that would make recording impossible (E3, N10)', () => {
  let arena: Arena;
  before(async () => {
    arena = await Arena.create();
  });
  after(async () => {
    await arena?.close();
  });

  const push =
    (refspecs: string[], tickets: string[] = []) =>
    () =>
      arena.push(arena.alice, refspecs, { tickets });

  it('install-hooks created refs/notes/breakglass up front (an empty notes commit)', async () => {
    const notes = await arena.tip('refs/notes/breakglass');
    const tree = (await arena.server.git(['rev-parse', `${notes}^{tree}`])).stdout.trim();
    const empty = (await arena.server.git(['hash-object', '-t', 'tree', '/dev/null'])).stdout;
    assert.equal(tree, empty.trim(), 'no notes in it');
    const log = await arena.server.git(['log', '--notes=breakglass', '-1', 'refs/heads/main']);
    assert.equal(log.code, 0, 'git log --notes=breakglass reads it');
  });

  for (const name of [
    'refs/notes/breakglass/squat',
    'refs/notes/breakglass/a/b',
    'refs/notes',
    'refs/breakglass',
    'refs/breakglass/consumed',
    `refs/breakglass/consumed/${newId()}/x`,
  ]) {
    it(`creating ${name.replace(/\d{8}T\d{6}Z-[0-9a-f]+/, '<id>')}: NAMESPACE_VIOLATION (N10)`, async () => {
      const c = await arena.commitOn(arena.alice);
      await arena.hostile(push([`${c}:${name}`]), { code: 'NAMESPACE_VIOLATION', rule: 'N10' });
    });
  }

  it('the same names pass by the fast path only to be refused (warm cache, N10)', async () => {
    const c = await arena.commitOn(arena.alice);
    await arena.setup(arena.alice, [`${c}:refs/heads/feature/warm`]);
    await arena.hostile(push([`${c}:refs/notes/breakglass/x`, `${c}:refs/heads/feature/ok`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N10',
    });
  });

  describe('a squatting ref already on the server (installed before N10)', () => {
    let ticket: Stored;
    let fix: string;
    before(async () => {
      const a = arena.alice;
      ticket = await storedTicket(arena, a);
      await arena.setup(a, [ticket.refspec]);
      fix = await arena.commitOn(a);
      // As a repository looked before install-hooks created the notes ref: no notes yet, and a
      // writer's ref at refs/notes/breakglass/squat.
      const g = (args: string[]) => arena.server.git(args);
      await g(['update-ref', '-d', 'refs/notes/breakglass']);
      await g(['update-ref', 'refs/notes/breakglass/squat', arena.server.seed]);
    });

    it('a ticketed push is refused, nothing is reserved: RECORDING_BLOCKED (E3)', async () => {
      const r = await arena.hostile(push([`${fix}:refs/heads/main`], [ticket.id]), {
        code: 'RECORDING_BLOCKED',
        rule: 'E3',
      });
      assert.match(r.stderr, /refs\/notes\/breakglass\/squat/);
      assert.match(r.stderr, /git update-ref -d refs\/notes\/breakglass\/squat/);
    });

    it('unprotected pushes still flow, and the squatter may be deleted by push', async () => {
      // (The clone can't fetch the squatter beside its own copy of the notes ref: no commitOn.)
      await arena.setup(arena.alice, [`${fix}:refs/heads/feature/still-flows`]);
      // Deleting only makes recording possible again; re-create it for the next case.
      await arena.setup(arena.alice, [':refs/notes/breakglass/squat']);
      assert.equal(await arena.server.ref('refs/notes/breakglass/squat'), null);
      await arena.server.git(['update-ref', 'refs/notes/breakglass/squat', arena.server.seed]);
    });

    it('install-hooks names the ref and the fix; after the fix the push lands recorded', async () => {
      const o = { gitDir: arena.server.gitDir, bundle: BUNDLE };
      const blocked = await installHooks(o);
      assert.equal(blocked.problems.length, 1);
      assert.match(blocked.problems[0]!, /refs\/notes\/breakglass\/squat keeps the server from/);
      assert.match(blocked.problems[0]!, /update-ref -d refs\/notes\/breakglass\/squat/);
      assert.equal(await arena.server.ref('refs/notes/breakglass'), null, 'not created');

      await arena.server.git(['update-ref', '-d', 'refs/notes/breakglass/squat']);
      const fixed = await installHooks(o);
      assert.deepEqual(fixed.problems, []);
      assert.ok(fixed.actions.some((a) => a.startsWith('created refs/notes/breakglass')));

      await arena.setup(arena.alice, [`${fix}:refs/heads/main`], { tickets: [ticket.id] });
      assert.equal(await arena.tip(), fix);
      assert.match((await arena.server.note(fix)) ?? '', new RegExp(`Ticket: ${ticket.id}`));
      assert.ok(await arena.server.ref(`refs/breakglass/consumed/${ticket.id}`), 'use recorded');
    });
  });
});
