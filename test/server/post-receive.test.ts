import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { approvedEnvelope, T0 } from '../helpers/fixtures.ts';
import { formatTicketId } from '../../src/ticket/sign.ts';
import { resolveEntry } from '../../src/server/journal.ts';
import { runPostReceive } from '../../src/server/post-receive.ts';
import { Fixture, NOW, ZERO } from './fixture.ts';

const ID = formatTicketId(T0, '7f3a9c');
const opts = { options: [`breakglass=${ID}`] };

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const f = new Fixture();
  try {
    await fn(f);
  } finally {
    f.cleanup();
  }
}

/**
 * A ticketed fast-forward of main that pre-receive accepted, run by a receive-pack stand-in
 * (`rp`) that is still running: what git does next is up to the test.
 */
async function acceptedVia(f: Fixture) {
  await f.serverTicket(ID, approvedEnvelope());
  const old = f.serverRef('refs/heads/main')!;
  const sha = f.commit();
  const rp = f.receivePack();
  const r = await f.pre([[old, sha, 'refs/heads/main']], { ...opts, receivePack: rp });
  assert.equal(r.code, 0, r.text);
  return { old, sha, rp };
}

function note(f: Fixture, commit: string): string {
  return f.sgit('notes', '--ref=breakglass', 'show', commit);
}

test('post-receive writes the note and the consumed record; the reservation stays as marker', () =>
  withFixture(async (f) => {
    await f.serverTicket(ID, approvedEnvelope());
    const old = f.serverRef('refs/heads/main')!;
    const a = f.commit('fix part 1');
    const b = f.commit('fix part 2');
    assert.equal((await f.pre([[old, b, 'refs/heads/main']], opts)).code, 0);
    f.land(b, 'refs/heads/main');
    let out = '';
    const code = await runPostReceive({
      gitDir: f.server,
      env: f.env,
      stdin: `${old} ${b} refs/heads/main\n`,
      now: NOW + 2000,
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (out += s) },
    });
    assert.equal(code, 0);
    assert.match(
      out,
      new RegExp(`recorded ticket ${ID} on refs/heads/main .*audit note on 2 commit`),
    );
    for (const c of [a, b]) {
      const text = note(f, c);
      assert.match(text, new RegExp(`^Break-glass-Ticket: ${ID}$`, 'm'));
      assert.match(text, /^Break-glass-Action: push$/m);
      assert.match(text, new RegExp(`^Break-glass-Update: ${old}\\.\\.${b}$`, 'm'));
      assert.match(text, /^Break-glass-Pusher: alice$/m);
      assert.match(text, /^Break-glass-Approvers: bob SHA256:/m);
      assert.match(text, /^Break-glass-Window: 2026-11-29T03:12:00Z\/2026-11-29T03:27:00Z$/m);
      assert.match(text, /^Break-glass-Recorded: 2026-11-29T03:13:00Z pre-receive@test-server$/m);
    }
    assert.equal(f.sgit('rev-list', '--count', `refs/breakglass/consumed/${ID}`), '1');
    assert.deepEqual(f.state('reservations'), [`${ID}/0`]);
    assert.deepEqual(f.state('journal/pending'), []);
    assert.equal(f.state('journal/done').length, 1);
    // Flushing again changes nothing.
    const again = await f.flush(NOW + 5000);
    assert.deepEqual(again.recorded, []);
    assert.equal(f.sgit('rev-list', '--count', `refs/breakglass/consumed/${ID}`), '1');
    // And the ticket is used up for good, now from the consumed record.
    const c = f.commit();
    const r = await f.pre([[b, c, 'refs/heads/main']], opts);
    assert.match(r.err, /TICKET_USED_UP/);
  }));

