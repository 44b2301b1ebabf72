// The hook shims and install-hooks on their own, with a stand-in bundle: transports, chaining
// an existing hook, idempotence, and failing closed when node or the bundle is missing.
import assert from 'node:assert/strict';
import { chmod, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BACKUP_SUFFIX,
  CHAINED_SUFFIX,
  HOOK_NAMES,
  installHooks,
  shimText,
} from '../../src/server/install.ts';
import { REPO_ROOT, run, sshUnavailable, TestServer, type Transport } from '../helpers/server.ts';

const STANDIN = join(REPO_ROOT, 'test/e2e/fixtures/standin-hook.mjs');

async function log(server: TestServer, hook: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(join(server.gitDir, `standin-${hook}.log`), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('hooks/ shims', () => {
  it('are the installer’s shim text with empty defaults, valid sh, executable', async () => {
    for (const hook of HOOK_NAMES) {
      const path = join(REPO_ROOT, 'hooks', hook);
      assert.equal(await readFile(path, 'utf8'), shimText(hook));
    }
  });
});

for (const transport of ['file', 'git', 'ssh'] as Transport[]) {
  describe(`shim over ${transport}`, () => {
    const skip = transport === 'ssh' ? sshUnavailable() : null;
    let server: TestServer;
    before(async () => {
      if (!skip) server = await TestServer.create({ bundle: STANDIN });
    });
    after(async () => {
      await server?.close();
    });

    it(
      'runs the bundle: a refused push changes nothing, push options reach the hook',
      { skip: skip ?? false },
      async () => {
        const alice = await server.clone('alice', transport);
        const head = await alice.commit('fix.txt', 'hotfix\n');
        const refused = await alice.push(['HEAD:main']);
        assert.notEqual(refused.code, 0);
        assert.match(refused.stderr, /stand-in: refs\/heads\/main is protected: TICKET_REQUIRED/);
        assert.equal(await server.ref('refs/heads/main'), server.seed);
        assert.equal((await log(server, 'post-receive')).length, 0);

        const ok = await alice.push(['HEAD:main'], { tickets: ['20261129T031200Z-7f3a9c'] });
        assert.equal(ok.code, 0, ok.stderr);
        assert.match(ok.stderr, /accepted with breakglass=20261129T031200Z-7f3a9c/);
        assert.equal(await server.ref('refs/heads/main'), head);
        const pre = await log(server, 'pre-receive');
        assert.deepEqual(pre.at(-1)!.options, ['breakglass=20261129T031200Z-7f3a9c']);
        assert.equal(pre.at(-1)!.input, `${server.seed} ${head} refs/heads/main\n`);
        // The shim's one `git config` is handed over: every breakglass.* entry, then git's
        // exit status (engine/triage.ts settingsFromShim).
        const arg = String((pre.at(-1)!.args as string[])[0]);
        assert.ok(arg.startsWith('--git-config='), arg);
        const lines = arg.slice('--git-config='.length).split('\n');
        assert.ok(lines.includes(`breakglass.bundle ${STANDIN}`), arg);
        assert.ok(
          lines.some((l) => /^breakglass\.policy \S+policy\.yml$/.test(l)),
          arg,
        );
        assert.equal(lines.at(-1), '0', 'ends with the exit status of git config');
        const post = await log(server, 'post-receive');
        assert.equal(post.length, 1);
        assert.deepEqual(post[0]!.args, pre.at(-1)!.args);
        assert.equal(post[0]!.input, `${server.seed} ${head} refs/heads/main\n`);
        // Who pushed: file:// inherits the client's REMOTE_USER, sshd's forced command sets it,
        // git daemon knows nobody.
        assert.equal(post[0]!.remoteUser, transport === 'git' ? null : 'alice');
      },
    );
  });
}

describe('install-hooks', () => {
  let server: TestServer;
  before(async () => {
    server = await TestServer.create({ bundle: STANDIN, noHooks: true });
  });
  after(async () => {
    await server?.close();
  });

  it('installs into a bare repository, records config, and is idempotent', async () => {
    const first = await installHooks({
      gitDir: server.gitDir,
      bundle: STANDIN,
      policy: server.policyFile,
    });
    assert.equal(first.bare, true);
    assert.ok(first.actions.some((a) => a.startsWith('installed') && a.endsWith('pre-receive')));
    assert.ok(first.actions.includes('set receive.advertisePushOptions = true'));
    const cfg = async (k: string) => (await server.git(['config', '--get', k])).stdout.trim();
    assert.equal(await cfg('breakglass.bundle'), STANDIN);
    assert.equal(await cfg('breakglass.node'), process.execPath);
    assert.equal(await cfg('breakglass.policy'), server.policyFile);
    assert.equal(await cfg('receive.advertisePushOptions'), 'true');
    const text = await readFile(join(server.gitDir, 'hooks/pre-receive'), 'utf8');
    assert.equal(text, shimText('pre-receive', { bundle: STANDIN, node: process.execPath }));

    const second = await installHooks({ gitDir: server.gitDir, bundle: STANDIN });
    assert.deepEqual(second.actions, [
      `${join(server.gitDir, 'hooks/pre-receive')} is up to date`,
      `${join(server.gitDir, 'hooks/post-receive')} is up to date`,
      `${join(server.gitDir, 'hooks/reference-transaction')} is up to date`,
      `policy stays pinned to ${server.policyFile}`,
    ]);
  });

  it('refuses a policy the hook would reject, and a directory that is no repository', async () => {
    const bad = join(server.root, 'bad.yml');
    await writeFile(bad, 'version: 1\nrepository: [\n');
    await assert.rejects(installHooks({ gitDir: server.gitDir, bundle: STANDIN, policy: bad }), {
      code: 'POLICY_INVALID',
    });
    await assert.rejects(installHooks({ gitDir: server.root, bundle: STANDIN }), { code: 'USAGE' });
  });

  it('refuses a foreign hook unless --chain or --force, and chains it with stdin', async () => {
    const hook = join(server.gitDir, 'hooks/pre-receive');
    const foreign = `#!/bin/sh\nwhile read old new ref; do echo "chained saw $ref" >&2; [ "$ref" != refs/heads/frozen ] || { echo "frozen by the old hook" >&2; exit 7; }; done\n`;
    await writeFile(hook, foreign);
    await chmod(hook, 0o755);
    await assert.rejects(installHooks({ gitDir: server.gitDir, bundle: STANDIN }), (e: Error) => {
      assert.match(e.message, /already exists and is not a git-breakglass hook/);
      return true;
    });
    assert.equal(await readFile(hook, 'utf8'), foreign, 'a refusal changes nothing');

    const r = await installHooks({ gitDir: server.gitDir, bundle: STANDIN, chain: true });
    assert.ok(
      r.actions.some((a) =>
        a.includes(`kept the existing pre-receive hook as ${hook}${CHAINED_SUFFIX}`),
      ),
    );
    assert.equal(await readFile(hook + CHAINED_SUFFIX, 'utf8'), foreign);
    const again = await installHooks({ gitDir: server.gitDir, bundle: STANDIN });
    assert.ok(again.actions.includes(`${hook}${CHAINED_SUFFIX} stays chained (runs first)`));

    const alice = await server.clone('alice');
    await alice.commit('a.txt', 'a\n');
    const ok = await alice.push(['HEAD:refs/heads/topic']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /chained saw refs\/heads\/topic/);
    const pre = await log(server, 'pre-receive');
    assert.match(
      String(pre.at(-1)!.input),
      / refs\/heads\/topic\n$/,
      'our hook got the same stdin',
    );

    const frozen = await alice.push(['HEAD:refs/heads/frozen']);
    assert.notEqual(frozen.code, 0);
    assert.match(frozen.stderr, /frozen by the old hook/);
    assert.match(frozen.stderr, /the chained hook .* refused the push \(exit 7\)/);
    assert.equal(await server.ref('refs/heads/frozen'), null);

    // --force replaces a foreign hook and keeps a copy.
    await rename(hook + CHAINED_SUFFIX, hook);
    const forced = await installHooks({ gitDir: server.gitDir, bundle: STANDIN, force: true });
    assert.ok(forced.actions.some((a) => a.startsWith('replaced the existing pre-receive hook')));
    assert.equal(await readFile(hook + BACKUP_SUFFIX, 'utf8'), foreign);
    assert.match(await readFile(hook, 'utf8'), /git-breakglass hook shim/);
  });
});

describe('fail closed', () => {
  let server: TestServer;
  before(async () => {
    server = await TestServer.create({ bundle: STANDIN });
  });
  after(async () => {
    await server?.close();
  });

  it('refuses every push when the bundle or node is missing; post-receive never fails a push', async () => {
    const alice = await server.clone('alice');
    await alice.commit('b.txt', 'b\n');
    await server.git(['config', 'breakglass.bundle', join(server.root, 'gone.js')]);
    let r = await alice.push(['HEAD:refs/heads/topic']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /git-breakglass: bundle .*gone\.js is missing or unreadable/);
    assert.match(r.stderr, /refusing the push \(fail closed\)/);

    await server.git(['config', 'breakglass.bundle', STANDIN]);
    await server.git(['config', 'breakglass.node', join(server.root, 'no-node')]);
    r = await alice.push(['HEAD:refs/heads/topic']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /node at .*no-node is missing or not executable/);
    assert.equal(await server.ref('refs/heads/topic'), null);

    await server.git(['config', 'breakglass.node', process.execPath]);
    // The stand-in fails post-receive when asked (file:// passes the variable through).
    r = await run('git', ['push', alice.url, 'HEAD:refs/heads/topic2'], {
      cwd: alice.dir,
      env: { ...alice.env, STANDIN_POST_FAIL: '1' },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /post-receive failed; pending events stay in the journal/);
    assert.notEqual(await server.ref('refs/heads/topic2'), null);
  });
});
