import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatNoteBlock, parseNote } from '../../src/audit/note.ts';
import { parseUseRecord } from '../../src/audit/consumed.ts';
import { recordEvents } from '../../src/git/record.ts';
import { iterateNotes, readNote } from '../../src/git/notes.ts';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GIT_ENV, makeRepo, pushEvent, TICKET } from './repo.ts';

const NOTES = ['notes', '--ref=breakglass'];
const ZERO = '0'.repeat(40);
const opts = { env: GIT_ENV };

test('a ticketed push writes the exact note on each new commit and one consumed/ record', async () => {
  const repo = makeRepo(4);
  try {
    const [c1, c2, c3, c4] = repo.commits as [string, string, string, string];
    const e = pushEvent(c2, c4);
    const r = await recordEvents(repo.gitDir, [{ event: e, commits: [c4, c3] }], opts);
    assert.deepEqual(r, {
      notesWritten: 2,
      usesRecorded: 1,
      retries: 0,
      skipped: 0,
      missing: [],
      unrecorded: [],
    });
    const expected = [
      `Break-glass-Ticket: ${TICKET}`,
      'Break-glass-Action: push',
      'Break-glass-Ref: refs/heads/main',
      `Break-glass-Update: ${c2}..${c4}`,
      'Break-glass-Pusher: alice',
      'Break-glass-Requester: alice SHA256:aliceKEYid+/0',
      'Break-glass-Approvers: bob SHA256:bobKEYid',
      'Break-glass-Reason: INC-4711 payment outage hotfix',
      'Break-glass-Window: 2026-11-29T03:12:00Z/2026-11-29T03:27:00Z',
      'Break-glass-Recorded: 2026-11-29T03:14:09Z pre-receive@git.example.com',
      '',
    ].join('\n');
    assert.equal(repo.git([...NOTES, 'show', c4]), expected);
    assert.equal(repo.git([...NOTES, 'show', c3]), expected);
    assert.equal(
      repo
        .git([...NOTES, 'list'])
        .trim()
        .split('\n').length,
      2,
    );
    assert.equal(await readNote({ gitDir: repo.gitDir, env: GIT_ENV }, c1), undefined);
    // `git log --notes=breakglass` shows it under the commit.
    const log = repo.git(['log', '--notes=breakglass', '-1', c4]);
    assert.match(log, /\nNotes \(breakglass\):\n {4}Break-glass-Ticket: 20261129T031200Z-7f3a9c\n/);
    // consumed/: one commit per use, message is the strict use record.
    const ref = `refs/breakglass/consumed/${TICKET}`;
    assert.equal(repo.git(['rev-list', '--count', ref]).trim(), '1');
    const use = parseUseRecord(repo.git(['log', '-1', '--format=%B', ref]).replace(/\n+$/, '\n'));
    assert.deepEqual(use, {
      ticket: TICKET,
      ref: 'refs/heads/main',
      oldSha: c2,
      newSha: c4,
      actions: ['push'],
      pusher: 'alice',
      recordedAt: '2026-11-29T03:14:09Z',
      recordedBy: 'pre-receive@git.example.com',
      commits: 2,
    });
    // No scratch or temporary refs are left behind.
    assert.deepEqual(repo.git(['for-each-ref', '--format=%(refname)']).trim().split('\n').sort(), [
      ref,
      'refs/heads/main',
      'refs/notes/breakglass',
    ]);
  } finally {
    repo.cleanup();
  }
});

