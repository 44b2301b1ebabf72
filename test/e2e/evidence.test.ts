// Issue 10's reproductions, through the real installed hooks and real pushes: a break-glass push
// that git committed always ends with its note on every commit it brought in and its use record
// (E1); a spent use never comes back and a refused push's use comes back at once (E2); size
// never drops evidence (E5). docs/threat-model.md lists which test checks which invariant.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { policyYaml } from '../helpers/fixtures.ts';
import { BUNDLE, run, withServer, type DevClone, type TestServer } from '../helpers/server.ts';

async function uses(server: TestServer, id: string): Promise<number> {
  const r = await server.git(['rev-list', '--count', `refs/breakglass/consumed/${id}`], {
    check: false,
  });
  return r.code === 0 ? Number(r.stdout.trim()) : 0;
}

/** `bg-sign audit flush` on the server, as an admin (or a GHES worker) runs it. */
function flush(server: TestServer) {
  return run(process.execPath, [BUNDLE, 'audit', 'flush', server.gitDir], {
    env: { PATH: process.env.PATH, HOME: server.root, NO_COLOR: '1' },
  });
}

/** A platform with no post-receive (GHES), or one whose post-receive never ran. */
async function withoutPostReceive(server: TestServer): Promise<void> {
  await writeFile(join(server.gitDir, 'hooks/post-receive'), '#!/bin/sh\nexit 0\n', {
    mode: 0o755,
  });
}

async function ticketed(alice: DevClone, spec: Parameters<DevClone['makeTicket']>[0]) {
  const id = await alice.makeTicket(spec);
  assert.equal((await alice.pushTickets([id])).code, 0);
  return id;
}

