// The people's side against a real server (file://): the CLI bundle requests, approves and
// revokes; the hook finds tickets without -o; the normal pusher path; who may use a ticket.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestServer, type DevClone, type RunResult } from '../helpers/server.ts';

function refusedWith(r: RunResult, code: string): void {
  assert.notEqual(r.code, 0, `expected a refusal:\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(code), `expected ${code} in:\n${r.stderr}`);
}

function acceptedWith(r: RunResult, id: string): void {
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`ticket +${id}`));
}

describe('workflow over file://', () => {
  let server: TestServer;
  let alice: DevClone;
  let bob: DevClone;
  before(async () => {
    server = await TestServer.create({ branches: ['release/1', 'release/2'] });
    alice = await server.clone('alice');
    bob = await server.clone('bob');
  });
  after(async () => {
    await server?.close();
  });

  it('request, approve and push with the real CLI; a revoked ticket is refused', async () => {
    const policy = ['--policy', server.policyFile];
    await alice.git(['checkout', '-q', '-B', 'r1', 'origin/release/1'], { check: true });
    const head = await alice.commit('fix.txt', 'hotfix\n');
    const req = await alice.bg([
      'request',
      ...policy,
      '--ref',
      'release/1',
      '--action',
      'push',
      '--commit',
      'HEAD',
      '--ttl',
      '15m',
      '--reason',
      'INC-4711 payment outage hotfix',
      '--push',
    ]);
    assert.equal(req.code, 0, req.stderr);
    const id = req.stdout.trim();

    // Not approved yet: refused with the approval rule.
    refusedWith(await alice.push(['HEAD:release/1'], { tickets: [id] }), 'APPROVALS_MISSING');

    assert.equal((await bob.bg(['fetch'])).code, 0);
    const approve = await bob.bg(['approve', ...policy, id, '--push']);
    assert.equal(approve.code, 0, approve.stderr);

    // Revoked by the requester before use: refused, nothing recorded.
    const revoke = await alice.bg([
      'revoke',
      ...policy,
      id,
      '--reason',
      'rolled back instead',
      '--push',
    ]);
    assert.equal(revoke.code, 0, revoke.stderr);
    refusedWith(await alice.push(['HEAD:release/1'], { tickets: [id] }), 'TICKET_REVOKED');
    assert.equal(await server.ref('refs/heads/release/1'), server.seed);
    assert.equal(await server.note(head), null);
  });

  it('finds tickets without -o: pushed along in the same push, or held by the pusher', async () => {
    await alice.git(['checkout', '-q', '-B', 'r2', 'origin/release/2'], { check: true });
    const first = await alice.commit('a.txt', 'one\n');
    const along = await alice.makeTicket({ refs: ['release/2'], commits: [first] });
    // The ticket ref and the protected update travel in one push; the hook reads the ticket from
    // the quarantined objects.
    acceptedWith(await alice.push(['HEAD:release/2', `refs/breakglass/tickets/${along}`]), along);

    const second = await alice.commit('a.txt', 'two\n');
    const held = await alice.makeTicket({ refs: ['release/2'], commits: [second] });
    assert.equal((await alice.pushTickets([held])).code, 0);
    acceptedWith(await alice.push(['HEAD:release/2']), held);
    for (const [c, id] of [
      [first, along],
      [second, held],
    ] as const) {
      assert.match((await server.note(c)) ?? '', new RegExp(`Break-glass-Ticket: ${id}\\n`));
    }
  });

  it('lets the listed pusher fast-forward without a ticket, but not force-push', async () => {
    const asBot = { env: { REMOTE_USER: 'merge-bot' } };
    await alice.git(['checkout', '-q', '-B', 'bot', 'origin/main'], { check: true });
    const ff = await alice.commit('bot.txt', 'merged PR\n');
    const r = await alice.push(['HEAD:main'], asBot);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /BREAK-GLASS/);
    assert.equal(await server.note(ff), null, 'the normal path writes no note');

    await alice.git(['reset', '-q', '--hard', server.seed], { check: true });
    await alice.commit('bot.txt', 'rewritten\n');
    refusedWith(await alice.push(['HEAD:main'], { ...asBot, force: true }), 'TICKET_REQUIRED');
    assert.equal(await server.ref('refs/heads/main'), ff);
  });

  it('refuses a ticket held by someone else, and a pusher the policy does not know', async () => {
    await bob.git(['fetch', '-q', 'origin'], { check: true });
    await bob.git(['checkout', '-q', '-B', 'b', 'origin/main'], { check: true });
    const c = await bob.commit('b.txt', 'bob\n');
    const aliceTicket = await alice.makeTicket({ commits: [c] });
    await alice.pushTickets([aliceTicket]);
    refusedWith(await bob.push(['HEAD:main'], { tickets: [aliceTicket] }), 'HOLDER_MISMATCH');
    refusedWith(
      await bob.push(['HEAD:main'], { tickets: [aliceTicket], env: { REMOTE_USER: 'eve' } }),
      'HOLDER_MISMATCH',
    );
    // An unknown login still pushes unprotected refs.
    const topic = await bob.push(['HEAD:refs/heads/topic'], { env: { REMOTE_USER: 'eve' } });
    assert.equal(topic.code, 0, topic.stderr);
  });

  it('records a push whose post-receive never ran on the next push', async () => {
    const post = join(server.gitDir, 'hooks/post-receive');
    const shim = await readFile(post, 'utf8');
    await writeFile(post, '#!/bin/sh\nexit 0\n'); // as if post-receive died before writing
    try {
      await alice.git(['fetch', '-q', 'origin'], { check: true });
      await alice.git(['checkout', '-q', '-B', 'late', 'origin/main'], { check: true });
      const head = await alice.commit('late.txt', 'late\n');
      const id = await alice.makeTicket({ commits: [head] });
      await alice.pushTickets([id]);
      acceptedWith(await alice.push(['HEAD:main'], { tickets: [id] }), id);
      assert.equal(await server.note(head), null);
      await writeFile(post, shim);
      const next = await alice.push(['HEAD:refs/heads/later']);
      assert.equal(next.code, 0, next.stderr);
      assert.match(next.stderr, new RegExp(`recorded ticket ${id}`));
      assert.match((await server.note(head)) ?? '', new RegExp(`Break-glass-Ticket: ${id}\\n`));
    } finally {
      await writeFile(post, shim);
    }
  });
});