test('a force push records the replaced tip and dropped commits; a second use extends consumed/', async () => {
  const repo = makeRepo(6);
  try {
    const c = repo.commits;
    // main went c[5] -> c[2] (rewind): c[3..5] dropped; annotate the replaced tip and the drops.
    const e = pushEvent(c[5]!, c[2]!, {
      actions: ['force-push'],
      replacedTip: c[5]!,
      dropped: [c[5]!, c[4]!, c[3]!],
    });
    await recordEvents(repo.gitDir, [{ event: pushEvent(c[0]!, c[5]!), commits: [c[5]!] }], opts);
    const r = await recordEvents(
      repo.gitDir,
      [{ event: e, commits: [c[2]!, c[5]!, c[4]!, c[3]!] }],
      opts,
    );
    assert.equal(r.notesWritten, 4);
    const note = repo.git([...NOTES, 'show', c[5]!]);
    assert.equal(note, formatNoteBlock(pushEvent(c[0]!, c[5]!)) + '\n' + formatNoteBlock(e));
    assert.ok(note.includes(`\nBreak-glass-Action: force-push\n`));
    assert.ok(note.includes(`\nBreak-glass-Replaced: ${c[5]}\n`));
    assert.ok(note.includes(`\nBreak-glass-Dropped: 3 commits: ${c[5]}, ${c[4]}, ${c[3]}\n`));
    assert.deepEqual(
      parseNote(note).events.map((x) => x.actions),
      [['push'], ['force-push']],
    );
    assert.equal(
      repo.git(['rev-list', '--count', `refs/breakglass/consumed/${TICKET}`]).trim(),
      '2',
    );
  } finally {
    repo.cleanup();
  }
});

test('appends to a note written by `git notes add`, keeping its text', async () => {
  const repo = makeRepo(3);
  try {
    const [, c2, c3] = repo.commits as [string, string, string];
    repo.git([...NOTES, 'add', '-m', 'Reviewed by carol: looks fine', c3]);
    await recordEvents(repo.gitDir, [{ event: pushEvent(c2, c3), commits: [c3] }], opts);
    assert.equal(
      repo.git([...NOTES, 'show', c3]),
      'Reviewed by carol: looks fine\n\n' + formatNoteBlock(pushEvent(c2, c3)),
    );
    // The notes history keeps the hand-written commit as parent.
    assert.equal(repo.git(['rev-list', '--count', 'refs/notes/breakglass']).trim(), '2');
  } finally {
    repo.cleanup();
  }
});

test('2,000 commits annotated in one call; fanout handled; then appended to again', async () => {
  const repo = makeRepo(2000);
  try {
    const c = repo.commits;
    // A few notes exist already, written by git itself.
    repo.git([...NOTES, 'add', '-m', 'earlier', c[10]!]);
    const e = pushEvent(ZERO, c[1999]!, { actions: ['create'] });
    const r = await recordEvents(repo.gitDir, [{ event: e, commits: [...c].reverse() }], opts);
    assert.equal(r.notesWritten, 2000);
    assert.equal(
      repo
        .git([...NOTES, 'list'])
        .trim()
        .split('\n').length,
      2000,
    );
    assert.match(
      repo.git(['ls-tree', 'refs/notes/breakglass']),
      /^040000 tree [0-9a-f]{40}\t[0-9a-f]{2}\n/,
    );
    assert.equal(repo.git([...NOTES, 'show', c[10]!]), `earlier\n\n${formatNoteBlock(e)}`);
    // A second event over a slice of the same commits is appended through the fanned-out tree.
    const e2 = pushEvent(c[1499]!, c[1999]!, { ticketId: '20261129T041200Z-aaaaaa' });
    const r2 = await recordEvents(
      repo.gitDir,
      [{ event: e2, commits: c.slice(1500).reverse() }],
      opts,
    );
    assert.equal(r2.notesWritten, 500);
    assert.equal(
      repo
        .git([...NOTES, 'list'])
        .trim()
        .split('\n').length,
      2000,
    );
    assert.equal(
      repo.git([...NOTES, 'show', c[1700]!]),
      `${formatNoteBlock(e)}\n${formatNoteBlock(e2)}`,
    );
    assert.equal(repo.git([...NOTES, 'show', c[100]!]), formatNoteBlock(e));
    // iterateNotes reads them all back, through the fanout.
    let count = 0;
    let events = 0;
    for await (const n of iterateNotes({ gitDir: repo.gitDir, env: GIT_ENV })) {
      count++;
      events += parseNote(n.note.toString('utf8')).events.length;
    }
    assert.equal(count, 2000);
    assert.equal(events, 2500);
  } finally {
    repo.cleanup();
  }
});

