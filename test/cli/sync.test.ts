// Sharing tickets through the remote: push and fetch between two clones, audit notes that only
// fast-forward, and `git breakglass` as a git subcommand.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUNDLE, requestArgs, Sandbox } from './harness.ts';

describe('bg-sign push / fetch between clones', () => {
  let sb: Sandbox;
  let r: Record<string, string>;
  let id: string;

  before(async () => {
    sb = await Sandbox.create();
    r = await sb.repos(['alice', 'bob']);
  });
  after(() => sb.cleanup());

  it('alice pushes her ticket, bob fetches, approves and pushes, alice fetches: valid', async () => {
    const q = await sb.as('alice', r.alice!, requestArgs());
    assert.equal(q.code, 0, q.stderr);
    id = q.stdout.trim();
    const ref = `refs/breakglass/tickets/${id}`;
    const p = await sb.run(r.alice!, ['push', '--json']);
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual((JSON.parse(p.stdout) as { pushed: string[] }).pushed, [ref]);
    assert.equal(sb.git(r.origin!, ['rev-parse', ref]), sb.git(r.alice!, ['rev-parse', ref]));

    const f = await sb.run(r.bob!, ['fetch', '--json']);
    assert.equal(f.code, 0, f.stderr);
    const fj = JSON.parse(f.stdout) as { tickets: number; notes: string };
    assert.equal(fj.tickets, 1);
    assert.equal(fj.notes, 'absent');
    assert.equal((await sb.as('bob', r.bob!, ['approve', id])).code, 0);
    const bp = await sb.run(r.bob!, ['push', id]);
    assert.equal(bp.code, 0, bp.stderr);
    assert.match(bp.stdout, /1 updated/);
    assert.equal(sb.git(r.origin!, ['rev-list', '--count', ref]), '2');

    assert.equal((await sb.run(r.alice!, ['fetch'])).code, 0);
    const v = await sb.run(r.alice!, ['verify', id]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });

  it('pushing again is a no-op; an unknown id is reported (exit 1)', async () => {
    const p = await sb.run(r.alice!, ['push', id]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /0 updated, 1 already up to date/);
    const missing = await sb.run(r.alice!, ['push', '20261129T000000Z-000000']);
    assert.equal(missing.code, 1);
  });

  it('a revocation travels with revoke --push and fetch', async () => {
    const rv = await sb.as('alice', r.alice!, [
      'revoke',
      id,
      '--reason',
      'rolled back instead',
      '--push',
    ]);
    assert.equal(rv.code, 0, rv.stderr);
    assert.equal(sb.git(r.origin!, ['cat-file', '-t', `refs/breakglass/revoked/${id}`]), 'commit');
    assert.equal((await sb.run(r.bob!, ['fetch'])).code, 0);
    const s = await sb.run(r.bob!, ['show', id, '--json']);
    assert.equal((JSON.parse(s.stdout) as { status: string }).status, 'revoked');
  });

  it('fetches audit notes only by fast-forward; a diverged remote goes to breakglass-remote', async () => {
    const note = (repo: string, rev: string, text: string) =>
      sb.git(repo, [
        '-c',
        'user.name=hook',
        '-c',
        'user.email=h@x',
        'notes',
        '--ref=breakglass',
        'add',
        '-f',
        '-m',
        text,
        rev,
      ]);
    // The server's notes, fetched into a clone that has none: fast-forward.
    note(r.bob!, 'HEAD', 'Break-glass-Ticket: one');
    sb.git(r.bob!, ['push', '-q', 'origin', 'refs/notes/breakglass']);
    const f1 = await sb.run(r.alice!, ['fetch', '--json']);
    assert.equal(f1.code, 0, f1.stderr);
    assert.equal((JSON.parse(f1.stdout) as { notes: string }).notes, 'updated');
    const serverNotes = sb.git(r.origin!, ['rev-parse', 'refs/notes/breakglass']);
    assert.equal(sb.git(r.alice!, ['rev-parse', 'refs/notes/breakglass']), serverNotes);

    // Alice's notes and the server's move apart: hers are kept, the server's land beside them.
    note(r.alice!, 'HEAD~1', 'local only');
    note(r.bob!, 'HEAD~1', 'Break-glass-Ticket: two');
    sb.git(r.bob!, ['push', '-q', 'origin', 'refs/notes/breakglass']);
    const local = sb.git(r.alice!, ['rev-parse', 'refs/notes/breakglass']);
    const f2 = await sb.run(r.alice!, ['fetch']);
    assert.equal(f2.code, 0, f2.stderr);
    assert.match(f2.stdout, /notes diverged/);
    assert.match(f2.stderr, /refs\/notes\/breakglass-remote/);
    assert.equal(sb.git(r.alice!, ['rev-parse', 'refs/notes/breakglass']), local);
    assert.equal(
      sb.git(r.alice!, ['rev-parse', 'refs/notes/breakglass-remote']),
      sb.git(r.origin!, ['rev-parse', 'refs/notes/breakglass']),
    );
  });

  it('runs as `git breakglass` when installed as git-breakglass', async () => {
    const bin = join(sb.dir, 'bin');
    mkdirSync(bin);
    chmodSync(BUNDLE, 0o755);
    symlinkSync(BUNDLE, join(bin, 'git-breakglass'));
    const env = { ...sb.env, PATH: `${bin}:${sb.env.PATH}` };
    const res = spawnSync('git', ['breakglass', 'list', '--all', '--json'], {
      cwd: r.alice!,
      env,
      encoding: 'utf8',
    });
    assert.equal(res.status, 0, res.stderr);
    assert.deepEqual(
      (JSON.parse(res.stdout) as { tickets: { id: string }[] }).tickets.map((t) => t.id),
      [id],
    );
    const usage = spawnSync('git', ['breakglass', 'nope'], {
      cwd: r.alice!,
      env,
      encoding: 'utf8',
    });
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /run "git breakglass -h"/);
  });
});

