import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { approvedEnvelope, keys, policyYaml, ticketRequest, T0 } from '../helpers/fixtures.ts';
import { createTicketEnvelope, formatTicketId } from '../../src/ticket/sign.ts';
import { createRevocation } from '../../src/ticket/revocation.ts';
import { verifyTicketEnvelope } from '../../src/ticket/verify.ts';
import { parsePolicy } from '../../src/policy/policy.ts';
import { Fixture, NOW, ZERO } from './fixture.ts';

const ID = formatTicketId(T0, '7f3a9c');

async function withFixture(fn: (f: Fixture) => Promise<void>, opts = {}): Promise<void> {
  const f = new Fixture(opts);
  try {
    await fn(f);
  } finally {
    f.cleanup();
  }
}

test('an unprotected push passes without touching the break-glass state', () =>
  withFixture(async (f) => {
    const sha = f.commit();
    const r = await f.pre([[ZERO, sha, 'refs/heads/feature']]);
    assert.equal(r.code, 0, r.text);
    assert.equal(r.text, '');
    assert.deepEqual(f.state(''), []);
  }));

test('a direct push to main is rejected (TICKET_REQUIRED) and leaves no reservation or journal', () =>
  withFixture(async (f) => {
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const r = await f.pre([[old, sha, 'refs/heads/main']]);
    assert.equal(r.code, 1);
    assert.match(r.err, /push rejected/);
    assert.match(r.err, /TICKET_REQUIRED \(P2\)/);
    assert.match(r.err, /refs\/heads\/main: fast-forward/);
    assert.match(r.err, /bg-sign request --ref main --action push --commit [0-9a-f]{40}/);
    assert.deepEqual(f.state(''), []);
  }));

test('merge-bot fast-forwards main on the normal path; its force push needs a ticket', () =>
  withFixture(async (f) => {
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const ok = await f.pre([[old, sha, 'refs/heads/main']], { env: { GL_USERNAME: 'merge-bot' } });
    assert.equal(ok.code, 0, ok.text);
    f.git(f.work, 'reset', '-q', '--hard', old);
    const other = f.commit('rewrite');
    f.land(sha, 'refs/heads/main');
    const r = await f.pre([[sha, other, 'refs/heads/main']], { env: { GL_USERNAME: 'merge-bot' } });
    assert.equal(r.code, 1);
    assert.match(r.err, /TICKET_REQUIRED/);
    assert.match(r.err, /force 0*[0-9a-f]+\.\.[0-9a-f]+ needs a ticket for: force-push/);
  }));

test('a valid ticket named with -o lets the push through, reserves the use and journals it', () =>
  withFixture(async (f) => {
    await f.serverTicket(ID, approvedEnvelope());
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const r = await f.pre([[old, sha, 'refs/heads/main']], { options: [`breakglass=${ID}`] });
    assert.equal(r.code, 0, r.text);
    assert.match(r.out, /BREAK-GLASS PUSH ACCEPTED/);
    assert.match(r.out, new RegExp(`ticket +${ID}`));
    assert.match(r.out, /approved +bob/);
    assert.match(r.out, /14m left/);
    assert.match(r.out, /this push is recorded/);
    assert.deepEqual(f.state('reservations'), [`${ID}/0`]);
    const pending = f.state('journal/pending');
    assert.equal(pending.length, 1);
    const entry = JSON.parse(
      fs.readFileSync(path.join(f.server, 'breakglass/journal/pending', pending[0]!), 'utf8'),
    );
    assert.equal(entry.events.length, 1);
    assert.deepEqual(
      {
        ticket: entry.events[0].ticket,
        ref: entry.events[0].ref,
        oldSha: entry.events[0].oldSha,
        newSha: entry.events[0].newSha,
        actions: entry.events[0].actions,
        // E5: no commit list in the journal; the recorder computes old..new (E1).
        commits: entry.events[0].commits,
        pusher: entry.events[0].pusher,
        approvers: entry.events[0].approvers.map((a: { principal: string }) => a.principal),
      },
      {
        ticket: ID,
        ref: 'refs/heads/main',
        oldSha: old,
        newSha: sha,
        actions: ['push'],
        commits: undefined,
        pusher: 'alice',
        approvers: ['bob'],
      },
    );
    assert.equal(entry.recordedBy, 'pre-receive@test-server');
  }));

