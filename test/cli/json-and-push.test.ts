// What a user meets around the signing commands (issue 11 part 4): a failed --push never loses
// the new ticket's id; fetch without a remote says so and how to fix it; every --json output is
// one object with `version` (docs/cli-json.md); audit --json with another --format is a usage error.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { errorCode, hasStack, requestArgs, Sandbox } from './harness.ts';

describe('bg-sign: --push failures, fetch hints, JSON shapes', () => {
  let sb: Sandbox;
  let r: Record<string, string>;

  before(async () => {
    sb = await Sandbox.create();
    r = await sb.repos(['alice', 'bob', 'carol', 'loner']);
  });
  after(() => sb?.cleanup());

  it('request --push whose push fails prints the ticket id first, then the push error (exit 1)', async () => {
    sb.git(r.alice!, ['remote', 'add', 'broken', `${sb.dir}/no-such-repo.git`]);
    const q = await sb.as('alice', r.alice!, requestArgs(['--push', '--remote', 'broken']));
    assert.equal(q.code, 1, q.stderr);
    const id = q.stdout.trim();
    assert.match(id, /^\d{8}T\d{6}Z-[0-9a-f]{6}$/, `the id on stdout: ${q.stdout}`);
    assert.equal(errorCode(q.stderr), 'GIT_FAILED');
    assert.match(q.stderr, /the ticket is saved locally \(refs\/breakglass\/tickets\//);
    assert.match(q.stderr, new RegExp(`bg-sign push ${id}`));
    assert.ok(!hasStack(q.stderr));
    // The ticket is there, so the user publishes it instead of requesting a second one.
    assert.equal(sb.git(r.alice!, ['cat-file', '-t', `refs/breakglass/tickets/${id}`]), 'commit');
    // With --json, the same: the object (pushed: false) on stdout, then the error.
    const j = await sb.as(
      'alice',
      r.alice!,
      requestArgs(['--push', '--remote', 'broken', '--json']),
    );
    assert.equal(j.code, 1);
    const doc = JSON.parse(j.stdout) as { version: number; id: string; pushed: boolean };
    assert.equal(doc.version, 1);
    assert.equal(doc.pushed, false);
    assert.match(doc.id, /^\d{8}T/);
  });

  it('fetch with no remote at all: a usage error saying how to add one', async () => {
    sb.git(r.loner!, ['remote', 'remove', 'origin']);
    const f = await sb.run(r.loner!, ['fetch']);
    assert.equal(f.code, 2, f.stderr);
    assert.equal(errorCode(f.stderr), 'USAGE');
    assert.match(f.stderr, /there is no remote "origin" to fetch from/);
    assert.match(
      f.stderr,
      /this clone has no remote; add the server's repository with: git remote add origin URL/,
    );
    assert.doesNotMatch(f.stderr, /failed: and the repository exists/);
    // Other commands' hints no longer say "fetch origin" when there is none.
    const show = await sb.run(r.loner!, ['show', '20261129T031200Z-7f3a9c']);
    assert.equal(show.code, 1);
    assert.equal(errorCode(show.stderr), 'TICKET_NOT_FOUND');
    assert.match(show.stderr, /this clone has no remote/);
    // With another remote, the hint names it.
    sb.git(r.loner!, ['remote', 'add', 'upstream', r.origin!]);
    const other = await sb.run(r.loner!, ['fetch']);
    assert.equal(other.code, 2);
    assert.match(
      other.stderr,
      /this clone has no remote "origin" \(it has upstream\); pass --remote NAME/,
    );
    const ok = await sb.run(r.loner!, ['fetch', '--remote', 'upstream', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { version: number }).version, 1);
  });

  it('every --json output is one object with version 1', async () => {
    const q = await sb.as('alice', r.alice!, requestArgs(['--push', '--json']));
    assert.equal(q.code, 0, q.stderr);
    const req = JSON.parse(q.stdout) as Record<string, unknown>;
    assert.equal(req.version, 1);
    assert.equal(req.pushed, true);
    assert.equal(req.status, 'pending approval');
    const id = req.id as string;
    assert.equal(Object.keys(req)[0], 'version');

    sb.git(r.bob!, ['fetch', '-q', 'origin', '+refs/breakglass/*:refs/breakglass/*']);
    const a = JSON.parse((await sb.as('bob', r.bob!, ['approve', id, '--push', '--json'])).stdout);
    assert.deepEqual([a.version, a.id, a.status, a.pushed], [1, id, 'active', true]);

    const list = JSON.parse((await sb.run(r.alice!, ['list', '--json'])).stdout);
    assert.equal(list.version, 1);
    assert.ok(Array.isArray(list.tickets));
    assert.ok(list.tickets.some((t: { id: string }) => t.id === id));
    assert.equal(typeof list.hidden, 'number');

    sb.git(r.alice!, ['fetch', '-q', 'origin', '+refs/breakglass/*:refs/breakglass/*']);
    const show = JSON.parse((await sb.run(r.alice!, ['show', id, '--json'])).stdout);
    assert.deepEqual([show.version, show.id, show.status], [1, id, 'active']);

    const v = JSON.parse((await sb.run(r.alice!, ['verify', id, '--json'])).stdout);
    assert.deepEqual([v.version, v.id, v.valid], [1, id, true]);

    const rv = await sb.as('alice', r.alice!, ['revoke', id, '--reason', 'fixed', '--json']);
    assert.equal(rv.code, 0, rv.stderr);
    const rj = JSON.parse(rv.stdout);
    assert.deepEqual([rj.version, rj.id, rj.revoker, rj.pushed], [1, id, 'alice', false]);

    sb.git(r.carol!, ['fetch', '-q', 'origin', '+refs/breakglass/*:refs/breakglass/*']);
    const rw = await sb.as('carol', r.carol!, [
      'review',
      id,
      '--outcome',
      'false-emergency',
      '--note',
      'could have waited',
      '--json',
    ]);
    assert.equal(rw.code, 0, rw.stderr);
    const wj = JSON.parse(rw.stdout);
    assert.deepEqual([wj.version, wj.ticket, wj.reviewer, wj.pushed], [1, id, 'carol', false]);
  });

  it('audit --json --format csv is a usage error (exit 2), not silently JSON', async () => {
    const a = await sb.run(r.alice!, ['audit', '--json', '--format', 'csv']);
    assert.equal(a.code, 2, a.stdout);
    assert.equal(errorCode(a.stderr), 'USAGE');
    assert.match(a.stderr, /--json conflicts with --format csv/);
    assert.equal(a.stdout, '');
  });
});