test('E2: an accepted push that git did not apply is dropped once its receive-pack ended, and its use comes back', () =>
  withFixture(async (f) => {
    const { old, sha, rp } = await acceptedVia(f);
    // Still in flight (receive-pack runs): kept, however long it takes.
    const soon = await f.flush(NOW + 3_600_000);
    assert.equal(soon.waiting, 1);
    assert.deepEqual(f.state('reservations'), [`${ID}/0`]);
    assert.equal(f.state('journal/pending').length, 1);
    // Another hook refused the update: receive-pack ends with no transaction at all.
    await rp.end();
    const later = await f.flush(NOW + 2000);
    assert.equal(later.dropped.length, 1);
    assert.deepEqual(later.released, [{ ticket: ID, slot: 0 }]);
    assert.deepEqual(f.state('reservations'), []);
    assert.deepEqual(f.state('journal/pending'), []);
    assert.deepEqual(f.state('armed'), []);
    assert.equal(f.serverRef('refs/notes/breakglass'), null);
    assert.equal(f.serverRef(`refs/breakglass/consumed/${ID}`), null);
    // The ticket can be used again.
    assert.equal((await f.pre([[old, sha, 'refs/heads/main']], opts)).code, 0);
  }));

test('E2: a transaction git aborted gives the use back in its own post-receive, while receive-pack runs', () =>
  withFixture(async (f) => {
    const { old, sha, rp } = await acceptedVia(f);
    try {
      assert.equal(await f.tx(rp, 'prepared', [[old, sha, 'refs/heads/main']]), 0);
      assert.equal(await f.tx(rp, 'aborted', [[old, sha, 'refs/heads/main']]), 0);
      // Another push's flush leaves a running push alone (its own post-receive decides)...
      assert.equal((await f.flush(NOW + 2000)).dropped.length, 0);
      // ...and that post-receive (git runs it when another ref of the push landed) drops it.
      const res = await f.flush(NOW + 2000, [], { receivePack: rp });
      assert.equal(res.dropped.length, 1);
      assert.deepEqual(f.state('reservations'), []);
    } finally {
      await rp.end();
    }
  }));

test('E2: prepared, then receive-pack ended with no outcome: kept pending with its use, reported as uncertain', () =>
  withFixture(async (f) => {
    const { old, sha, rp } = await acceptedVia(f);
    assert.equal(await f.tx(rp, 'prepared', [[old, sha, 'refs/heads/main']]), 0);
    await rp.end();
    const res = await f.flush(NOW + 2000);
    assert.equal(res.uncertain.length, 1);
    assert.deepEqual(res.released, []);
    assert.deepEqual(f.state('reservations'), [`${ID}/0`]);
    assert.equal(f.state('journal/pending').length, 1);
  }));

test('E2: an uncertain entry waits for an admin: --resolve dropped gives the use back, landed records it', () =>
  withFixture(async (f) => {
    const { old, sha, rp } = await acceptedVia(f);
    assert.equal(await f.tx(rp, 'prepared', [[old, sha, 'refs/heads/main']]), 0);
    await rp.end();
    const [file] = f.state('journal/pending');
    const name = file!.replace(/\.json$/, '');
    assert.equal((await f.flush(NOW + 2000)).uncertain[0]?.entry, name);
    await assert.rejects(
      resolveEntry(f.server, '20261129T000000Z-1-abcdef', 'landed'),
      /USAGE|no open/,
    );
    await resolveEntry(f.server, name, 'dropped');
    const res = await f.flush(NOW + 3000);
    assert.deepEqual(res.released, [{ ticket: ID, slot: 0 }]);
    assert.deepEqual(f.state('journal/pending'), []);

    // The same for a push that did land: the admin says so, and it is recorded.
    const rp2 = f.receivePack();
    assert.equal(
      (await f.pre([[old, sha, 'refs/heads/main']], { ...opts, receivePack: rp2 })).code,
      0,
    );
    assert.equal(await f.tx(rp2, 'prepared', [[old, sha, 'refs/heads/main']]), 0);
    f.land(sha, 'refs/heads/main');
    await rp2.end();
    const [file2] = f.state('journal/pending');
    await resolveEntry(f.server, file2!.replace(/\.json$/, ''), 'landed');
    assert.equal((await f.flush(NOW + 4000)).recorded.length, 1);
    assert.match(note(f, sha), new RegExp(`Break-glass-Ticket: ${ID}`));
  }));

