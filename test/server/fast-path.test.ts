// The fast path (src/server/fast-path.ts) in-process against real repositories and a real git
// behind a wrapper that logs every git process: with the settings the shim handed over and a
// warm cache it decides with no process at all; the cache (FP1) is used only for the policy it
// was made from; the settings are exactly what git reads (includes, `git -c`), with no cache.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { settingsFromShim } from '../../src/engine/triage.ts';
import { readServerSettings } from '../../src/server/config.ts';
import {
  branchCommit,
  CACHE_FILE,
  fastPreReceive,
  postReceiveIdle,
  writeFastPathCache,
  type FastResult,
} from '../../src/server/fast-path.ts';

const ZERO = '0'.repeat(40);
const ONE = '1'.repeat(40);
const PROTECTED = ['refs/heads/main', 'refs/heads/release/*'];

describe('fast path (triage from the shim settings and the FP1 cache)', () => {
  let root: string;
  let gitDir: string;
  let home: string;
  let log: string;
  let env: NodeJS.ProcessEnv;
  let policyFile: string;

  const git = (...args: string[]) =>
    execFileSync('git', ['--git-dir', gitDir, ...args], { env, encoding: 'utf8' }).trim();
  /** The git processes the fast path started (the test's own git calls are not its). */
  const gitCalls = () =>
    fs.existsSync(log)
      ? fs
          .readFileSync(log, 'utf8')
          .split('\n')
          .filter((c) => c.startsWith('--no-replace-objects '))
      : [];
  /** What the hook shim hands over: its one `git config`, then git's exit status. */
  const shimSettings = (e: NodeJS.ProcessEnv = env) =>
    execFileSync('sh', ['-c', `git config --get-regexp '^breakglass\\.' 2>/dev/null; echo "$?"`], {
      env: { ...e, GIT_DIR: gitDir },
      encoding: 'utf8',
    }).replace(/\n+$/, ''); // as $(...) in the shim
  const handed = (e: NodeJS.ProcessEnv = env) => settingsFromShim(shimSettings(e));
  const push = (ref: string, settings = handed(), e = env) =>
    fastPreReceive(gitDir, e, Buffer.from(`${ZERO} ${ONE} ${ref}\n`), settings);
  /** One push through the fast path, as the hook entry runs it: a miss writes the cache. */
  async function hook(ref: string, settings = handed()): Promise<FastResult> {
    const r = await push(ref, settings);
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
    const settings = handed();
    fs.rmSync(log, { force: true });
    const cold = await hook('refs/heads/feature/a', settings);
    assert.ok(!cold.decided && cold.cacheMiss, 'a miss, with what the cache needs');
    assert.deepEqual(gitCalls(), [], 'settings handed over, the pinned policy read from its file');
    assert.deepEqual(await hook('refs/heads/feature/b', settings), { decided: true, code: 0 });
    assert.deepEqual(gitCalls(), [], 'a hit starts no git process');
    // A ref the cached policy protects is the full hook's.
    assert.deepEqual(await push('refs/heads/main'), { decided: false });
    assert.deepEqual(await push('refs/heads/release/1.0'), { decided: false });
  });

  it('never decides guarded, replace or recording-blocking refs, push options or malformed input', async () => {
    await warm();
    for (const ref of [
      'refs/breakglass/tickets/x',
      'refs/notes/breakglass',
      `refs/replace/${ONE}`,
      'refs/notes/breakglass/squat',
      'refs/notes',
      'refs/breakglass',
    ]) {
      assert.deepEqual(await push(ref), { decided: false }, ref);
    }
    const withOption = await fastPreReceive(
      gitDir,
      { ...env, GIT_PUSH_OPTION_COUNT: '1', GIT_PUSH_OPTION_0: 'breakglass=x' },
      Buffer.from(`${ZERO} ${ONE} refs/heads/feature/o\n`),
      handed(),
    );
    assert.deepEqual(withOption, { decided: false });
    for (const input of [
      '',
      'garbage\n',
      `${ZERO} ${ONE} refs/heads/a..b\n`,
      'x'.repeat(2 << 20),
    ]) {
      const r = await fastPreReceive(gitDir, env, Buffer.from(input), handed());
      // Empty input is nothing to judge; everything else goes to the full hook.
      assert.deepEqual(r, input === '' ? { decided: true, code: 0 } : { decided: false });
    }
  });

  it('settings: what the shim read is used as is; a bad value goes to the full hook', async () => {
    await warm();
    git('config', 'breakglass.identity', 'bogus');
    assert.deepEqual(await push('refs/heads/feature/c'), { decided: false });
    git('config', 'breakglass.identity', 'none');
    git('config', 'breakglass.timeout', '99999');
    assert.deepEqual(await push('refs/heads/feature/d'), { decided: false });
    git('config', 'breakglass.timeout', '30s');
    assert.deepEqual(await push('refs/heads/feature/e'), { decided: true, code: 0 });
    const other = path.join(gitDir, 'other.yml');
    fs.writeFileSync(other, 'another policy\n');
    git('config', 'breakglass.policy', other);
    const r = await push('refs/heads/feature/f');
    assert.ok(!r.decided && r.cacheMiss?.key.includes(other), 'the new policy file is the key');
    assert.deepEqual(gitCalls(), [], 'no git process: the shim read the settings');
  });

  it('settings: without a hand-over (an older shim) git is asked on every push', async () => {
    await warm();
    assert.deepEqual(await hook('refs/heads/feature/g', null), { decided: true, code: 0 });
    assert.equal(gitCalls().filter((c) => c.includes('config -z --get-regexp')).length, 1);
    git('config', 'breakglass.identity', 'bogus');
    assert.deepEqual(await push('refs/heads/feature/h', null), { decided: false });
  });

  it('settings: the hand-over is exactly what git reads (includes, git -c, GIT_CONFIG_*)', async () => {
    const inc = path.join(root, `include-${path.basename(gitDir)}`);
    fs.writeFileSync(inc, '[breakglass]\n\tidentity = none\n\ttimeout = 45\n');
    git('config', 'include.path', inc);
    fs.writeFileSync(path.join(home, '.gitconfig'), '[breakglass]\n\ttimeout = 50\n');
    try {
      const variants: NodeJS.ProcessEnv[] = [
        env,
        { ...env, GIT_CONFIG_PARAMETERS: "'breakglass.identity'='unix'" },
        {
          ...env,
          GIT_CONFIG_COUNT: '1',
          GIT_CONFIG_KEY_0: 'breakglass.x',
          GIT_CONFIG_VALUE_0: 'a b',
        },
      ];
      for (const e of variants) {
        const fromGit = await readServerSettings({ gitDir, env: e });
        assert.deepEqual(handed(e), fromGit, JSON.stringify(e));
      }
      // A value spanning lines can't be told apart from two entries: the hook asks git instead.
      git('config', 'breakglass.note', 'one\ntwo');
      assert.equal(handed(), null);
    } finally {
      fs.rmSync(path.join(home, '.gitconfig'));
    }
  });

  it('settingsFromShim: strict, bounded; git failing or odd text means "ask git"', () => {
    assert.deepEqual(settingsFromShim('1'), []);
    assert.deepEqual(settingsFromShim('breakglass.identity none\nbreakglass.flag\n0'), [
      ['breakglass.identity', 'none'],
      ['breakglass.flag', ''],
    ]);
    for (const text of [
      '',
      '0',
      '128',
      'breakglass.identity none\n3',
      'breakglass.identity none\n1',
      'breakglass.sub.key v\n0',
      'user.name x\n0',
      'breakglass.identity none\ncontinued\n0',
      `breakglass.policy ${'x'.repeat(70_000)}\n0`,
    ]) {
      assert.equal(settingsFromShim(text), null, text.slice(0, 40));
    }
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
    for (const body of ['{"version":3,"key":', '[]', '{"version":2,"key":"k","protected":[]}']) {
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