test('re-running the same items is a no-op (crash-retry safe)', async () => {
  const repo = makeRepo(3);
  try {
    const c = repo.commits;
    const items = [
      { event: pushEvent(c[0]!, c[2]!), commits: [c[2]!, c[1]!] },
      {
        event: pushEvent(c[0]!, c[1]!, {
          kind: 'violation',
          ticketId: undefined,
          violation: 'bypass',
        }),
        commits: [],
      },
    ];
    const first = await recordEvents(repo.gitDir, items, opts);
    assert.deepEqual(first, {
      notesWritten: 2,
      usesRecorded: 1,
      retries: 0,
      skipped: 0,
      missing: [],
      unrecorded: [],
    });
    const tip = repo.git(['rev-parse', 'refs/notes/breakglass']);
    const again = await recordEvents(repo.gitDir, items, opts);
    assert.deepEqual(again, {
      notesWritten: 0,
      usesRecorded: 0,
      retries: 0,
      skipped: 2,
      missing: [],
      unrecorded: [],
    });
    assert.equal(repo.git(['rev-parse', 'refs/notes/breakglass']), tip);
    assert.equal(
      repo.git(['rev-list', '--count', `refs/breakglass/consumed/${TICKET}`]).trim(),
      '1',
    );
    // The same item twice in one call is written once.
    const dup = await recordEvents(repo.gitDir, [items[0]!, items[0]!], {
      ...opts,
      notesRef: 'refs/notes/other',
    });
    assert.equal(dup.skipped, 1);
    assert.equal(
      repo.git(['notes', '--ref=other', 'show', c[2]!]),
      formatNoteBlock(items[0]!.event),
    );
  } finally {
    repo.cleanup();
  }
});

test('a half-applied transaction (crash mid-commit) is completed by the retry, not duplicated', async () => {
  const repo = makeRepo(3);
  try {
    const c = repo.commits;
    const ref = `refs/breakglass/consumed/${TICKET}`;
    const item = { event: pushEvent(c[0]!, c[2]!), commits: [c[2]!, c[1]!] };
    await recordEvents(repo.gitDir, [item], opts);
    const note = repo.git([...NOTES, 'show', c[2]!]);
    // Only the note landed: the retry adds the use and leaves the notes alone.
    repo.git(['update-ref', '-d', ref]);
    const r1 = await recordEvents(repo.gitDir, [item], opts);
    assert.deepEqual([r1.notesWritten, r1.usesRecorded], [0, 1]);
    assert.equal(repo.git([...NOTES, 'show', c[2]!]), note);
    assert.equal(repo.git(['rev-list', '--count', ref]).trim(), '1');
    // Only the use landed: the retry writes the notes and no second use.
    repo.git(['update-ref', '-d', 'refs/notes/breakglass']);
    const r2 = await recordEvents(repo.gitDir, [item], opts);
    assert.deepEqual([r2.notesWritten, r2.usesRecorded], [2, 0]);
    assert.equal(repo.git([...NOTES, 'show', c[2]!]), note);
    assert.equal(repo.git(['rev-list', '--count', ref]).trim(), '1');
  } finally {
    repo.cleanup();
  }
});

test('a concurrent writer between build and commit forces a retry; both writes survive', async () => {
  const repo = makeRepo(3);
  try {
    const c = repo.commits;
    let moved = false;
    const r = await recordEvents(
      repo.gitDir,
      [{ event: pushEvent(c[1]!, c[2]!), commits: [c[2]!] }],
      {
        ...opts,
        beforeUpdate: () => {
          if (moved) return;
          moved = true;
          // Someone else annotates the same commit and records a use of the same ticket.
          repo.git([...NOTES, 'add', '-m', 'other writer', c[2]!]);
          repo.git(['update-ref', `refs/breakglass/consumed/${TICKET}`, c[0]!]);
        },
      },
    );
    assert.equal(r.retries, 1);
    assert.equal(
      repo.git([...NOTES, 'show', c[2]!]),
      'other writer\n\n' + formatNoteBlock(pushEvent(c[1]!, c[2]!)),
    );
    const ref = `refs/breakglass/consumed/${TICKET}`;
    assert.equal(repo.git(['rev-parse', `${ref}^`]).trim(), c[0]);
  } finally {
    repo.cleanup();
  }
});

