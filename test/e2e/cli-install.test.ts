// `bg-sign install-hooks` through the built bundle, as an admin runs it.
import assert from 'node:assert/strict';
import {
  chmod,
  copyFile,
  mkdtemp,
  readFile,
  realpath,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUNDLE, cleanEnv, run, TestServer } from '../helpers/server.ts';
import { policyYaml } from '../helpers/fixtures.ts';

describe('bg-sign install-hooks', () => {
  let root: string;
  let gitDir: string;
  const env = () => cleanEnv({ HOME: root });
  const bg = (args: string[]) =>
    run(process.execPath, [BUNDLE, ...args], { env: env(), cwd: root });
  before(async () => {
    root = await mkdtemp(join(os.tmpdir(), 'bg-install-'));
    gitDir = join(root, 'api.git');
    await run('git', ['init', '-q', '--bare', gitDir], { env: env(), check: true });
    await writeFile(join(root, 'policy.yml'), policyYaml());
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('installs, pins the policy, reports what it did, and is idempotent', async () => {
    const r = await bg(['install-hooks', gitDir, '--policy', 'policy.yml']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`installed ${gitDir}/hooks/pre-receive`));
    assert.match(r.stdout, new RegExp(`set breakglass.bundle = ${BUNDLE}`));
    assert.match(r.stdout, new RegExp(`set breakglass.policy = ${root}/policy.yml`));
    assert.match(r.stdout, /set receive.advertisePushOptions = true/);

    const again = await bg(['install-hooks', gitDir, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const report = JSON.parse(again.stdout) as { actions: string[]; bare: boolean };
    assert.equal(report.bare, true);
    assert.ok(
      report.actions.every((a) => /up to date|stays pinned/.test(a)),
      report.actions.join('\n'),
    );
  });

  it('refuses a foreign hook with a clear message and exit 2, no stack trace', async () => {
    const hook = join(gitDir, 'hooks/post-receive');
    await writeFile(hook, '#!/bin/sh\necho mail the team\n');
    await chmod(hook, 0o755);
    const r = await bg(['install-hooks', gitDir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /already exists and is not a git-breakglass hook/);
    assert.match(r.stderr, /--chain/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const chained = await bg(['install-hooks', gitDir, '--chain']);
    assert.equal(chained.code, 0, chained.stderr);
    assert.equal(await readFile(`${hook}.chained`, 'utf8'), '#!/bin/sh\necho mail the team\n');
  });

  it('records the real bundle when run through a symlink on PATH', async () => {
    const other = join(root, 'other.git');
    await run('git', ['init', '-q', '--bare', other], { env: env(), check: true });
    const link = join(root, 'bg-sign');
    await symlink(BUNDLE, link);
    const r = await run(link, ['install-hooks', other], { env: env(), cwd: root });
    assert.equal(r.code, 0, r.stderr);
    const cfg = await run('git', ['--git-dir', other, 'config', 'breakglass.bundle'], {
      env: env(),
    });
    assert.equal(cfg.stdout.trim(), await realpath(BUNDLE));
  });

  it("E3: names a ref in the recorder's way and exits 1; after the fix creates the notes ref", async () => {
    const squatted = join(root, 'squatted.git');
    const g = (args: string[]) =>
      run('git', ['--git-dir', squatted, ...args], { env: env(), check: true });
    await run('git', ['init', '-q', '--bare', squatted], { env: env(), check: true });
    const tree = (await g(['hash-object', '-t', 'tree', '-w', '/dev/null'])).stdout.trim();
    const c = (
      await run('git', ['--git-dir', squatted, 'commit-tree', tree, '-m', 'squat'], {
        env: {
          ...env(),
          GIT_AUTHOR_NAME: 'm',
          GIT_AUTHOR_EMAIL: 'm@x',
          GIT_COMMITTER_NAME: 'm',
          GIT_COMMITTER_EMAIL: 'm@x',
        },
        check: true,
      })
    ).stdout.trim();
    await g(['update-ref', 'refs/breakglass', c]);
    const r = await bg(['install-hooks', squatted]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /refs\/breakglass keeps the server from recording break-glass pushes/);
    assert.match(r.stderr, /update-ref -d refs\/breakglass/);
    assert.match(r.stderr, /refused \(RECORDING_BLOCKED\) until the problem above is fixed/);
    assert.match(r.stdout, /installed .*pre-receive/, 'the hooks are in place (failing closed)');

    await g(['update-ref', '-d', 'refs/breakglass']);
    const fixed = await bg(['install-hooks', squatted]);
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.match(fixed.stdout, /created refs\/notes\/breakglass \(no notes yet\)/);
    const log = await g(['log', '--format=%s', 'refs/notes/breakglass']);
    assert.equal(log.stdout.trim(), 'git-breakglass: audit notes start here');
  });

  it('says so when the path is not a repository', async () => {
    const r = await bg(['install-hooks', join(root, 'nope')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /is not a git repository/);
  });

  it(
    "passes git's dubious-ownership refusal and its safe.directory fix through",
    {
      skip:
        process.getuid?.() === 0 ? false : 'needs root to give the repository to another account',
    },
    async () => {
      const other = join(root, 'owned-by-nobody.git');
      await run('git', ['init', '-q', '--bare', other], { env: env(), check: true });
      await run('chown', ['-R', 'nobody', other], { check: true });
      const r = await bg(['install-hooks', other]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /detected dubious ownership in repository at/);
      assert.doesNotMatch(r.stderr, /is not a git repository/);
      assert.match(r.stderr, new RegExp(`git config --global --add safe\\.directory ${other}`));
      assert.match(r.stderr, /run install-hooks as the account that owns/);
    },
  );
});

describe('a server with only some of the built files', () => {
  /** A server whose hooks run copies of `files` (from dist/) in a folder of their own. */
  async function withCopies(
    files: readonly string[],
    fn: (server: TestServer, dir: string) => Promise<void>,
  ): Promise<void> {
    const dir = await mkdtemp(join(os.tmpdir(), 'bg-only-'));
    for (const f of files) await copyFile(join(BUNDLE, '..', f), join(dir, f));
    const server = await TestServer.create(
      files.includes('bg-sign.js') ? { bundle: join(dir, 'bg-sign.js') } : {},
    );
    try {
      await fn(server, dir);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  }

  for (const files of [['bg-sign.js'], ['bg-sign.js', 'bg-hook.cjs']]) {
    it(`decides pushes with ${files.join(' and ')} (the shims run bg-sign.js)`, () =>
      withCopies(files, async (server) => {
        const alice = await server.clone('alice');
        await alice.commit('f.txt', 'x\n');
        const r = await alice.push(['HEAD:main']);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /TICKET_REQUIRED/);
        const ok = await alice.push(['HEAD:refs/heads/topic']);
        assert.equal(ok.code, 0, ok.stderr);
      }));
  }

  it('bg-hook.cjs configured alone fails closed when it needs the full hook', () =>
    withCopies(['bg-hook.cjs'], async (server, dir) => {
      await server.git(['config', 'breakglass.bundle', join(dir, 'bg-hook.cjs')]);
      const alice = await server.clone('alice');
      await alice.commit('f.txt', 'x\n');
      const before = await server.ref('refs/heads/topic');
      const r = await alice.push(['HEAD:refs/heads/topic']);
      assert.notEqual(r.code, 0, 'no cache yet: the full hook is needed and missing');
      assert.match(r.stderr, /hook failed/);
      assert.equal(await server.ref('refs/heads/topic'), before);
    }));
});
