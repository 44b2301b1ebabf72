import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { pusherFor, resolveLogin, parseIdentityMode } from '../../src/server/identity.ts';
import { parsePushOptions, parseUpdateLines, readBounded } from '../../src/server/push-input.ts';
import { testPolicy } from '../helpers/fixtures.ts';

const policy = testPolicy();

test('identity: platform variables in order, then the Unix user', () => {
  assert.deepEqual(resolveLogin({ GL_USERNAME: 'alice', REMOTE_USER: 'bob' }, 'auto'), {
    login: 'alice',
    source: 'GL_USERNAME',
  });
  assert.deepEqual(
    resolveLogin({ GITHUB_USER_LOGIN: 'alice-gh' }, 'auto').source,
    'GITHUB_USER_LOGIN',
  );
  assert.deepEqual(resolveLogin({ GITEA_PUSHER_NAME: 'x' }, 'auto').source, 'GITEA_PUSHER_NAME');
  assert.deepEqual(resolveLogin({ GL_USER: 'x' }, 'auto').source, 'GL_USER');
  assert.deepEqual(resolveLogin({ REMOTE_USER: 'x' }, 'auto').source, 'REMOTE_USER');
  assert.deepEqual(resolveLogin({}, 'auto'), { login: os.userInfo().username, source: 'unix' });
  // unix ignores platform variables; none knows nobody.
  assert.equal(resolveLogin({ GL_USERNAME: 'alice' }, 'unix').source, 'unix');
  assert.deepEqual(pusherFor(resolveLogin({ GL_USERNAME: 'alice' }, 'none'), policy), {
    known: false,
  });
});

test('identity: logins map to principals; a malformed login is known but matches nobody', () => {
  assert.deepEqual(pusherFor(resolveLogin({ GITHUB_USER_LOGIN: 'alice-gh' }, 'auto'), policy), {
    known: true,
    login: 'alice-gh',
    principal: 'alice',
  });
  assert.deepEqual(pusherFor(resolveLogin({ GL_USERNAME: 'zed' }, 'auto'), policy), {
    known: true,
    login: 'zed',
    principal: undefined,
  });
  for (const bad of ['alice\nBreak-glass-Pusher: bob', 'a b', 'x'.repeat(101), '-flag']) {
    const r = resolveLogin({ GL_USERNAME: bad, REMOTE_USER: 'alice' }, 'auto');
    assert.equal(r.source, 'invalid', JSON.stringify(bad));
    const p = pusherFor(r, policy);
    assert.equal(p.known && p.principal, undefined);
  }
  assert.equal(parseIdentityMode('auto'), 'auto');
  assert.equal(parseIdentityMode(undefined), 'auto');
  assert.equal(parseIdentityMode('none'), 'none');
  assert.equal(parseIdentityMode('nobody'), null);
});

test('push input: strict lines, bounded size and count', async () => {
  const a = 'a'.repeat(40);
  const z = '0'.repeat(40);
  assert.deepEqual(parseUpdateLines(`${z} ${a} refs/heads/main\n`), [
    { oldSha: z, newSha: a, ref: 'refs/heads/main' },
  ]);
  for (const bad of [
    `${z} ${a}\n`,
    `${z} ${a} refs/heads/ma in\n`,
    `${z} ${'b'.repeat(64)} refs/heads/main\n`,
    `${z} ${a} refs/heads/main\n${z} ${a} refs/heads/main\n`,
  ]) {
    assert.throws(() => parseUpdateLines(bad), { code: 'HOOK_FAILED' }, JSON.stringify(bad));
  }
  for (const ref of ['refs/heads/../x', 'HEAD', `refs/heads/release/${'x'.repeat(250)}`]) {
    assert.throws(() => parseUpdateLines(`${z} ${a} ${ref}\n`), { code: 'REF_INVALID' }, ref);
  }
  const many = `${z} ${a} refs/heads/x\n`.repeat(10_001);
  assert.throws(() => parseUpdateLines(many), { code: 'INPUT_TOO_LARGE' });
  await assert.rejects(readBounded(Buffer.alloc(1024 * 1024 + 1)), { code: 'INPUT_TOO_LARGE' });
});

test('push options: only breakglass=<id> counts; malformed ones are PUSH_OPTION_INVALID', () => {
  const env = (...opts: string[]) => ({
    GIT_PUSH_OPTION_COUNT: String(opts.length),
    ...Object.fromEntries(opts.map((o, i) => [`GIT_PUSH_OPTION_${i}`, o])),
  });
  assert.deepEqual(parsePushOptions({}), []);
  assert.deepEqual(
    parsePushOptions(
      env('ci.skip', 'breakglass=20261129T031200Z-7f3a9c', 'breakglass=20261129T031200Z-7f3a9c'),
    ),
    ['20261129T031200Z-7f3a9c'],
  );
  for (const e of [
    env('breakglass=nope'),
    env('breakglass='),
    env('breakglass=20261129T031200Z-7f3a9c/../x'),
    env('x'.repeat(2000)),
    { GIT_PUSH_OPTION_COUNT: '-1' },
    { GIT_PUSH_OPTION_COUNT: '101' },
  ]) {
    assert.throws(() => parsePushOptions(e), { code: 'PUSH_OPTION_INVALID' });
  }
});
