// Server settings (src/server/config.ts): git config > environment (BREAKGLASS_*) > built-in
// default, bad values refused with where they came from; and forge.ts's reading of what a
// forge tells its hooks about a push it made itself (a web-UI merge).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BreakglassError } from '../../src/errors.ts';
import { configFromEnv } from '../../src/server/config-env.ts';
import { DEFAULT_TIMEOUT_MS, parseServerConfig } from '../../src/server/config.ts';
import { forgeOrigin } from '../../src/server/forge.ts';

const git = (o: Record<string, string> = {}) => new Map(Object.entries(o));

describe('server settings: git config > environment > default', () => {
  it('uses the built-in defaults when nothing is set', () => {
    assert.deepEqual(parseServerConfig(git(), {}), {
      policyFile: undefined,
      identity: 'auto',
      timeoutMs: DEFAULT_TIMEOUT_MS,
    });
  });

  it('takes BREAKGLASS_POLICY, _IDENTITY, _TIMEOUT where git config has nothing', () => {
    const env = {
      BREAKGLASS_POLICY: '/etc/breakglass/api.yml',
      BREAKGLASS_IDENTITY: 'none',
      BREAKGLASS_TIMEOUT: '4s',
    };
    assert.deepEqual(parseServerConfig(git(), env), {
      policyFile: '/etc/breakglass/api.yml',
      identity: 'none',
      timeoutMs: 4000,
    });
    assert.equal(configFromEnv(env), true);
    assert.equal(configFromEnv({ BREAKGLASS_POLICY: '' }), false);
  });

  it('lets git config win over the environment, key by key', () => {
    const c = parseServerConfig(
      git({ 'breakglass.policy': '/srv/pinned.yml', 'breakglass.timeout': '9' }),
      { BREAKGLASS_POLICY: '/etc/env.yml', BREAKGLASS_TIMEOUT: '4s', BREAKGLASS_IDENTITY: 'unix' },
    );
    assert.equal(c.policyFile, '/srv/pinned.yml');
    assert.equal(c.timeoutMs, 9000);
    assert.equal(c.identity, 'unix', 'identity is not in git config: the environment gives it');
  });

  it('refuses a bad value from the environment and names the variable (fail closed)', () => {
    assert.throws(
      () => parseServerConfig(git(), { BREAKGLASS_IDENTITY: 'everyone' }),
      (e: unknown) =>
        e instanceof BreakglassError &&
        e.code === 'HOOK_FAILED' &&
        /environment variable BREAKGLASS_IDENTITY is "everyone"/.test(e.message),
    );
    assert.throws(
      () => parseServerConfig(git(), { BREAKGLASS_TIMEOUT: '0' }),
      (e: unknown) =>
        e instanceof BreakglassError && /BREAKGLASS_TIMEOUT must be 1s\.\.10m/.test(e.message),
    );
    assert.throws(
      () => parseServerConfig(git({ 'breakglass.identity': 'x' }), {}),
      (e: unknown) =>
        e instanceof BreakglassError && /git config breakglass\.identity is "x"/.test(e.message),
    );
  });
});

describe('forge origin: pushes a forge makes for someone', () => {
  it('GHES: GITHUB_VIA, with the pull request when GitHub names it', () => {
    assert.equal(
      forgeOrigin({
        GITHUB_VIA: 'pull request merge button',
        GITHUB_PULL_REQUEST_HEAD: 'alice:fix',
        GITHUB_PULL_REQUEST_BASE: 'main',
        GITHUB_PULL_REQUEST_AUTHOR_LOGIN: 'alice',
      }),
      'GitHub Enterprise: pull request merge button; pull request alice:fix -> main by alice',
    );
    assert.equal(forgeOrigin({ GITHUB_VIA: 'merge api' }), 'GitHub Enterprise: merge api');
  });

  it('GitLab: GL_PROTOCOL=web, not ssh or http', () => {
    assert.match(forgeOrigin({ GL_PROTOCOL: 'web' }) ?? '', /^GitLab web UI/);
    assert.equal(forgeOrigin({ GL_PROTOCOL: 'ssh' }), null);
    assert.equal(forgeOrigin({ GL_PROTOCOL: 'http' }), null);
  });

  it('Gitea/Forgejo: a non-zero GITEA_PR_ID; 0 and junk are plain pushes', () => {
    assert.equal(
      forgeOrigin({ GITEA_PR_ID: '42' }),
      'Gitea/Forgejo: merge of pull request id 42 in the web UI',
    );
    assert.equal(forgeOrigin({ GITEA_PR_ID: '0' }), null);
    assert.equal(forgeOrigin({ GITEA_PR_ID: '4; rm -rf' }), null);
    assert.equal(forgeOrigin({}), null);
  });

  it('prints forge text on one line, bounded, without terminal controls', () => {
    const via = forgeOrigin({ GITHUB_VIA: `merge\u001b[31m button\n${'x'.repeat(500)}` })!;
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(via, /[\u0000-\u001f]/);
    assert.ok(via.length < 120, via);
  });
});