test('a single-use ticket is refused for a second push (TICKET_USED_UP), even before recording', () =>
  withFixture(async (f) => {
    await f.serverTicket(ID, approvedEnvelope());
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const opts = { options: [`breakglass=${ID}`] };
    assert.equal((await f.pre([[old, sha, 'refs/heads/main']], opts)).code, 0);
    const r = await f.pre([[old, sha, 'refs/heads/main']], opts);
    assert.equal(r.code, 1);
    assert.match(r.err, /TICKET_USED_UP \(T13\)/);
    assert.match(r.err, new RegExp(`ticket ${ID} does not cover it`));
    assert.equal(f.state('journal/pending').length, 1);
  }));

test('ten concurrent pushes sharing a single-use ticket: exactly one gets through', () =>
  withFixture(async (f) => {
    await f.serverTicket(ID, approvedEnvelope());
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const runs = await Promise.all(
      Array.from({ length: 10 }, () =>
        f.pre([[old, sha, 'refs/heads/main']], { options: [`breakglass=${ID}`] }),
      ),
    );
    assert.equal(runs.filter((r) => r.code === 0).length, 1);
    for (const r of runs.filter((x) => x.code !== 0)) assert.match(r.err, /TICKET_USED_UP/);
    assert.deepEqual(f.state('reservations'), [`${ID}/0`]);
    assert.equal(f.state('journal/pending').length, 1);
  }));