test("E2 without the reference-transaction hook (a forge's own hook set): accepted with a warning; with no post-receive the entry stays uncertain, never dropped", () =>
  withFixture(async (f) => {
    await f.serverTicket(ID, approvedEnvelope());
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const rp = f.receivePack();
    const r = await f.pre([[old, sha, 'refs/heads/main']], {
      ...opts,
      receivePack: rp,
      noTransactionHook: true,
    });
    assert.equal(r.code, 0, r.text);
    assert.match(r.out, /reference-transaction hook is not installed/);
    f.land(sha, 'refs/heads/main');
    await rp.end();
    const res = await f.flush(NOW + 2000);
    assert.equal(res.uncertain.length, 1);
    assert.deepEqual(f.state('reservations'), [`${ID}/0`]);
  }));

test('E2: the reference-transaction hook refuses (exit 1) a prepared update it cannot write down', () =>
  withFixture(async (f) => {
    const { old, sha, rp } = await acceptedVia(f);
    try {
      const [name] = fs.readdirSync(path.join(f.server, 'breakglass/journal/tx'));
      const dir = path.join(f.server, 'breakglass/journal/tx', name!);
      fs.rmSync(dir, { recursive: true });
      fs.writeFileSync(dir, 'not a directory');
      assert.equal(await f.tx(rp, 'prepared', [[old, sha, 'refs/heads/main']]), 1);
      // Other states never fail the transaction (git ignores their exit code anyway).
      assert.equal(await f.tx(rp, 'committed', [[old, sha, 'refs/heads/main']]), 0);
      // An update of a receive-pack nobody armed is none of the hook's business.
      const other = f.receivePack();
      assert.equal(await f.tx(other, 'prepared', [[old, sha, 'refs/heads/main']]), 0);
      await other.end();
    } finally {
      await rp.end();
    }
  }));

test('a sibling update git reports as not applied is dropped at once', () =>
  withFixture(async (f) => {
    const other = formatTicketId(T0, 'abcdef');
    await f.serverTicket(ID, approvedEnvelope());
    await f.serverTicket(
      other,
      approvedEnvelope({ id: other, refs: ['refs/heads/release/*'], actions: ['create'] }),
    );
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit();
    const r = await f.pre(
      [
        [old, sha, 'refs/heads/main'],
        [ZERO, sha, 'refs/heads/release/1'],
      ],
      { options: [`breakglass=${ID}`, `breakglass=${other}`] },
    );
    assert.equal(r.code, 0, r.text);
    f.land(sha, 'refs/heads/main'); // release/1 failed to update (say, a lock)
    const res = await f.flush(NOW + 1000, [[old, sha, 'refs/heads/main']]);
    assert.deepEqual(
      res.recorded.map((e) => e.ticket),
      [ID],
    );
    assert.deepEqual(
      res.dropped.map((e) => e.ticket),
      [other],
    );
    assert.deepEqual(f.state('reservations'), [`${ID}/0`]);
  }));

