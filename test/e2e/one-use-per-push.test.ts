// T13: one push is one use of a ticket, however many protected refs it moves with it.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { policyYaml } from '../helpers/fixtures.ts';
import { withServer } from '../helpers/server.ts';

it('a ticket covering main and release/1 in one push records one note block naming both, and one use', async () => {
  await withServer(
    { branches: ['release/1'], policy: policyYaml({ maxUses: 2 }) },
    async (server) => {
      const alice = await server.clone('alice');
      const id = await alice.makeTicket({
        refs: ['refs/heads/main', 'refs/heads/release/*'],
        maxUses: 2,
      });
      assert.equal((await alice.pushTickets([id])).code, 0);
      const tip = await alice.commit('hotfix.txt', 'fix\n', 'hotfix');
      const r = await alice.push([`${tip}:refs/heads/main`, `${tip}:refs/heads/release/1`], {
        tickets: [id],
      });
      assert.equal(r.code, 0, r.stderr);

      const note = (await server.note(tip)) ?? '';
      // E5: the commit both refs brought in gets one block for the push, naming both refs.
      assert.equal(note.match(/^Break-glass-Ticket: /gm)?.length, 1, 'one note block per push');
      assert.match(note, /Break-glass-Ref: refs\/heads\/main/);
      assert.match(note, /Break-glass-Ref: refs\/heads\/release\/1/);
      const uses = await server.git(['rev-list', '--count', `refs/breakglass/consumed/${id}`]);
      assert.equal(uses.stdout.trim(), '1', 'one consumed/ record for the push');

      // The second of two uses is still there for a later push.
      const next = await alice.commit('hotfix2.txt', 'fix 2\n', 'hotfix 2');
      const r2 = await alice.push([`${next}:refs/heads/main`], { tickets: [id] });
      assert.equal(r2.code, 0, r2.stderr);
      const uses2 = await server.git(['rev-list', '--count', `refs/breakglass/consumed/${id}`]);
      assert.equal(uses2.stdout.trim(), '2');
    },
  );
});
