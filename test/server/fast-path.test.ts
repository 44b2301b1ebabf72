// The fast path's cache rules (src/server/fast-path.ts, FP1-FP4), in-process against real
// repositories and a real git behind a wrapper that logs every git process: a warm cache decides
// with no process at all, and every change to what the settings or the policy were read from
// (a config file, an included file, the variables that choose the files, HEAD's branch) is
// noticed. `now` is passed in: a `now` some seconds ahead makes files just written count as
// settled (FP2's racy window), so a test can change them again and see the change detected.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  branchCommit,
  CACHE_FILE,
  fastPreReceive,
  postReceiveIdle,
  RACY_MS,
  writeFastPathCache,
  type FastResult,
} from '../../src/server/fast-path.ts';

const ZERO = '0'.repeat(40);
const ONE = '1'.repeat(40);
const PROTECTED = ['refs/heads/main', 'refs/heads/release/*'];

describe('fast path cache (FP1-FP4)', () => {
  let root: string;
  let gitDir: string;
  let home: string;
  let log: string;
  let env: NodeJS.ProcessEnv;
  let policyFile: string;

  const git = (...args: string[]) =>
    execFileSync('git', ['--git-dir', gitDir, ...args], { env, encoding: 'utf8' }).trim();
  const gitCalls = () =>
    fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
  const later = () => Date.now() + RACY_MS + 1000;
  const push = (ref: string, now = later()) =>
    fastPreReceive(gitDir, env, Buffer.from(`${ZERO} ${ONE} ${ref}\n`), now);
  /** One push through the fast path, as the hook entry runs it: a miss writes the cache. */
  async function hook(ref: string, now = later()): Promise<FastResult> {
    const r = await push(ref, now);
    if (!r.decided && r.cacheMiss) writeFastPathCache(gitDir, r.cacheMiss, () => PROTECTED);
    return r;
  }

  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'bg-fastpath-'));
    home = path.join(root, 'home');
    fs.mkdirSync(home);
    const bin = path.join(root, 'bin');
    fs.mkdirSync(bin);
    log = path.join(root, 'git.log');
    const real = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
    fs.writeFileSync(
      path.join(bin, 'git'),
      `#!/bin/sh\necho "$*" >> '${log}'\nexec '${real}' "$@"\n`,
      { mode: 0o755 },
    );
    env = {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: home,
      GIT_CONFIG_NOSYSTEM: '1',
      LANG: 'C',
    };
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  beforeEach(() => {
    gitDir = fs.mkdtempSync(path.join(root, 'repo-'));
    execFileSync('git', ['init', '-q', '--bare', gitDir], { env });
    policyFile = path.join(gitDir, 'policy.yml');
    fs.writeFileSync(policyFile, 'pinned policy v1\n');
    git('config', 'breakglass.policy', policyFile);
    fs.rmSync(log, { force: true });
  });

  /** Fills the cache and clears the git log; the next unprotected push is a hit. */
  async function warm(): Promise<void> {
    await hook('refs/heads/warm-1');
    assert.equal((await hook('refs/heads/warm-2')).decided, true, 'warm');
    fs.rmSync(log, { force: true });
  }

  it('a cold push goes to the full hook; once cached, pushes are decided with no git process', async () => {
    const cold = await hook('refs/heads/feature/a');
    assert.equal(cold.decided, false);
    assert.ok(!cold.decided && cold.cacheMiss?.config, 'settings recorded for the cache');
    assert.ok(gitCalls().some((c) => c.includes('config -z --show-origin')));
    fs.rmSync(log, { force: true });
    assert.deepEqual(await hook('refs/heads/feature/b'), { decided: true, code: 0 });
    assert.deepEqual(gitCalls(), [], 'a hit starts no git process');
    // A ref the cached policy protects is the full hook's, cache or not.
    assert.deepEqual(await push('refs/heads/main'), { decided: false });
    assert.deepEqual(await push('refs/heads/release/1.0'), { decided: false });
  });

  it('never decides guarded refs, replace refs, push options or malformed input', async () => {
    await warm();
    for (const ref of [
      'refs/breakglass/tickets/x',
      'refs/notes/breakglass',
      `refs/replace/${ONE}`,
    ]) {
      assert.deepEqual(await push(ref), { decided: false }, ref);
    }
    const withOption = await fastPreReceive(
      gitDir,
      { ...env, GIT_PUSH_OPTION_COUNT: '1', GIT_PUSH_OPTION_0: 'breakglass=x' },
      Buffer.from(`${ZERO} ${ONE} refs/heads/feature/o\n`),
      later(),
    );
    assert.deepEqual(withOption, { decided: false });
    for (const input of [
      '',
      'garbage\n',
      `${ZERO} ${ONE} refs/heads/a..b\n`,
      'x'.repeat(2 << 20),
    ]) {
      assert.deepEqual(
        await fastPreReceive(gitDir, env, Buffer.from(input), later()),
        { decided: false },
        input.slice(0, 40),
      );
    }
  });

  it('FP2: a setting changed in the repository config is read again', async () => {
    await warm();
    const other = path.join(gitDir, 'other.yml');
    fs.writeFileSync(other, 'another policy\n');
    git('config', 'breakglass.policy', other);
    const r = await push('refs/heads/feature/c');
    assert.equal(r.decided, false);
    assert.ok(!r.decided && r.cacheMiss?.key.includes(other), 'the new policy file is the key');
    assert.ok(gitCalls().some((c) => c.includes('config -z --show-origin')));
    git('config', 'breakglass.identity', 'bogus');
    assert.deepEqual(
      await push('refs/heads/feature/d'),
      { decided: false },
      'bad setting: full hook',
    );
  });

  it('FP2: a global config file that appears later is noticed', async () => {
    await warm();
    fs.writeFileSync(path.join(home, '.gitconfig'), '[breakglass]\n\tidentity = bogus\n');
    try {
      assert.deepEqual(await push('refs/heads/feature/e'), { decided: false });
    } finally {
      fs.rmSync(path.join(home, '.gitconfig'));
    }
  });

  it('FP2: the variables that choose the files are part of the key', async () => {
    await warm();
    const global = path.join(root, 'global.gitconfig');
    fs.writeFileSync(global, '[breakglass]\n\ttimeout = 9999\n');
    const r = await fastPreReceive(
      gitDir,
      { ...env, GIT_CONFIG_GLOBAL: global },
      Buffer.from(`${ZERO} ${ONE} refs/heads/feature/f\n`),
      later(),
    );
    assert.deepEqual(r, { decided: false }, 'the other global file has a bad timeout');
  });

  it('FP2: a config file changed inside the racy window is not cached', async () => {
    // beforeEach just wrote the config: with the real clock it is too fresh to fingerprint.
    const r = await hook('refs/heads/feature/g', Date.now());
    assert.ok(!r.decided && r.cacheMiss, 'a miss');
    assert.equal(r.cacheMiss?.config, undefined, 'settings not recorded');
    fs.rmSync(log, { force: true });
    assert.deepEqual(await push('refs/heads/feature/h', Date.now()), { decided: true, code: 0 });
    assert.ok(
      gitCalls().some((c) => c.includes('config -z')),
      'git read the settings again',
    );
  });

  it('FP3: with an include, the settings are read by git on every push', async () => {
    const inc = path.join(root, `include-${path.basename(gitDir)}`);
    fs.writeFileSync(inc, '[breakglass]\n\tidentity = none\n');
    git('config', 'include.path', inc);
    await hook('refs/heads/feature/i');
    fs.rmSync(log, { force: true });
    assert.deepEqual(await hook('refs/heads/feature/j'), { decided: true, code: 0 });
    assert.ok(
      gitCalls().some((c) => c.includes('config -z')),
      'git asked despite the cache',
    );
    fs.writeFileSync(inc, '[breakglass]\n\tidentity = bogus\n');
    assert.deepEqual(await push('refs/heads/feature/k'), { decided: false });
  });

  it('FP3: settings from the command line (git -c) are never cached', async () => {
    await warm();
    const cli = { ...env, GIT_CONFIG_PARAMETERS: "'breakglass.identity'='bogus'" };
    const input = Buffer.from(`${ZERO} ${ONE} refs/heads/feature/l\n`);
    assert.deepEqual(await fastPreReceive(gitDir, cli, input, later()), { decided: false });
    const benign = { ...env, GIT_CONFIG_PARAMETERS: "'user.name'='x'" };
    fs.rmSync(log, { force: true });
    const r = await fastPreReceive(gitDir, benign, input, later());
    assert.ok(!r.decided || gitCalls().some((c) => c.includes('config -z')));
    assert.ok(gitCalls().length > 0, 'git was asked');
  });

  it('FP1: a pinned policy edited in place is obeyed at once', async () => {
    await warm();
    fs.appendFileSync(policyFile, '# edited\n');
    const r = await push('refs/heads/feature/m');
    assert.ok(!r.decided && r.cacheMiss, 'a miss');
    assert.equal(r.cacheMiss?.policy.toString(), 'pinned policy v1\n# edited\n');
  });

  it('a corrupt or foreign cache file is a miss', async () => {
    await warm();
    for (const body of ['{"version":2,"key":', '[]', '{"version":1,"key":"k","protected":[]}']) {
      fs.writeFileSync(path.join(gitDir, CACHE_FILE), body);
      const r = await push('refs/heads/feature/n');
      assert.equal(r.decided, false, body);
    }
  });

  describe("FP1: an in-repository policy is keyed by the commit of HEAD's branch", () => {
    const commit = (content: string, parent?: string) => {
      const blob = execFileSync('git', ['--git-dir', gitDir, 'hash-object', '-w', '--stdin'], {
        env,
        input: content,
        encoding: 'utf8',
      }).trim();
      const sub = execFileSync('git', ['--git-dir', gitDir, 'mktree'], {
        env,
        input: `100644 blob ${blob}\tpolicy.yml\n`,
        encoding: 'utf8',
      }).trim();
      const tree = execFileSync('git', ['--git-dir', gitDir, 'mktree'], {
        env,
        input: `040000 tree ${sub}\t.breakglass\n`,
        encoding: 'utf8',
      }).trim();
      const id = {
        ...env,
        GIT_AUTHOR_NAME: 'a',
        GIT_AUTHOR_EMAIL: 'a@x',
        GIT_COMMITTER_NAME: 'a',
        GIT_COMMITTER_EMAIL: 'a@x',
      };
      return execFileSync(
        'git',
        [
          '--git-dir',
          gitDir,
          'commit-tree',
          tree,
          ...(parent ? ['-p', parent] : []),
          '-m',
          content,
        ],
        { env: id, encoding: 'utf8' },
      ).trim();
    };

    beforeEach(() => {
      git('config', '--unset', 'breakglass.policy');
      git('symbolic-ref', 'HEAD', 'refs/heads/main');
    });

    it('hits with no git process, misses when the branch moves, reads packed-refs too', async () => {
      const c1 = commit('repo policy v1\n');
      git('update-ref', 'refs/heads/main', c1);
      const cold = await hook('refs/heads/feature/p');
      assert.ok(!cold.decided && cold.cacheMiss, 'a miss');
      assert.equal(cold.cacheMiss?.policy.toString(), 'repo policy v1\n');
      assert.deepEqual(cold.cacheMiss?.source, { kind: 'repo', branch: 'refs/heads/main' });
      fs.rmSync(log, { force: true });
      assert.deepEqual(await hook('refs/heads/feature/q'), { decided: true, code: 0 });
      assert.deepEqual(gitCalls(), []);

      const c2 = commit('repo policy v2\n', c1);
      git('update-ref', 'refs/heads/main', c2);
      const moved = await hook('refs/heads/feature/r');
      assert.ok(!moved.decided && moved.cacheMiss?.policy.toString() === 'repo policy v2\n');

      git('pack-refs', '--all', '--prune');
      assert.equal(fs.existsSync(path.join(gitDir, 'refs/heads/main')), false, 'packed');
      assert.equal(branchCommit(gitDir, 'refs/heads/main'), c2);
      fs.rmSync(log, { force: true });
      assert.deepEqual(await hook('refs/heads/feature/s'), { decided: true, code: 0 });
      assert.deepEqual(gitCalls(), []);
    });

    it('branchCommit: a loose ref wins over packed-refs; symbolic or odd refs are not read', () => {
      const c1 = commit('one\n');
      const c2 = commit('two\n', c1);
      git('update-ref', 'refs/heads/main', c1);
      git('pack-refs', '--all');
      git('update-ref', 'refs/heads/main', c2);
      assert.equal(branchCommit(gitDir, 'refs/heads/main'), c2);
      assert.equal(branchCommit(gitDir, 'refs/heads/nothing'), null);
      git('symbolic-ref', 'refs/heads/alias', 'refs/heads/main');
      assert.equal(branchCommit(gitDir, 'refs/heads/alias'), null);
      fs.writeFileSync(path.join(gitDir, 'commondir'), '..\n');
      assert.equal(branchCommit(gitDir, 'refs/heads/main'), null, 'a worktree: not ours to read');
    });

    it('an unborn or detached HEAD goes to the full hook', async () => {
      assert.deepEqual(await hook('refs/heads/feature/t'), { decided: false }, 'unborn');
      git('update-ref', 'refs/heads/main', commit('v\n'));
      git('update-ref', '--no-deref', 'HEAD', git('rev-parse', 'refs/heads/main'));
      assert.deepEqual(await hook('refs/heads/feature/u'), { decided: false }, 'detached');
    });
  });
});