describe('bg-sign fetch keeps local work the remote does not have', () => {
  let sb: Sandbox;
  let r: Record<string, string>;

  before(async () => {
    sb = await Sandbox.create();
    r = await sb.repos(['alice', 'bob', 'carol'], { approvals: 2 });
  });
  after(() => sb.cleanup());

  it("an unpushed approval survives a fetch of someone else's, and then pushes as a fast-forward", async () => {
    const q = await sb.as('alice', r.alice!, requestArgs());
    assert.equal(q.code, 0, q.stderr);
    const id = q.stdout.trim();
    const ref = `refs/breakglass/tickets/${id}`;
    assert.equal((await sb.run(r.alice!, ['push', id])).code, 0);
    for (const u of ['bob', 'carol']) assert.equal((await sb.run(r[u]!, ['fetch'])).code, 0);
    // Bob approves and publishes; Carol approves at the same time, locally.
    assert.equal((await sb.as('bob', r.bob!, ['approve', id, '--push'])).code, 0);
    assert.equal((await sb.as('carol', r.carol!, ['approve', id])).code, 0);
    const lost = await sb.run(r.carol!, ['push', id]);
    assert.notEqual(lost.code, 0, 'the remote moved on: not a fast-forward');

    const f = await sb.run(r.carol!, ['fetch', '--json']);
    assert.equal(f.code, 0, f.stderr);
    assert.deepEqual((JSON.parse(f.stdout) as { merged: unknown }).merged, [{ id, signatures: 1 }]);
    assert.match(f.stderr, /kept 1 local signature/);
    const remoteTip = sb.git(r.origin!, ['rev-parse', ref]);
    assert.equal(sb.git(r.carol!, ['rev-parse', `${ref}^`]), remoteTip, 'on top of the remote');

    const p = await sb.run(r.carol!, ['push', id]);
    assert.equal(p.code, 0, p.stderr);
    assert.equal((await sb.run(r.alice!, ['fetch'])).code, 0);
    const show = JSON.parse((await sb.run(r.alice!, ['show', id, '--json'])).stdout) as {
      approvers: string[];
      status: string;
    };
    assert.deepEqual([...show.approvers].sort(), ['bob', 'carol']);
    assert.equal(show.status, 'active', 'two approvals: usable');
  });

  it('a diverged revocation is kept under refs/breakglass-local/ with a warning', async () => {
    const q = await sb.as('alice', r.alice!, requestArgs());
    const id = q.stdout.trim();
    assert.equal((await sb.run(r.alice!, ['push', id])).code, 0);
    assert.equal((await sb.run(r.bob!, ['fetch'])).code, 0);
    const why = ['--reason', 'not needed'];
    assert.equal((await sb.as('alice', r.alice!, ['revoke', id, ...why, '--push'])).code, 0);
    assert.equal((await sb.as('bob', r.bob!, ['revoke', id, ...why])).code, 0);
    const mine = sb.git(r.bob!, ['rev-parse', `refs/breakglass/revoked/${id}`]);
    const f = await sb.run(r.bob!, ['fetch']);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stderr, new RegExp(`kept at refs/breakglass-local/revoked/${id}`));
    assert.equal(sb.git(r.bob!, ['rev-parse', `refs/breakglass-local/revoked/${id}`]), mine);
  });
});