test('a retry that finds its own event already written (by a crashed twin) writes nothing', async () => {
  const repo = makeRepo(2);
  try {
    const c = repo.commits;
    const item = { event: pushEvent(c[0]!, c[1]!), commits: [c[1]!] };
    let twin = false;
    const r = await recordEvents(repo.gitDir, [item], {
      ...opts,
      beforeUpdate: async () => {
        if (twin) return;
        twin = true;
        // The twin runs while we hold the recorder lock, as a writer that ignores it would.
        await recordEvents(repo.gitDir, [item], { ...opts, lock: false });
      },
    });
    assert.deepEqual(r, {
      notesWritten: 0,
      usesRecorded: 0,
      retries: 1,
      skipped: 1,
      missing: [],
      unrecorded: [],
    });
    assert.equal(repo.git([...NOTES, 'show', c[1]!]), formatNoteBlock(item.event));
    assert.equal(
      repo.git(['rev-list', '--count', `refs/breakglass/consumed/${TICKET}`]).trim(),
      '1',
    );
  } finally {
    repo.cleanup();
  }
});

for (const lock of [true, false]) {
  test(`10 concurrent recorders (lock: ${lock}) with distinct events: each present exactly once`, async () => {
    const repo = makeRepo(5);
    try {
      const c = repo.commits;
      const calls = Array.from({ length: 10 }, (_, i) => {
        const ticketId = `20261129T0312${String(i).padStart(2, '0')}Z-abc${i}00`;
        // Every caller annotates the same tip (worst case) plus one commit of its own.
        return recordEvents(
          repo.gitDir,
          [{ event: pushEvent(c[0]!, c[4]!, { ticketId }), commits: [c[4]!, c[i % 4]!] }],
          { ...opts, lock },
        );
      });
      const results = await Promise.all(calls);
      assert.ok(results.every((r) => r.notesWritten === 2 && r.usesRecorded === 1));
      const events = parseNote(repo.git([...NOTES, 'show', c[4]!])).events;
      assert.equal(events.length, 10);
      assert.equal(new Set(events.map((e) => e.ticketId)).size, 10);
      for (let i = 0; i < 10; i++) {
        const id = `20261129T0312${String(i).padStart(2, '0')}Z-abc${i}00`;
        assert.equal(
          repo.git(['rev-list', '--count', `refs/breakglass/consumed/${id}`]).trim(),
          '1',
        );
      }
      const perCommit = [0, 1, 2, 3].map(
        (k) => parseNote(repo.git([...NOTES, 'show', c[k]!])).events.length,
      );
      assert.deepEqual(perCommit, [3, 3, 2, 2]);
      if (!lock)
        assert.ok(
          results.some((r) => r.retries > 0),
          'the race path ran',
        );
      assert.ok(!existsSync(join(repo.gitDir, 'breakglass-record.lock')));
    } finally {
      repo.cleanup();
    }
  });
}

test('commits missing from the repository are reported, not fatal to the other events', async () => {
  const repo = makeRepo(3);
  try {
    const c = repo.commits;
    const gone = 'd'.repeat(40);
    const r = await recordEvents(
      repo.gitDir,
      [
        { event: pushEvent(c[0]!, c[2]!), commits: [gone, c[2]!] },
        { event: pushEvent(c[0]!, gone, { ticketId: '20261129T041200Z-cccccc' }), commits: [] },
      ],
      opts,
    );
    assert.deepEqual(r.missing, [gone]);
    assert.deepEqual(r.unrecorded, [1]);
    assert.equal(r.notesWritten, 1);
    assert.equal(r.usesRecorded, 1);
    assert.equal(repo.git([...NOTES, 'show', c[2]!]), formatNoteBlock(pushEvent(c[0]!, c[2]!)));
  } finally {
    repo.cleanup();
  }
});

test('separate processes recording at once (with and without the lock) lose nothing', async () => {
  const repo = makeRepo(1);
  try {
    const tip = repo.commits[0]!;
    const child = (i: number) =>
      new Promise<string>((resolve, reject) => {
        execFile(
          process.execPath,
          [
            '--import',
            'tsx',
            fileURLToPath(new URL('./recorder-child.ts', import.meta.url)),
            repo.gitDir,
            String(i),
            tip,
            String(i % 2),
          ],
          { env: GIT_ENV },
          (err, stdout) => (err ? reject(err) : resolve(stdout)),
        );
      });
    const out = await Promise.all([0, 1, 2, 3].map(child));
    assert.ok(out.every((o) => JSON.parse(o).usesRecorded === 1));
    const events = parseNote(repo.git([...NOTES, 'show', tip])).events;
    assert.deepEqual(
      events.map((e) => e.ticketId).sort(),
      [0, 1, 2, 3].map((i) => `20261129T05000${i}Z-c0ffee${i}`),
    );
    assert.equal(
      repo.git(['for-each-ref', 'refs/breakglass/consumed/']).trim().split('\n').length,
      4,
    );
  } finally {
    repo.cleanup();
  }
});