describe('evidence (issue 10)', () => {
  it('E1 (item 6): every commit the push brings into main is noted, also ones already on another branch', async () => {
    await withServer({}, async (server) => {
      const alice = await server.clone('alice');
      const base = await alice.head();
      const five = await alice.commitsOn(base, 1, 'feature');
      let tip = five[0]!;
      for (let i = 1; i < 5; i++) tip = (await alice.commitsOn(tip, 1, `feature ${i}`))[0]!;
      const r0 = await alice.push([`${tip}:refs/heads/feature`]);
      assert.equal(r0.code, 0, r0.stderr);
      const id = await ticketed(alice, {});
      const r = await alice.push([`${tip}:refs/heads/main`], { tickets: [id] });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /BREAK-GLASS PUSH ACCEPTED by git-breakglass/);
      assert.match(r.stderr, /an audit note on 5 commit\(s\)/);
      const listed = (await server.git(['rev-list', `${base}..${tip}`])).stdout.trim().split('\n');
      assert.equal(listed.length, 5);
      for (const c of listed) {
        assert.match((await server.note(c)) ?? '', new RegExp(`Break-glass-Ticket: ${id}`), c);
      }
      assert.equal(await uses(server, id), 1);
    });
  });

  it('E2 (item 3): with no post-receive, a landed hotfix rolled back by a force push keeps its use; maxUses 2 lands twice only', async () => {
    await withServer({ policy: policyYaml({ maxUses: 2 }) }, async (server) => {
      await withoutPostReceive(server);
      const alice = await server.clone('alice');
      const before = await alice.head();
      const hotfix = await ticketed(alice, {});
      const rollback = await ticketed(alice, { actions: ['force-push'] });
      const fix = await alice.commit('fix.txt', 'fix\n', 'hotfix');
      assert.equal((await alice.push([`${fix}:refs/heads/main`], { tickets: [hotfix] })).code, 0);
      const r = await alice.push([`${before}:refs/heads/main`], {
        tickets: [rollback],
        force: true,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await server.ref('refs/heads/main'), before);
      // The single use is spent: git committed it, wherever main points now.
      const again = await alice.push([`${fix}:refs/heads/main`], { tickets: [hotfix] });
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /TICKET_USED_UP/);
      // E1/E4: until it is recorded, the audit shows it as a problem (exit 1), never as nothing.
      const unrecorded = await run(process.execPath, [BUNDLE, 'audit', server.gitDir, '--json'], {
        env: { PATH: process.env.PATH, HOME: server.root, NO_COLOR: '1' },
      });
      assert.equal(unrecorded.code, 1, unrecorded.stderr);
      assert.match(unrecorded.stderr, /not recorded yet; run: bg-sign audit flush/);
      const problems = (
        JSON.parse(unrecorded.stdout) as { problems: { kind: string; message: string }[] }
      ).problems;
      assert.ok(
        problems.some((p) => p.kind === 'journal' && p.message.includes(hotfix)),
        JSON.stringify(problems),
      );
      const f = await flush(server);
      assert.equal(f.code, 0, f.stdout + f.stderr);
      assert.match((await server.note(fix)) ?? '', new RegExp(`Break-glass-Ticket: ${hotfix}`));
      const after = await run(process.execPath, [BUNDLE, 'audit', server.gitDir, '--json'], {
        env: { PATH: process.env.PATH, HOME: server.root, NO_COLOR: '1' },
      });
      assert.equal(after.code, 0, after.stderr);
      assert.equal(await uses(server, hotfix), 1);
      assert.equal(await uses(server, rollback), 1);

      const twice = await ticketed(alice, { maxUses: 2 });
      let tip = before;
      let landed = 0;
      for (let i = 0; i < 4; i++) {
        tip = (await alice.commitsOn(tip, 1, `push ${i}`))[0]!;
        const p = await alice.push([`${tip}:refs/heads/main`], { tickets: [twice] });
        if (p.code === 0) landed++;
        else assert.match(p.stderr, /TICKET_USED_UP/);
      }
      assert.equal(landed, 2);
      await flush(server);
      assert.equal(await uses(server, twice), 2);
    });
  });

  it('E2 (item 5): a push a later hook refuses (gitolite-style update hook) gives its use back at once', async () => {
    await withServer({}, async (server) => {
      const update = join(server.gitDir, 'hooks/update');
      // gitolite's VREFs and access rules run in the update hook, after pre-receive said yes.
      await writeFile(
        update,
        '#!/bin/sh\ncase $1 in refs/heads/main) echo "FATAL: W refs/heads/main api alice DENIED by fallthru" >&2; exit 1 ;; esac\n',
        { mode: 0o755 },
      );
      const alice = await server.clone('alice');
      const id = await ticketed(alice, {});
      const fix = await alice.commit('fix.txt', 'fix\n', 'hotfix');
      const denied = await alice.push([`${fix}:refs/heads/main`], { tickets: [id] });
      assert.notEqual(denied.code, 0);
      assert.match(
        denied.stderr,
        /accepted by git-breakglass \(other server checks may still refuse it\)/i,
      );
      assert.match(denied.stderr, /DENIED by fallthru/);
      assert.equal(await server.ref('refs/heads/main'), server.seed);
      // The server admin fixes the access rule; the holder retries at once.
      await writeFile(update, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      const retry = await alice.push([`${fix}:refs/heads/main`], { tickets: [id] });
      assert.equal(retry.code, 0, retry.stderr);
      assert.equal(await server.ref('refs/heads/main'), fix);
      assert.match((await server.note(fix)) ?? '', new RegExp(`Break-glass-Ticket: ${id}`));
      assert.equal(await uses(server, id), 1);
    });
  });

  it('E5 (item 2): 64 release branches fast-forwarded to the same 25,000 commits are recorded whole, one block per commit', async () => {
    const branches = Array.from({ length: 64 }, (_, i) => `release/${i}`);
    await withServer({ branches }, async (server) => {
      const alice = await server.clone('alice');
      const base = await alice.head();
      // 25,000 empty commits in one fast-import (the pack is ~3 MB).
      const n = 25_000;
      const lines: string[] = [];
      for (let i = 0; i < n; i++) {
        const msg = `c ${i}\n`;
        lines.push('commit refs/heads/bulk', 'committer A <a@example.test> 1764385920 +0000');
        lines.push(`data ${msg.length}`, msg);
        if (i === 0) lines.push(`from ${base}`);
      }
      const fi = await alice.git(['fast-import', '--quiet'], { input: lines.join('\n') + '\n' });
      assert.equal(fi.code, 0, fi.stderr);
      const tip = (await alice.git(['rev-parse', 'refs/heads/bulk'])).stdout.trim();
      const id = await ticketed(alice, { refs: ['refs/heads/release/*'] });
      const r = await alice.push(
        branches.map((b) => `${tip}:refs/heads/${b}`),
        { tickets: [id] },
      );
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      const notes = (await server.git(['notes', '--ref=breakglass', 'list'])).stdout
        .trim()
        .split('\n');
      assert.equal(notes.length, n);
      const note = (await server.note(tip)) ?? '';
      assert.equal(note.match(/^Break-glass-Ticket: /gm)?.length, 1, 'one block for the push');
      assert.equal(note.match(/^Break-glass-Ref: /gm)?.length, 64, 'naming every ref');
      assert.equal(await uses(server, id), 1);
      assert.equal(
        (await server.git(['for-each-ref', 'refs/heads/release/'])).stdout.trim().split('\n')
          .length,
        64,
      );
    });
  });
});