test('a force push notes the new commit, the replaced tip and the dropped commits', () =>
  withFixture(async (f) => {
    await f.serverTicket(ID, approvedEnvelope({ actions: ['force-push'] }));
    const base = f.serverRef('refs/heads/main')!;
    const bad1 = f.commit('bad 1');
    const bad2 = f.commit('bad 2');
    f.land(bad2, 'refs/heads/main');
    f.git(f.work, 'reset', '-q', '--hard', base);
    const fixed = f.commit('the fix');
    const r = await f.pre([[bad2, fixed, 'refs/heads/main']], opts);
    assert.equal(r.code, 0, r.text);
    assert.match(r.out, /force [0-9a-f]{12}\.\.[0-9a-f]{12} +\(force-push\)/);
    f.land(fixed, 'refs/heads/main');
    const res = await f.flush(NOW + 1000, [[bad2, fixed, 'refs/heads/main']]);
    assert.equal(res.recorded[0]!.commits, 3);
    for (const c of [fixed, bad1, bad2]) {
      const text = note(f, c);
      assert.match(text, /^Break-glass-Action: force-push$/m);
      assert.match(text, new RegExp(`^Break-glass-Replaced: ${bad2}$`, 'm'));
      assert.match(text, new RegExp(`^Break-glass-Dropped: 2 commits: ${bad2}, ${bad1}$`, 'm'));
    }
  }));

test("E1/E2: an entry whose post-receive never ran is recorded from git's committed state, even after a rollback", () =>
  withFixture(async (f) => {
    const { old, sha, rp } = await acceptedVia(f);
    await f.landVia(rp, old, sha, 'refs/heads/main');
    await rp.end(); // post-receive killed, or none (GHES)
    // The hotfix is rolled back by a force push before anything was recorded.
    f.land(old, 'refs/heads/main');
    const res = await f.flush(NOW + 2000);
    assert.equal(res.recorded.length, 1, 'git committed it: recorded, not judged from the ref');
    assert.match(note(f, sha), new RegExp(`Break-glass-Ticket: ${ID}`));
    assert.deepEqual(f.state('reservations'), [`${ID}/0`]);
    // The spent single use does not come back.
    const again = await f.pre([[old, sha, 'refs/heads/main']], opts);
    assert.notEqual(again.code, 0);
    assert.match(again.err, /TICKET_USED_UP/);
  }));

test('E2: a reservation whose journal entry was never written comes back once its pre-receive is gone', () =>
  withFixture(async (f) => {
    const dir = path.join(f.server, 'breakglass', 'reservations', ID);
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, '0');
    const writer = f.receivePack(); // stands for the pre-receive killed between the steps
    fs.writeFileSync(
      file,
      JSON.stringify({ entry: '20261129T031300Z-1-abcdef', at: NOW, writer: writer.ref }) + '\n',
    );
    const alive = await f.flush(NOW + 3_600_000, [], { sweep: true });
    assert.deepEqual(alive.released, [], 'kept while its writer may still write the entry');
    await writer.end();
    // A hook flush does not sweep (no per-push cost); an admin's flush does, and so does the
    // pre-receive of a push that needs the use.
    assert.deepEqual((await f.flush(NOW + 2000)).released, []);
    const later = await f.flush(NOW + 2000, [], { sweep: true });
    assert.deepEqual(later.released, [{ ticket: ID, slot: 0 }]);
    assert.equal(fs.existsSync(file), false);
  }));

test('E2: a legacy reservation with no provable writer is kept (fail closed)', () =>
  withFixture(async (f) => {
    const dir = path.join(f.server, 'breakglass', 'reservations', ID);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, '0'),
      JSON.stringify({ entry: '20261129T031300Z-1-abcdef', at: 0 }) + '\n',
    );
    const res = await f.flush(NOW + 30 * 86_400_000, [], { sweep: true });
    assert.deepEqual(res.released, []);
    assert.deepEqual(f.state('reservations'), [`${ID}/0`]);
  }));

