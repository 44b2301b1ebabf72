// E6 (docs/threat-model.md): one repository written by several Unix accounts (ssh as `git`,
// http as `www-data`, or one account per person). The state under $GIT_DIR/breakglass/ must stay
// writable by all of them, and a file another account owns must never stop a flush. Runs the
// pushes as real, separate accounts (made with useradd; CI runs as root).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BUNDLE, run, withServer, type DevClone, type TestServer } from '../helpers/server.ts';

const GROUP = 'bgshared';
const ACCOUNTS = ['bgpush1', 'bgpush2'] as const;
type Account = (typeof ACCOUNTS)[number];

function unavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root to create accounts (CI runs as root)';
  for (const tool of ['/usr/sbin/useradd', '/usr/sbin/groupadd', '/usr/bin/setpriv']) {
    if (!existsSync(tool)) return `${tool} is missing`;
  }
  return null;
}

async function ensureAccounts(): Promise<void> {
  if ((await run('getent', ['group', GROUP])).code !== 0) {
    await run('groupadd', [GROUP], { check: true });
  }
  for (const a of ACCOUNTS) {
    if ((await run('id', [a])).code !== 0) {
      await run('useradd', ['-M', '-N', '-g', GROUP, '-s', '/usr/sbin/nologin', a], {
        check: true,
      });
    }
  }
}

/** Makes the server a shared repository, as `git init --shared=group` + chgrp would. */
async function share(server: TestServer): Promise<void> {
  await server.git(['config', 'core.sharedRepository', 'group']);
  await run('chgrp', ['-R', GROUP, server.gitDir], { check: true });
  await run('chmod', ['-R', 'g+rwX', server.gitDir], { check: true });
  await run('find', [server.gitDir, '-type', 'd', '-exec', 'chmod', 'g+s', '{}', '+'], {
    check: true,
  });
  await writeFile(
    safeConfig(server),
    '[safe]\n\tdirectory = *\n[user]\n\tname = alice\n\temail = alice@example.test\n',
  );
  // Every account must reach the clones, the hooks and the bundle.
  await run('chmod', ['-R', 'a+rX', server.root], { check: true });
}

/**
 * A global git config that trusts every directory: the clone and the repository belong to other
 * accounts, and git's ownership check is not what this test is about (server-setup.md documents
 * safe.directory). A file, since git drops `-c` settings on the way into a local repository.
 */
function safeConfig(server: TestServer): string {
  return join(server.root, 'safe.gitconfig');
}

/** Runs git as another account (its own uid and group; the environment is kept). */
function as(account: Account, clone: DevClone, args: readonly string[]) {
  return run(
    'setpriv',
    [`--reuid=${account}`, `--regid=${GROUP}`, '--init-groups', 'git', ...args],
    {
      cwd: clone.dir,
      env: { ...clone.env, GIT_CONFIG_GLOBAL: safeConfig(clone.server) },
    },
  );
}

function pushAs(account: Account, clone: DevClone, refspec: string, ticket: string) {
  return as(account, clone, ['push', '-o', `breakglass=${ticket}`, clone.url, refspec]);
}

async function owners(dir: string): Promise<Set<number>> {
  const out = new Set<number>();
  for (const f of await readdir(dir, { recursive: true })) out.add((await stat(join(dir, f))).uid);
  return out;
}

const why = unavailable();

describe('several Unix accounts on one repository (E6)', { skip: why ?? false }, () => {
  it('each account pushes break-glass in turn; every push is recorded; state stays group-writable', async () => {
    await ensureAccounts();
    await withServer({}, async (server) => {
      const alice = await server.clone('alice');
      const t1 = await alice.makeTicket();
      const t2 = await alice.makeTicket();
      assert.equal((await alice.pushTickets([t1, t2])).code, 0);
      await share(server);
      const a = await alice.commit('a.txt', 'a\n', 'hotfix a');
      const r1 = await pushAs('bgpush1', alice, `${a}:refs/heads/main`, t1);
      assert.equal(r1.code, 0, r1.stderr);
      const b = await alice.commit('b.txt', 'b\n', 'hotfix b');
      const r2 = await pushAs('bgpush2', alice, `${b}:refs/heads/main`, t2);
      assert.equal(r2.code, 0, r2.stderr);
      assert.match(r2.stderr, /recorded ticket/);
      for (const [c, t] of [
        [a, t1],
        [b, t2],
      ] as const) {
        assert.match((await server.note(c)) ?? '', new RegExp(`Break-glass-Ticket: ${t}`));
      }
      const state = join(server.gitDir, 'breakglass');
      assert.ok((await owners(state)).size >= 2, 'both accounts wrote state');
      for (const d of ['reservations', 'journal/done']) {
        const mode = (await stat(join(state, d))).mode;
        assert.ok(mode & 0o020 && mode & 0o2000, `${d} is group-writable and setgid`);
      }
    });
  });

  it("a flush by one account finishes another account's entry, and reports an unreadable file without stopping", async () => {
    await ensureAccounts();
    await withServer({}, async (server) => {
      const alice = await server.clone('alice');
      const t1 = await alice.makeTicket();
      assert.equal((await alice.pushTickets([t1])).code, 0);
      // No post-receive (or one that died): the entry stays pending, owned by bgpush1.
      await writeFile(join(server.gitDir, 'hooks/post-receive'), '#!/bin/sh\nexit 0\n', {
        mode: 0o755,
      });
      await share(server);
      const a = await alice.commit('a.txt', 'a\n', 'hotfix a');
      assert.equal((await pushAs('bgpush1', alice, `${a}:refs/heads/main`, t1)).code, 0);
      const pending = join(server.gitDir, 'breakglass/journal/pending');
      // A file of another account this one can't read (a broken or foreign entry).
      const junk = join(pending, '20261129T000000Z-1-0badc0de.json');
      await writeFile(junk, '{"version":1}\n');
      await chmod(junk, 0o600);
      const f = await run(
        'setpriv',
        [
          '--reuid=bgpush2',
          `--regid=${GROUP}`,
          '--init-groups',
          process.execPath,
          BUNDLE,
          'audit',
          'flush',
          server.gitDir,
        ],
        {
          env: {
            PATH: process.env.PATH,
            HOME: server.root,
            GIT_CONFIG_GLOBAL: safeConfig(server),
          },
        },
      );
      assert.match(f.stdout + f.stderr, /unreadable/, f.stdout + f.stderr);
      assert.equal(f.code, 1, 'a problem is an exit 1');
      assert.match((await server.note(a)) ?? '', new RegExp(`Break-glass-Ticket: ${t1}`));
      assert.equal((await readdir(pending)).filter((n) => n.endsWith('.json')).length, 0);
      // E4: until an admin looks at it, new break-glass pushes are refused; normal ones flow.
      const t2 = await alice.makeTicket();
      assert.equal((await alice.pushTickets([t2])).code, 0);
      const b = await alice.commit('b.txt', 'b\n', 'hotfix b');
      const refused = await pushAs('bgpush2', alice, `${b}:refs/heads/main`, t2);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /RECORDING_BROKEN/);
      assert.match(refused.stderr, /bg-sign audit flush/);
    });
  });
});