test('invalid input is refused before anything is written', async () => {
  const repo = makeRepo(2);
  try {
    const c = repo.commits;
    const bad = [
      { event: pushEvent(c[0]!, c[1]!), commits: ['HEAD'] },
      { event: pushEvent(c[0]!, 'main'), commits: [] },
      { event: pushEvent(c[0]!, c[1]!, { ticketId: '../../heads/main' }), commits: [] },
      { event: pushEvent(c[0]!, c[1]!, { ref: 'refs/heads/a..b' }), commits: [] },
      { event: pushEvent(c[0]!, c[1]!, { recordedAt: 'yesterday' }), commits: [] },
    ];
    for (const item of bad) {
      await assert.rejects(recordEvents(repo.gitDir, [item], opts), {
        code: 'AUDIT_RECORD_INVALID',
      });
    }
    assert.equal(repo.git(['for-each-ref', '--format=%(refname)']).trim(), 'refs/heads/main');
  } finally {
    repo.cleanup();
  }
});

test('a recorder lock left by a dead process is taken over at once', async () => {
  const repo = makeRepo(2);
  try {
    const c = repo.commits;
    const deadPid = execFileSync(
      process.execPath,
      ['-e', 'process.stdout.write(String(process.pid))'],
      {
        encoding: 'utf8',
      },
    );
    const lockPath = join(repo.gitDir, 'breakglass-record.lock');
    writeFileSync(lockPath, `${deadPid} ${hostname()} feedface\n`);
    const r = await recordEvents(
      repo.gitDir,
      [{ event: pushEvent(c[0]!, c[1]!), commits: [] }],
      opts,
    );
    assert.equal(r.notesWritten, 1);
    assert.ok(!existsSync(lockPath));
  } finally {
    repo.cleanup();
  }
});

/** A repository whose notes ref exists, with its lock left `ageMs` ago as a killed git would. */
async function withStaleNotesLock(ageMs: number) {
  const repo = makeRepo(2);
  const [c1, c2] = repo.commits as [string, string];
  await recordEvents(repo.gitDir, [{ event: pushEvent(ZERO, c1), commits: [c1] }], opts);
  const lock = join(repo.gitDir, 'refs', 'notes', 'breakglass.lock');
  writeFileSync(lock, '');
  const old = new Date(Date.now() - ageMs);
  utimesSync(lock, old, old);
  return { repo, c1, c2, lock };
}

test('a stale ref lock left by a dead git fails at once with a hint, and nothing is lost', async () => {
  const { repo, c1, c2, lock } = await withStaleNotesLock(120_000);
  try {
    await assert.rejects(
      recordEvents(repo.gitDir, [{ event: pushEvent(c1, c2), commits: [c2] }], {
        ...opts,
        maxRetries: 3,
      }),
      (e: Error & { code?: string; hint?: string }) =>
        e.code === 'GIT_FAILED' &&
        /stale ref lock/.test(e.message) &&
        /remove it/.test(e.hint ?? ''),
    );
    // Once it is removed, the same events are recorded.
    rmSync(lock);
    const r = await recordEvents(repo.gitDir, [{ event: pushEvent(c1, c2), commits: [c2] }], opts);
    assert.equal(r.notesWritten, 1);
  } finally {
    repo.cleanup();
  }
});

test('a ref lock of ours 10 minutes old is removed (with a warning) and the events recorded', async () => {
  const { repo, c1, c2, lock } = await withStaleNotesLock(11 * 60_000);
  try {
    const warnings: string[] = [];
    const r = await recordEvents(repo.gitDir, [{ event: pushEvent(c1, c2), commits: [c2] }], {
      ...opts,
      onWarning: (m) => warnings.push(m),
    });
    assert.equal(r.notesWritten, 1);
    assert.equal(existsSync(lock), false);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /removed .*breakglass\.lock, a ref lock left 11 minutes ago/);
  } finally {
    repo.cleanup();
  }
});