describe('post-receive: nothing to do (postReceiveIdle)', () => {
  let gitDir: string;
  const put = (rel: string, body = '{}') => {
    fs.mkdirSync(path.dirname(path.join(gitDir, 'breakglass', rel)), { recursive: true });
    fs.writeFileSync(path.join(gitDir, 'breakglass', rel), body);
  };
  let root: string;
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'bg-idle-'));
  });
  beforeEach(() => {
    gitDir = fs.mkdtempSync(path.join(root, 'repo-'));
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('idle with no state at all, or with only reservations (any age) and stray temp files', () => {
    assert.equal(postReceiveIdle(gitDir), true);
    put('reservations/20261101T000000Z-abcdef/1');
    // E2: a recent use is settled by pre-receive when the ticket runs out, not swept per push.
    put('reservations/20261128T000000Z-abcdef/1');
    put('journal/pending/x.json.123.tmp');
    fs.mkdirSync(path.join(gitDir, 'breakglass/journal/processing'), { recursive: true });
    assert.equal(postReceiveIdle(gitDir), true);
  });

  for (const [what, rel] of [
    ['a pending journal entry', 'journal/pending/20261129T115900Z-1-aa.json'],
    ['an entry in processing', 'journal/processing/20261129T115900Z-1-aa~1-h-r.json'],
  ] as const) {
    it(`not idle with ${what}`, () => {
      put(rel);
      assert.equal(postReceiveIdle(gitDir), false);
    });
  }

  it('not idle when the state cannot be read (a file where a directory should be)', () => {
    put('journal', 'not a directory');
    assert.equal(postReceiveIdle(gitDir), false);
  });
});
