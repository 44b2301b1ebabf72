// A pushed policy that the server could not load, or under which no ticket could ever be made,
// used to be ACCEPTED with a valid change-policy ticket; from then on every push, the fix
// included, was POLICY_INVALID and only a server admin could recover (issue 10). The hook now
// loads the pushed policy with the same loader it reads its own with (docs/rules.md L6, L7).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Arena, keys, storedTicket, type Stored } from './harness.ts';

describe('adversarial: a change-policy push must carry a policy the hook can use (L6, L7)', () => {
  let arena: Arena;
  let policy: string;
  let ticket: Stored;

  /** Pushes `content` (or a removal) as .breakglass/policy.yml on `ref` with the ticket. */
  async function pushPolicy(o: { content?: string | Buffer; remove?: boolean; ref?: string }) {
    const ref = o.ref ?? 'refs/heads/main';
    const c = await arena.commitOn(arena.alice, {
      ref,
      file: '.breakglass/policy.yml',
      ...(o.remove ? { remove: true } : { content: o.content! }),
    });
    return () => arena.push(arena.alice, [`${c}:${ref}`], { tickets: [ticket.id] });
  }

  before(async () => {
    arena = await Arena.create({ pin: false, branches: ['release/1'] });
    policy = (await arena.server.git(['show', 'main:.breakglass/policy.yml'])).stdout;
    ticket = await storedTicket(arena, arena.alice, {
      refs: ['refs/heads/main', 'refs/heads/release/*'],
      actions: ['push', 'change-policy'],
    });
    await arena.setup(arena.alice, [ticket.refspec]);
  });
  after(async () => {
    await arena?.close();
  });

  it('one key under two principals (the reproduction): PUSHED_POLICY_INVALID', async () => {
    const twice = policy.replace(
      `keys: ["${keys.carol.publicKey.text}"]`,
      `keys: ["${keys.bob.publicKey.text}"]`,
    );
    assert.notEqual(twice, policy);
    const r = await arena.hostile(await pushPolicy({ content: twice }), {
      code: 'PUSHED_POLICY_INVALID',
      rule: 'L6',
    });
    assert.match(r.stderr, /already belongs to bob/);
  });

  it('one Latin-1 byte: PUSHED_POLICY_INVALID (not valid UTF-8)', async () => {
    const latin1 = Buffer.concat([Buffer.from(policy), Buffer.from('# caf\xe9\n', 'latin1')]);
    const r = await arena.hostile(await pushPolicy({ content: latin1 }), {
      code: 'PUSHED_POLICY_INVALID',
      rule: 'L6',
    });
    assert.match(r.stderr, /not valid UTF-8/);
  });

  it('a policy that no longer protects main, the branch it is read from: PUSHED_POLICY_INVALID', async () => {
    const open = policy.replace('"refs/heads/main", ', '');
    assert.notEqual(open, policy);
    const r = await arena.hostile(await pushPolicy({ content: open }), {
      code: 'PUSHED_POLICY_INVALID',
      rule: 'L6',
    });
    assert.match(r.stderr, /does not protect/);
  });

  it('removing the policy from main: PUSHED_POLICY_INVALID', async () => {
    const r = await arena.hostile(await pushPolicy({ remove: true }), {
      code: 'PUSHED_POLICY_INVALID',
      rule: 'L6',
    });
    assert.match(r.stderr, /removes the policy/);
  });

  it('more approvals than approvers with keys (approvals: 3, two approvers): POLICY_LOCKOUT', async () => {
    const r = await arena.hostile(
      await pushPolicy({ content: policy.replace('approvals: 1', 'approvals: 3') }),
      { code: 'POLICY_LOCKOUT', rule: 'L7' },
    );
    assert.match(r.stderr, /need 3 approval\(s\)/);
  });

  it('no principal left who may request (requesterRoles nobody holds): POLICY_LOCKOUT', async () => {
    const r = await arena.hostile(
      await pushPolicy({
        content: policy.replace('requesterRoles: [oncall]', 'requesterRoles: [sre]'),
      }),
      { code: 'POLICY_LOCKOUT', rule: 'L7' },
    );
    assert.match(r.stderr, /nobody could request a ticket/);
  });

  it('a broken policy on another protected branch (release/1): PUSHED_POLICY_INVALID', async () => {
    await arena.hostile(
      await pushPolicy({ ref: 'refs/heads/release/1', content: 'version: 1\nrepository: [\n' }),
      { code: 'PUSHED_POLICY_INVALID', rule: 'L6' },
    );
  });

  it('control: a valid policy change lands with the ticket, and the repository still works', async () => {
    const longer = policy.replace('maxTtl: 60m', 'maxTtl: 2h');
    assert.notEqual(longer, policy);
    const push = await pushPolicy({ content: longer });
    const r = await push();
    assert.equal(r.code, 0, r.stderr);
    // The next push is judged under the new policy (not POLICY_INVALID): merge-bot's normal path.
    const next = await arena.commitOn(arena.alice);
    const n = await arena.push(arena.alice, [`${next}:refs/heads/main`], { as: 'merge-bot' });
    assert.equal(n.code, 0, n.stderr);
    assert.equal(await arena.tip(), next);
  });
});
