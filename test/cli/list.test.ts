// Ticket lifecycle as `list`, `show`, `revoke` and `verify` see it: pending, active, expired,
// revoked, used up, and refs that are not tickets at all.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { errorCode, requestArgs, Sandbox } from './harness.ts';

interface Row {
  id: string;
  status: string;
  error?: { code: string };
  payload?: { expiresAt: string };
}

describe('bg-sign list / show / revoke: statuses', () => {
  let sb: Sandbox;
  let repo: string;
  const id: Record<string, string> = {};
  const BLOB_ID = '20261129T000000Z-b10b00';
  const TREELESS_ID = '20261129T000001Z-7ee000';

  async function request(): Promise<string> {
    const q = await sb.as('alice', repo, requestArgs());
    assert.equal(q.code, 0, q.stderr);
    return q.stdout.trim();
  }
  async function approve(ticket: string): Promise<void> {
    const a = await sb.as('bob', repo, ['approve', ticket]);
    assert.equal(a.code, 0, a.stderr);
  }
  async function list(args: string[] = []): Promise<Map<string, Row>> {
    const l = await sb.run(repo, ['list', '--json', ...args]);
    assert.equal(l.code, 0, l.stderr);
    const doc = JSON.parse(l.stdout) as { version: number; tickets: Row[] };
    assert.equal(doc.version, 1);
    return new Map(doc.tickets.map((row) => [row.id, row]));
  }

  before(async () => {
    sb = await Sandbox.create();
    repo = (await sb.repos(['alice'])).alice!;
    id.pending = await request();
    id.active = await request();
    await approve(id.active);
    id.revoked = await request();
    await approve(id.revoked);
    id.used = await request();
    await approve(id.used);
    // A use is recorded by the server as a commit on refs/breakglass/consumed/<id>.
    const tree = sb.git(repo, ['mktree'], '');
    const use = sb.git(repo, [
      '-c',
      'user.name=hook',
      '-c',
      'user.email=hook@x',
      'commit-tree',
      tree,
      '-m',
      'use',
    ]);
    sb.git(repo, ['update-ref', `refs/breakglass/consumed/${id.used}`, use]);
    // Hostile or broken refs in the namespace.
    const blob = sb.git(repo, ['hash-object', '-w', '--stdin'], 'not a ticket');
    sb.git(repo, ['update-ref', `refs/breakglass/tickets/${BLOB_ID}`, blob]);
    const other = sb.git(repo, ['mktree'], `100644 blob ${blob}\tREADME\n`);
    const commit = sb.git(repo, [
      '-c',
      'user.name=m',
      '-c',
      'user.email=m@x',
      'commit-tree',
      other,
      '-m',
      'x',
    ]);
    sb.git(repo, ['update-ref', `refs/breakglass/tickets/${TREELESS_ID}`, commit]);
  });
  after(() => sb.cleanup());

  it('only the requester, approvers and admins may revoke (REVOCATION_INVALID)', async () => {
    const dave = await sb.as('dave', repo, ['revoke', id.revoked!, '--reason', 'not mine']);
    assert.equal(dave.code, 1);
    assert.equal(errorCode(dave.stderr), 'REVOCATION_INVALID');
    const bob = await sb.as('bob', repo, ['revoke', id.revoked!, '--reason', 'fixed by rollback']);
    assert.equal(bob.code, 0, bob.stderr);
    assert.equal(
      sb.git(repo, ['cat-file', '-t', `refs/breakglass/revoked/${id.revoked}`]),
      'commit',
    );
    const again = await sb.as('alice', repo, ['revoke', id.revoked!, '--reason', 'again']);
    assert.equal(again.code, 1);
    assert.equal(errorCode(again.stderr), 'TICKET_REVOKED');
  });

  it('lists pending approval, active, revoked, used up, and invalid refs', async () => {
    const rows = await list();
    assert.equal(rows.get(id.pending!)?.status, 'pending approval');
    assert.equal(rows.get(id.active!)?.status, 'active');
    assert.equal(rows.get(id.revoked!)?.status, 'revoked');
    assert.equal(rows.get(id.used!)?.status, 'used up');
    assert.equal(rows.get(BLOB_ID)?.status, 'invalid');
    assert.equal(rows.get(BLOB_ID)?.error?.code, 'TICKET_REF_INVALID');
    assert.equal(rows.get(TREELESS_ID)?.error?.code, 'TICKET_REF_INVALID');
    const text = await sb.run(repo, ['list']);
    assert.equal(text.code, 0);
    assert.match(text.stdout, new RegExp(`${id.pending}\\s+pending approval`));
    assert.match(text.stdout, new RegExp(`${id.active}\\s+active`));
  });

  it('expired after expiresAt (--at); finished tickets older than 24h hidden unless --all', async () => {
    const expires = (await list()).get(id.active!)!.payload!.expiresAt;
    const later = new Date(Date.parse(expires) + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    assert.equal((await list(['--at', later])).get(id.active!)?.status, 'expired');
    const muchLater = new Date(Date.parse(expires) + 3 * 86_400_000)
      .toISOString()
      .replace(/\.\d+Z$/, 'Z');
    const hidden = await list(['--at', muchLater]);
    for (const t of [id.pending, id.active, id.revoked, id.used]) assert.ok(!hidden.has(t!), t);
    assert.ok(hidden.has(BLOB_ID), 'invalid refs always show');
    const all = await list(['--at', muchLater, '--all']);
    assert.equal(all.get(id.active!)?.status, 'expired');
    assert.equal(all.get(id.revoked!)?.status, 'revoked');
    assert.equal(all.get(id.used!)?.status, 'used up');
  });

  it('verify reports revoked (T12) and used up (T13) tickets', async () => {
    const rv = await sb.run(repo, ['verify', id.revoked!]);
    assert.equal(rv.code, 1);
    assert.match(rv.stdout, /TICKET_REVOKED \[T12\]/);
    const used = await sb.run(repo, ['verify', id.used!]);
    assert.equal(used.code, 1);
    assert.match(used.stdout, /TICKET_USED_UP \[T13\]/);
  });

  it('a ticket ref that is a blob is TICKET_REF_INVALID for show, verify and approve', async () => {
    const show = await sb.run(repo, ['show', BLOB_ID]);
    assert.equal(show.code, 1);
    assert.match(show.stdout, /TICKET_REF_INVALID/);
    const verify = await sb.run(repo, ['verify', BLOB_ID]);
    assert.equal(verify.code, 1);
    assert.match(verify.stdout, /TICKET_REF_INVALID/);
    const approve = await sb.as('bob', repo, ['approve', BLOB_ID]);
    assert.equal(approve.code, 1);
    assert.equal(errorCode(approve.stderr), 'TICKET_REF_INVALID');
    const missing = await sb.run(repo, ['show', '20261129T000002Z-000000']);
    assert.equal(missing.code, 1);
    assert.equal(errorCode(missing.stderr), 'TICKET_NOT_FOUND');
  });

  it('approving a revoked ticket is refused (TICKET_REVOKED)', async () => {
    const a = await sb.as('carol', repo, ['approve', id.revoked!]);
    assert.equal(a.code, 1);
    assert.equal(errorCode(a.stderr), 'TICKET_REVOKED');
  });

  it('reads every ticket through one cat-file --batch process', async () => {
    // A git shim first on PATH logs every git invocation.
    const bin = join(sb.dir, 'shim');
    const log = join(sb.dir, 'git.log');
    const realGit = spawnSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).stdout.trim();
    spawnSync('mkdir', ['-p', bin]);
    writeFileSync(join(bin, 'git'), `#!/bin/sh\necho "$*" >> "${log}"\nexec "${realGit}" "$@"\n`, {
      mode: 0o755,
    });
    const l = await sb.run(repo, ['list', '--all'], { PATH: `${bin}:${sb.env.PATH}` });
    assert.equal(l.code, 0, l.stderr);
    const calls = readFileSync(log, 'utf8').trim().split('\n');
    assert.equal(calls.filter((c) => c.includes('cat-file --batch')).length, 1, calls.join('\n'));
    // Six tickets; the number of git processes does not grow with them.
    assert.ok(calls.length <= 8, calls.join('\n'));
  });
});