test('a force push with a push-only ticket is refused (SCOPE_ACTION)', () =>
  withFixture(async (f) => {
    await f.serverTicket(ID, approvedEnvelope());
    const base = f.serverRef('refs/heads/main')!;
    const first = f.commit('first');
    f.land(first, 'refs/heads/main');
    f.git(f.work, 'reset', '-q', '--hard', base);
    const rewritten = f.commit('rewritten');
    const r = await f.pre([[first, rewritten, 'refs/heads/main']], {
      options: [`breakglass=${ID}`],
    });
    assert.equal(r.code, 1);
    assert.match(r.err, /SCOPE_ACTION \(T7\): action force-push is not in the ticket's actions/);
    assert.deepEqual(f.state(''), []);
  }));

test("someone else's ticket is refused (HOLDER_MISMATCH)", () =>
  withFixture(async (f) => {
    await f.serverTicket(ID, approvedEnvelope());
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const r = await f.pre([[old, sha, 'refs/heads/main']], {
      env: { GL_USERNAME: 'dave' },
      options: [`breakglass=${ID}`],
    });
    assert.equal(r.code, 1);
    assert.match(r.err, /HOLDER_MISMATCH \(T14\): ticket is held by alice, but the pusher is dave/);
  }));

test('identity none: the server cannot tell who pushed, so the holder check is skipped', () =>
  withFixture(async (f) => {
    f.sgit('config', 'breakglass.identity', 'none');
    await f.serverTicket(ID, approvedEnvelope());
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const r = await f.pre([[old, sha, 'refs/heads/main']], {
      env: { GL_USERNAME: 'dave' },
      options: [`breakglass=${ID}`],
    });
    assert.equal(r.code, 0, r.text);
    assert.match(r.out, /pusher unknown/);
    // ...and nobody is a known pusher, so without a named ticket main is closed.
    const r2 = await f.pre([[old, sha, 'refs/heads/main']], { env: { GL_USERNAME: 'merge-bot' } });
    assert.equal(r2.code, 1);
    assert.match(r2.err, /TICKET_REQUIRED/);
  }));

test('a ticket held by the pusher is found without -o; an expired one is not', () =>
  withFixture(async (f) => {
    await f.serverTicket(ID, approvedEnvelope());
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const r = await f.pre([[old, sha, 'refs/heads/main']]);
    assert.equal(r.code, 0, r.text);
    assert.match(r.out, new RegExp(ID));
    const late = await f.pre([[old, sha, 'refs/heads/main']], { now: T0 + 16 * 60_000 });
    assert.equal(late.code, 1);
    assert.match(late.err, /TICKET_REQUIRED/);
  }));

test('a policy change smuggled into a hotfix needs change-policy in scope', () =>
  withFixture(async (f) => {
    await f.serverTicket(ID, approvedEnvelope());
    const old = f.serverRef('refs/heads/main')!;
    f.write('.breakglass/policy.yml', policyYaml({ approvals: 0 }));
    const sha = f.commitAll('hotfix (and a quieter policy)');
    const r = await f.pre([[old, sha, 'refs/heads/main']], { options: [`breakglass=${ID}`] });
    assert.equal(r.code, 1);
    assert.match(r.err, /needs a ticket for: push, change-policy/);
    assert.match(r.err, /SCOPE_ACTION \(T7\): action change-policy/);
  }));

test('the policy comes from the default branch before the push, never from the pushed commits', () =>
  withFixture(async (f) => {
    // The pushed commit makes alice a pusher; the server must still use the old policy.
    const old = f.serverRef('refs/heads/main')!;
    f.write(
      '.breakglass/policy.yml',
      policyYaml().replace('pushers: [merge-bot]', 'pushers: [merge-bot, alice]'),
    );
    const sha = f.commitAll('make me a pusher');
    const r = await f.pre([[old, sha, 'refs/heads/main']]);
    assert.equal(r.code, 1);
    assert.match(r.err, /TICKET_REQUIRED/);
  }));

test('a revoked ticket is refused (TICKET_REVOKED)', () =>
  withFixture(async (f) => {
    const env = approvedEnvelope();
    await f.serverTicket(ID, env);
    const policy = parsePolicy(policyYaml());
    const revocation = createRevocation(
      verifyTicketEnvelope(env, policy.keyOwners),
      'bob',
      'incident over',
      T0 + 30_000,
      keys.bob,
    );
    const rsha = await f.workEnvelope('revoked', ID, revocation);
    const pushRev = await f.pre([[ZERO, rsha, `refs/breakglass/revoked/${ID}`]]);
    assert.equal(pushRev.code, 0, pushRev.text);
    f.land(rsha, `refs/breakglass/revoked/${ID}`);
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const r = await f.pre([[old, sha, 'refs/heads/main']], { options: [`breakglass=${ID}`] });
    assert.equal(r.code, 1);
    assert.match(r.err, /TICKET_REVOKED \(T12\)/);
  }));

test('a ticket created in the same push is a candidate (read from the pushed objects)', () =>
  withFixture(async (f) => {
    const tsha = await f.workEnvelope('tickets', ID, approvedEnvelope());
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const r = await f.pre([
      [ZERO, tsha, `refs/breakglass/tickets/${ID}`],
      [old, sha, 'refs/heads/main'],
    ]);
    assert.equal(r.code, 0, r.text);
    assert.match(r.out, /BREAK-GLASS PUSH ACCEPTED/);
  }));

test('bad push options are refused, not crashed on (PUSH_OPTION_INVALID)', () =>
  withFixture(async (f) => {
    const sha = f.commit();
    const line = [[ZERO, sha, 'refs/heads/feature']];
    for (const opt of [
      'breakglass=../../etc/passwd',
      'breakglass=' + 'a'.repeat(10_000),
      'breakglass',
    ]) {
      const r = await f.pre(line, { options: [opt] });
      assert.equal(r.code, 1, opt.slice(0, 40));
      assert.match(r.err, /PUSH_OPTION_INVALID/);
    }
    const many = await f.pre(line, { env: { GIT_PUSH_OPTION_COUNT: '5000' } });
    assert.match(many.err, /PUSH_OPTION_INVALID/);
    // Options of other tools are none of our business.
    assert.equal((await f.pre(line, { options: ['ci.skip', 'merge_request.create'] })).code, 0);
  }));

test('malformed hook input is rejected, not skipped', () =>
  withFixture(async (f) => {
    const r = await f.pre([['not-a-sha', 'x', 'refs/heads/main']]);
    assert.equal(r.code, 1);
    assert.match(r.err, /HOOK_FAILED: hook input line 1/);
  }));

test('an invalid or missing policy fails closed (POLICY_INVALID / POLICY_MISSING)', () =>
  withFixture(async (f) => {
    const sha = f.commit();
    const bad = path.join(f.dir, 'pinned.yml');
    fs.writeFileSync(bad, 'version: 2\n');
    f.sgit('config', 'breakglass.policy', bad);
    const r = await f.pre([[ZERO, sha, 'refs/heads/feature']]);
    assert.equal(r.code, 1);
    assert.match(r.err, /POLICY_INVALID/);
    f.sgit('config', 'breakglass.policy', path.join(f.dir, 'missing.yml'));
    const m = await f.pre([[ZERO, sha, 'refs/heads/feature']]);
    assert.equal(m.code, 1);
    assert.match(m.err, /POLICY_MISSING/);
    // A pinned valid policy wins over the repository's.
    fs.writeFileSync(bad, policyYaml().replace('refs/heads/main", ', 'refs/heads/feature", '));
    f.sgit('config', 'breakglass.policy', bad);
    const p = await f.pre([[ZERO, sha, 'refs/heads/feature']]);
    assert.equal(p.code, 1);
    assert.match(p.err, /TICKET_REQUIRED/);
  }));

test('a default branch without a policy file rejects everything (POLICY_MISSING)', () =>
  withFixture(async (f) => {
    f.git(f.work, 'rm', '-q', '-r', '.breakglass');
    const sha = f.commitAll('drop the policy');
    f.land(sha, 'refs/heads/main');
    const next = f.commit();
    const r = await f.pre([[ZERO, next, 'refs/heads/feature']]);
    assert.equal(r.code, 1);
    assert.match(r.err, /POLICY_MISSING: the default branch has no \.breakglass\/policy\.yml/);
  }));

test('bootstrap: the first push into an empty repository brings its policy', () =>
  withFixture(
    async (f) => {
      f.write('README.md', 'hello\n');
      const bare = f.commitAll('no policy yet');
      const r = await f.pre([[ZERO, bare, 'refs/heads/main']]);
      assert.equal(r.code, 1);
      assert.match(
        r.err,
        /POLICY_MISSING: refs\/heads\/main as pushed has no \.breakglass\/policy\.yml/,
      );
      f.write('.breakglass/policy.yml', policyYaml());
      const withPolicy = f.commitAll('policy');
      const ok = await f.pre([[ZERO, withPolicy, 'refs/heads/main']]);
      assert.equal(ok.code, 0, ok.text);
      assert.match(ok.out, /bootstrap/);
      const other = await f.pre([[ZERO, withPolicy, 'refs/heads/dev']]);
      assert.equal(other.code, 1, 'a first push that does not create the default branch');
      assert.match(other.err, /POLICY_MISSING: this repository is empty/);
      f.write('.breakglass/policy.yml', 'version: 1\n');
      const invalid = f.commitAll('broken policy');
      const inv = await f.pre([[ZERO, invalid, 'refs/heads/main']]);
      assert.equal(inv.code, 1);
      assert.match(inv.err, /POLICY_INVALID/);
    },
    { policy: null },
  ));

test('the watchdog rejects instead of hanging', () =>
  withFixture(async (f) => {
    const sha = f.commit();
    let out = '';
    const { runPreReceive } = await import('../../src/server/pre-receive.ts');
    // stdin that never ends: the hook must still answer.
    const never: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => ({ next: () => new Promise(() => {}) }),
    };
    const code = await runPreReceive({
      gitDir: f.server,
      env: f.hookEnv(),
      stdin: never,
      now: NOW,
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (out += s) },
      timeoutMs: 200,
    });
    assert.equal(code, 1);
    assert.match(out, /HOOK_FAILED: the break-glass check did not finish within 0s/);
    void sha;
  }));