test('concurrent flushes record each of several pushes exactly once', () =>
  withFixture(async (f) => {
    const base = f.serverRef('refs/heads/main')!;
    const n = 6;
    const landed: string[][] = [];
    for (let i = 0; i < n; i++) {
      const id = formatTicketId(T0, `a0000${i}`);
      await f.serverTicket(
        id,
        approvedEnvelope({ id, refs: ['refs/heads/release/*'], actions: ['create'] }),
      );
      f.git(f.work, 'reset', '-q', '--hard', base);
      const sha = f.commit(`release ${i}`);
      const ref = `refs/heads/release/${i}`;
      const r = await f.pre([[ZERO, sha, ref]], { options: [`breakglass=${id}`] });
      assert.equal(r.code, 0, r.text);
      f.land(sha, ref);
      landed.push([ZERO, sha, ref]);
    }
    const results = await Promise.all(landed.map((u) => f.flush(NOW + 1000, [u])));
    const recorded = results.flatMap((r) => r.recorded);
    assert.equal(recorded.length, n);
    assert.equal(new Set(recorded.map((e) => e.ticket)).size, n);
    for (const [, sha] of landed) assert.match(note(f, sha!), /Break-glass-Action: create/);
    assert.equal(f.state('journal/done').length, n);
  }));

test('a ticketed delete of a protected branch is recorded on the old tip', () =>
  withFixture(async (f) => {
    await f.serverTicket(
      ID,
      approvedEnvelope({ refs: ['refs/heads/release/*'], actions: ['delete'] }),
    );
    const sha = f.commit('release');
    f.land(sha, 'refs/heads/release/1');
    const accepted = await f.pre([[sha, ZERO, 'refs/heads/release/1']]);
    assert.equal(accepted.code, 0, accepted.text);
    f.sgit('update-ref', '-d', 'refs/heads/release/1');
    const res = await f.flush(NOW + 1000, [[sha, ZERO, 'refs/heads/release/1']]);
    assert.equal(res.recorded.length, 1);
    const text = note(f, sha);
    assert.match(text, /^Break-glass-Action: delete$/m);
    assert.match(text, new RegExp(`^Break-glass-Update: ${sha}\\.\\.${ZERO}$`, 'm'));
  }));

/**
 * A landed ticketed push whose journal entry a flusher with process id `pid` (on this host) has
 * claimed, i.e. renamed into processing/ as `<entry>~<pid hex>-<host tag>-<random>.json`.
 */
async function claimedBy(f: Fixture, pid: number): Promise<{ sha: string; claimed: string }> {
  await f.serverTicket(ID, approvedEnvelope());
  const old = f.serverRef('refs/heads/main')!;
  const sha = f.commit();
  const rp = f.receivePack();
  assert.equal(
    (await f.pre([[old, sha, 'refs/heads/main']], { ...opts, receivePack: rp })).code,
    0,
  );
  await f.landVia(rp, old, sha, 'refs/heads/main');
  await rp.end();
  const journal = path.join(f.server, 'breakglass', 'journal');
  const [pending] = fs.readdirSync(path.join(journal, 'pending'));
  const hostTag = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
  const claimed = pending!.replace(/\.json$/, `~${pid.toString(16)}-${hostTag}-0badc0de.json`);
  fs.mkdirSync(path.join(journal, 'processing'), { recursive: true });
  fs.renameSync(path.join(journal, 'pending', pending!), path.join(journal, 'processing', claimed));
  const t = new Date(NOW + 1000);
  fs.utimesSync(path.join(journal, 'processing', claimed), t, t);
  return { sha, claimed };
}

test('an entry claimed by a flusher that was killed is taken over at once, not after the stale time', () =>
  withFixture(async (f) => {
    // The flusher's process is gone (as after SIGKILL): a pid that existed and exited.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const { sha } = await claimedBy(f, Number(dead.stdout.toString()));
    const res = await f.flush(NOW + 2000);
    assert.equal(res.recorded.length, 1, 'recorded seconds after the crash');
    assert.match(note(f, sha), new RegExp(`Break-glass-Ticket: ${ID}`));
    assert.deepEqual(f.state('journal/processing'), []);
  }));

test('a claim held by a live process is left alone until it is stale', () =>
  withFixture(async (f) => {
    // pid 1 is alive (init): its claim is somebody's flush in progress.
    const { claimed } = await claimedBy(f, 1);
    const res = await f.flush(NOW + 2000);
    assert.equal(res.recorded.length, 0);
    assert.deepEqual(f.state('journal/processing'), [claimed]);
  }));
