// Where the CLI finds its policy, and that it refuses what the server refuses: the CLI only finds
// bytes; policyFromBytes (src/policy/load.ts) decides, as in the hook.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { errorCode, Sandbox } from './harness.ts';

describe('bg-sign: the policy the CLI reads', () => {
  let sb: Sandbox;
  let repos: Record<string, string>;

  before(async () => {
    sb = await Sandbox.create();
    repos = await sb.repos(['alice', 'loner']);
  });
  after(async () => {
    await sb?.cleanup();
  });

  it('one Latin-1 byte in the remote policy: list is POLICY_INVALID (exit 1), as on the server', async () => {
    const good = await sb.run(repos.alice!, ['list', '--json']);
    assert.equal(good.code, 0, good.stderr);
    // Reproduction: this used to pass (exit 0) while the server refused every push.
    const seed = join(sb.dir, 'seed');
    const file = join(seed, '.breakglass', 'policy.yml');
    writeFileSync(
      file,
      Buffer.concat([readFileSync(file), Buffer.from('# r\xe9sum\xe9 of the rules\n', 'latin1')]),
    );
    sb.git(seed, ['add', '.']);
    sb.commit(seed, 'policy: a comment in Latin-1');
    sb.git(seed, ['push', '-q', 'origin', 'main']);
    sb.git(repos.alice!, ['fetch', '-q', 'origin']);
    const r = await sb.run(repos.alice!, ['list', '--json']);
    assert.equal(r.code, 1, r.stdout);
    assert.equal(errorCode(r.stderr), 'POLICY_INVALID');
    assert.match(r.stderr, /not valid UTF-8/);
  });

  it('the working-tree fallback warns on stderr, without --verbose', async () => {
    const dir = repos.loner!;
    // A clone whose remote has no policy: only the working tree has one.
    sb.git(dir, ['remote', 'remove', 'origin']);
    const withPolicy = await sb.run(dir, ['list', '--json']);
    assert.equal(withPolicy.code, 0, withPolicy.stderr);
    assert.match(
      withPolicy.stderr,
      /warning: no \.breakglass\/policy\.yml on origin's default branch; using the working tree's/,
    );
    assert.deepEqual(JSON.parse(withPolicy.stdout), { version: 1, tickets: [], hidden: 0 });
    // --policy FILE is an explicit choice: no warning.
    mkdirSync(join(sb.dir, 'pinned'), { recursive: true });
    const pinned = join(sb.dir, 'pinned', 'policy.yml');
    writeFileSync(pinned, readFileSync(join(dir, '.breakglass', 'policy.yml')));
    const explicit = await sb.run(dir, ['list', '--json', '--policy', pinned]);
    assert.equal(explicit.code, 0, explicit.stderr);
    assert.doesNotMatch(explicit.stderr, /warning/);
  });
});