test('uses: a maxUses 2 ticket allows two pushes and refuses the third', () =>
  withFixture(
    async (f) => {
      await f.serverTicket(ID, approvedEnvelope({ maxUses: 2 }));
      const old = f.serverRef('refs/heads/main')!;
      const a = f.commit();
      const opts = { options: [`breakglass=${ID}`] };
      assert.equal((await f.pre([[old, a, 'refs/heads/main']], opts)).code, 0);
      assert.equal((await f.pre([[old, a, 'refs/heads/main']], opts)).code, 0);
      const third = await f.pre([[old, a, 'refs/heads/main']], opts);
      assert.equal(third.code, 1);
      assert.match(third.err, /TICKET_USED_UP/);
      assert.deepEqual(f.state('reservations'), [`${ID}/0`, `${ID}/1`]);
    },
    { policy: policyYaml({ maxUses: 2 }) },
  ));

test('T15: a ticket allowing more uses than the policy maxUses is refused (USES_TOO_MANY)', () =>
  withFixture(async (f) => {
    // The reproduction: a --max-uses 1000 ticket, approved, under a policy with maxUses 1.
    await f.serverTicket(ID, approvedEnvelope({ maxUses: 1000 }));
    const old = f.serverRef('refs/heads/main')!;
    const r = await f.pre([[old, f.commit(), 'refs/heads/main']], {
      options: [`breakglass=${ID}`],
    });
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      /USES_TOO_MANY \(T15\): ticket allows 1000 uses, over the policy's maxUses of 1/,
    );
    assert.deepEqual(f.state('reservations'), []);
  }));

test('an unapproved ticket of the pusher is examined and explained (APPROVALS_MISSING)', () =>
  withFixture(async (f) => {
    await f.serverTicket(ID, createTicketEnvelope(ticketRequest(), keys.alice));
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const r = await f.pre([[old, sha, 'refs/heads/main']]);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`ticket ${ID} does not cover it`));
    assert.match(r.err, /APPROVALS_MISSING \(T3\)/);
  }));
