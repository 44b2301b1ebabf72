// Hosts with no git config for the hooks (GHES, GitLab's Gitaly), as the forge recipes of
// docs/server-setup.md set them up: the server bundle's shims copied in as they are, settings
// baked into them (npm run dist:server -- --policy ...) or given by BREAKGLASS_* variables, and
// a push the forge makes for someone (a web-UI merge) named in the banner.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { policyYaml } from '../helpers/fixtures.ts';
import { cleanEnv, REPO_ROOT, run, TestServer, type DevClone } from '../helpers/server.ts';

describe('forge hooks: the server bundle shims with baked settings, no git config', () => {
  let out: string;
  let server: TestServer;
  let alice: DevClone;
  before(async () => {
    out = await mkdtemp(join(os.tmpdir(), 'bg-forge-'));
    // In the repository, a policy that protects main only; baked into the shims, one that also
    // protects release/*: a hook that read the wrong one would let release/* through.
    const inRepo = policyYaml().replace(
      '"refs/heads/main", "refs/heads/release/*"',
      '"refs/heads/main"',
    );
    assert.notEqual(inRepo, policyYaml());
    server = await TestServer.create({ noHooks: true, pin: false, policy: inRepo });
    await writeFile(server.policyFile, policyYaml());
    const opt = join(out, 'git-breakglass');
    const r = await run(
      process.execPath,
      [
        'scripts/dist-server.mjs',
        '--out',
        out,
        '--prefix',
        opt,
        '--node',
        process.execPath,
        '--policy',
        server.policyFile,
        '--timeout',
        '4s',
      ],
      { cwd: REPO_ROOT, env: cleanEnv() },
    );
    assert.equal(r.code, 0, r.stderr);
    // What the GitLab/GHES recipes do: copy the shims, set nothing in git config but push
    // options (GitLab advertises them itself; here git must be told).
    for (const hook of ['pre-receive', 'post-receive', 'reference-transaction']) {
      await copyFile(join(opt, 'hooks', hook), join(server.gitDir, 'hooks', hook));
    }
    await server.git(['config', 'receive.advertisePushOptions', 'true']);
    alice = await server.clone('alice');
  });
  after(async () => {
    await server?.close();
    await rm(out, { recursive: true, force: true });
  });

  it('enforces the baked policy (the fast path leaves it to the full hook)', async () => {
    const cfg = await server.git(['config', '--get-regexp', '^breakglass\\.'], { check: false });
    assert.equal(cfg.stdout, '', 'no breakglass.* in git config');
    await alice.commit('fix.txt', 'hotfix\n');
    const topic = await alice.push(['HEAD:refs/heads/topic']);
    assert.equal(topic.code, 0, topic.stderr);
    for (const ref of ['main', 'refs/heads/release/9', 'refs/heads/release/9']) {
      // release/9 twice: a second push must not be waved through by a cache the first wrote.
      const r = await alice.push([`HEAD:${ref}`]);
      assert.notEqual(r.code, 0, r.stderr);
      assert.match(r.stderr, /TICKET_REQUIRED/);
      assert.match(r.stderr, new RegExp(`policy ${server.policyFile}`));
    }
  });

  it('lets BREAKGLASS_POLICY in the environment override the baked one, git config both', async () => {
    const missing = join(out, 'no-such-policy.yml');
    const env = await alice.push(['HEAD:main'], { env: { BREAKGLASS_POLICY: missing } });
    assert.notEqual(env.code, 0);
    assert.match(env.stderr, /POLICY_MISSING/);
    assert.match(env.stderr, /no-such-policy\.yml/);
    await server.git(['config', 'breakglass.policy', server.policyFile]);
    const git = await alice.push(['HEAD:main'], { env: { BREAKGLASS_POLICY: missing } });
    assert.match(git.stderr, /TICKET_REQUIRED/, 'git config wins over the environment');
    await server.git(['config', '--unset', 'breakglass.policy']);
  });

  it('names a web-UI merge in the banner (GitLab: GL_PROTOCOL=web)', async () => {
    const head = await alice.head();
    const id = await alice.makeTicket({ commits: [head] });
    assert.equal((await alice.pushTickets([id])).code, 0);
    const r = await alice.push(['HEAD:main'], { tickets: [id], env: { GL_PROTOCOL: 'web' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /BREAK-GLASS PUSH ACCEPTED/);
    assert.match(r.stderr, /via {7}GitLab web UI or API/);
    assert.match((await server.note(head)) ?? '', new RegExp(`Break-glass-Ticket: ${id}`));
  });
});
