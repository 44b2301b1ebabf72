// The hook entry's fast path (src/server/fast-path.ts) for pushes that touch nothing protected:
// a stale or broken cache, a symbolic ref or a bad push option must never let through what the
// full hook would refuse. Real pushes through the installed shims (which run dist/bg-hook.cjs,
// which loads dist/bg-hook-full.cjs when the fast path can't decide).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CACHE_FILE } from '../../src/server/fast-path.ts';
import { policyYaml } from '../helpers/fixtures.ts';
import { BUNDLE, TestServer, type DevClone } from '../helpers/server.ts';

describe('pre-receive fast path (dist/bg-hook.cjs)', () => {
  let server: TestServer;
  let alice: DevClone;
  let n = 0;
  const branch = async (ref: string, o: { tickets?: string[] } = {}) => {
    const [c] = await alice.commitsOn(server.seed, 1, `fast ${++n}`);
    return alice.push([`${c}:${ref}`], o);
  };
  before(async () => {
    server = await TestServer.create({ identity: 'none' });
    alice = await server.clone('alice');
  });
  after(async () => {
    await server?.close();
  });

  it('the hook build sits beside the CLI bundle and the shims use it', async () => {
    assert.ok(
      existsSync(join(BUNDLE, '..', 'bg-hook.cjs')),
      'npm run build makes dist/bg-hook.cjs',
    );
    assert.ok(existsSync(join(BUNDLE, '..', 'bg-hook-full.cjs')), 'and dist/bg-hook-full.cjs');
    assert.ok(!existsSync(join(BUNDLE, '..', 'bg-hook.js')), 'and no ES module entry any more');
    const shim = await readFile(join(server.gitDir, 'hooks', 'pre-receive'), 'utf8');
    assert.match(shim, /bg-hook\.cjs/);
  });

  it('caches the protected patterns after the first push, keyed by the policy bytes', async () => {
    assert.equal((await branch('refs/heads/feature/a')).code, 0);
    const cache = JSON.parse(await readFile(join(server.gitDir, CACHE_FILE), 'utf8'));
    assert.deepEqual(cache.protected, ['refs/heads/main', 'refs/heads/release/*']);
    assert.equal((await branch('refs/heads/feature/b')).code, 0);
    const main = await branch('refs/heads/main');
    assert.notEqual(main.code, 0);
    assert.match(main.stderr, /TICKET_REQUIRED/);
  });

  it('a changed policy is obeyed at once: the cache is keyed by its bytes', async () => {
    const policy = (await server.git(['config', '--get', 'breakglass.policy'])).stdout.trim();
    const old = await readFile(policy, 'utf8');
    try {
      await writeFile(
        policy,
        policyYaml().replace(
          '"refs/heads/release/*"]',
          '"refs/heads/release/*", "refs/heads/feature/*"]',
        ),
      );
      const r = await branch('refs/heads/feature/c');
      assert.notEqual(r.code, 0, 'feature/* is protected now');
      assert.match(r.stderr, /TICKET_REQUIRED/);
      assert.equal(await server.ref('refs/heads/feature/c'), null);
    } finally {
      await writeFile(policy, old);
    }
    assert.equal((await branch('refs/heads/feature/d')).code, 0);
  });

  it('a corrupt cache falls back to the full hook', async () => {
    await writeFile(join(server.gitDir, CACHE_FILE), '{"version":1,"key":');
    assert.equal((await branch('refs/heads/feature/e')).code, 0);
    assert.match((await branch('refs/heads/main')).stderr, /TICKET_REQUIRED/);
  });

  it('a symbolic ref to a protected ref is refused with a warm cache (TM9)', async () => {
    assert.equal((await branch('refs/heads/feature/f')).code, 0); // warm
    await server.git(['symbolic-ref', 'refs/heads/alias', 'refs/heads/main']);
    const before = await server.ref('refs/heads/main');
    const r = await branch('refs/heads/alias');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SYMBOLIC_REF/);
    assert.equal(await server.ref('refs/heads/main'), before);
  });

  it('a malformed breakglass push option is refused even for an unprotected ref (TM11)', async () => {
    const r = await branch('refs/heads/feature/g', { tickets: ['../../etc/passwd'] });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /PUSH_OPTION_INVALID/);
    assert.equal(await server.ref('refs/heads/feature/g'), null);
  });

  it('writes to the evidence namespace always take the full hook', async () => {
    // Forced: install-hooks created refs/notes/breakglass, which seed does not descend from.
    const r = await alice.push([`+${server.seed}:refs/notes/breakglass`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /NAMESPACE_VIOLATION/);
  });
});
