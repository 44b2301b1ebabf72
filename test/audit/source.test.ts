// The audit's reader (src/git/audit-source.ts) on a real repository with damaged and unusual
// records: one note blob on several commits, a missing note blob, use records in and out of the
// recorder's exact format, a use record without a note, and the same read without a temporary
// directory to spool git's output in (read from the pipe instead).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { formatUseRecord, useRecordOf } from '../../src/audit/consumed.ts';
import { formatNoteBlock, type AuditEvent } from '../../src/audit/note.ts';
import type { AuditData } from '../../src/audit/report.ts';
import { readAuditData } from '../../src/git/audit-source.ts';

const ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'T',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 'T',
  GIT_COMMITTER_EMAIL: 't@example.com',
};
const tid = (n: number) => `20261129T0312${String(n).padStart(2, '0')}Z-00000${n}`;
const MISSING_BLOB = '1234567890'.repeat(4);

let dir: string;
let gitDir: string;
const commits: string[] = [];
const uses: Record<string, string> = {};

function git(args: string[], input?: string): string {
  return execFileSync('git', ['--git-dir', gitDir, ...args], { env: ENV, input })
    .toString()
    .trim();
}

function event(n: number, over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    kind: 'breakglass',
    ticketId: tid(n),
    actions: ['push'],
    ref: 'refs/heads/main',
    oldSha: String(n).padStart(40, 'a'),
    newSha: String(n).padStart(40, 'b'),
    pusher: 'alice',
    requester: { principal: 'alice', keyid: 'SHA256:a' },
    approvers: [{ principal: 'bob', keyid: 'SHA256:b' }],
    reason: `INC-${n} "quoted", reason`,
    window: { notBefore: '2026-11-29T03:12:00Z', expiresAt: '2026-11-29T03:27:00Z' },
    recordedAt: `2026-11-29T03:14:0${n}Z`,
    recordedBy: 'pre-receive@git.example.com',
    ...over,
  };
}

/** A consumed/ commit with this message on refs/breakglass/consumed/<ticket>. */
function useRecord(ticket: string, message: string): string {
  const tree = git(['mktree'], '');
  const c = git(['commit-tree', tree, '-m', message.replace(/\n$/, '')]);
  git(['update-ref', `refs/breakglass/consumed/${ticket}`, c]);
  return c;
}

before(() => {
  dir = mkdtempSync(join(os.tmpdir(), 'bg-audit-source-'));
  gitDir = join(dir, 'repo.git');
  execFileSync('git', ['init', '-q', '--bare', gitDir], { env: ENV });
  const tree = git(['mktree'], '');
  let parent: string | undefined;
  for (let i = 0; i < 6; i++) {
    parent = git(['commit-tree', tree, ...(parent ? ['-p', parent] : []), '-m', `c${i}`]);
    commits.push(parent);
  }
  git(['update-ref', 'refs/heads/main', parent!]);
  const blob = (text: string) => git(['hash-object', '-w', '--stdin'], text);
  // Event 1 on three commits (one blob), with a broken second block; event 2 on one commit.
  const broken = formatNoteBlock(event(1)) + '\nBreak-glass-Ticket: broken\n';
  const shared = blob(broken);
  const notes = [
    `100644 blob ${shared}\t${commits[0]}`,
    `100644 blob ${shared}\t${commits[1]}`,
    `100644 blob ${shared}\t${commits[2]}`,
    `100644 blob ${blob(formatNoteBlock(event(2)))}\t${commits[3]}`,
    `100644 blob ${MISSING_BLOB}\t${commits[4]}`,
  ];
  const notesTree = git(['mktree', '--missing'], notes.join('\n') + '\n');
  git(['update-ref', 'refs/notes/breakglass', git(['commit-tree', notesTree, '-m', 'notes'])]);
  // Event 1's use record as the recorder writes it; event 2's with its keys in another order
  // (valid JSON, read by the general parser); event 3 has no note; event 4's record is damaged
  // after its identity (a bad escape: not JSON).
  uses.one = useRecord(tid(1), formatUseRecord(useRecordOf(event(1), 3)));
  const r2 = useRecordOf(event(2), 1);
  const { ticket, ...rest } = r2;
  uses.two = useRecord(
    tid(2),
    `breakglass: ${tid(2)} used on refs/heads/main (push)\n\n${JSON.stringify({ ...rest, ticket })}\n`,
  );
  uses.three = useRecord(tid(3), formatUseRecord(useRecordOf(event(3), 1)));
  uses.four = useRecord(
    tid(4),
    formatUseRecord(useRecordOf(event(4), 1)).replace('"pusher":"alice"', '"pusher":"al\\qice"'),
  );
  // A raw control character inside its identity: not JSON either.
  uses.five = useRecord(
    tid(5),
    formatUseRecord(useRecordOf(event(5), 1)).replace(
      '"ref":"refs/heads/main"',
      '"ref":"refs/heads/ma\tin"',
    ),
  );
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function check(data: AuditData): void {
  const byTicket = new Map(data.events.map((e) => [e.event.ticketId, e]));
  assert.deepEqual([...byTicket.keys()].sort(), [tid(1), tid(2)]);
  // One event, each commit once, though its note blob was read for each commit.
  assert.deepEqual([...byTicket.get(tid(1))!.commits].sort(), commits.slice(0, 3).sort());
  assert.equal(byTicket.get(tid(1))!.useRecord, true);
  assert.equal(byTicket.get(tid(2))!.useRecord, true, 'matched through JSON.parse');
  // The use record without a note is kept (strictly parsed) for its own row.
  assert.deepEqual(
    data.uses.map((u) => u.ticket),
    [tid(3)],
  );
  const problems = data.problems.map((p) => `${p.kind} ${p.where}: ${p.message}`);
  // The broken block is reported once (one problem per message), naming every commit of its blob.
  const block = data.problems.filter((p) => p.message.startsWith('block 2'));
  assert.ok(block.length > 0);
  assert.equal(new Set(block.map((p) => p.message)).size, block.length);
  for (const p of block) assert.equal(p.where, commits.slice(0, 3).sort().join(' '));
  // A missing blob names the commit it annotates.
  assert.ok(problems.includes(`note ${commits[4]}: note object is missing`), problems.join('\n'));
  // The damaged records are problems, not matches.
  for (const c of [uses.four, uses.five]) {
    assert.ok(
      problems.some((p) => p.startsWith(`use ${c}: use record:`)),
      problems.join('\n'),
    );
  }
}

test('reads notes and use records, damaged ones reported once where they are', async () => {
  check(await readAuditData({ gitDir, env: ENV }, { policy: null }));
});

test('the same without a temporary directory (git output read from the pipe)', async () => {
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = join(dir, 'no-such-dir');
  try {
    check(await readAuditData({ gitDir, env: ENV }, { policy: null }));
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
});
