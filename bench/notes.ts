// Audit notes for 10,000 commits: recordEvents (one fast-import + one update-ref transaction)
// vs a `git notes add` loop, measured side by side in one run (DESIGN §9: < 1.5 s and >= 50x).
// Run: node --import tsx bench/notes.ts
import { execFileSync } from 'node:child_process';
import { formatNoteBlock } from '../src/audit/note.ts';
import { recordEvents } from '../src/git/record.ts';
import { GIT_ENV, makeRepo, pushEvent } from '../test/record/repo.ts';
import { machine, ms, summarize } from './stats.ts';

const COMMITS = 10_000;
const RUNS = 5;
const LOOP_COMMITS = 500;
const LOOP_ROUNDS = 3;

const repo = makeRepo(COMMITS);
try {
  const commits = [...repo.commits].reverse();
  const event = pushEvent('0'.repeat(40), commits[0]!, { actions: ['create'] });
  const block = formatNoteBlock(event);
  const fresh: number[] = [];
  const append: number[] = [];
  const loopPerNote: number[] = [];
  const distinct: number[] = [];
  // Worst case for a flush: 10,000 different events, one per commit, so 10,000 different blobs.
  const perCommit = commits.map((c, k) => ({
    event: pushEvent(commits[k + 1] ?? '0'.repeat(40), c, {
      kind: 'violation' as const,
      ticketId: undefined,
      violation: `direct push of ${c} bypassed protection`,
    }),
    commits: [c],
  }));

  const timeRecord = async (notesRef: string, e = event): Promise<number> => {
    const t0 = performance.now();
    const r = await recordEvents(repo.gitDir, [{ event: e, commits }], { env: GIT_ENV, notesRef });
    const t = performance.now() - t0;
    if (r.notesWritten !== COMMITS) throw new Error(`wrote ${r.notesWritten} notes`);
    return t;
  };
  const loopRound = (round: number): number => {
    const t0 = performance.now();
    for (const c of commits.slice(0, LOOP_COMMITS)) {
      execFileSync(
        'git',
        ['--git-dir', repo.gitDir, 'notes', `--ref=loop-${round}`, 'add', '-m', block, c],
        {
          env: GIT_ENV,
        },
      );
    }
    return (performance.now() - t0) / LOOP_COMMITS;
  };

  // Interleave the two methods so both see the same machine load.
  for (let run = 0; run < RUNS; run++) {
    fresh.push(await timeRecord(`refs/notes/bench-${run}`));
    // Second event on the same 10,000 commits: reads every existing note, appends, rewrites.
    const second = pushEvent(commits[1]!, commits[0]!, { ticketId: '20261129T041200Z-bbbbbb' });
    append.push(await timeRecord(`refs/notes/bench-${run}`, second));
    if (run < LOOP_ROUNDS) loopPerNote.push(loopRound(run));
    const t0 = performance.now();
    const r = await recordEvents(repo.gitDir, perCommit, {
      env: GIT_ENV,
      notesRef: `refs/notes/distinct-${run}`,
    });
    distinct.push(performance.now() - t0);
    if (r.notesWritten !== COMMITS) throw new Error(`wrote ${r.notesWritten} distinct notes`);
  }
  // Sanity: git itself finds all notes (fanout) and shows the block.
  const listed = repo.git(['notes', '--ref=bench-0', 'list']).trim().split('\n').length;
  if (listed !== COMMITS) throw new Error(`git notes list shows ${listed}`);
  if (!repo.git(['notes', '--ref=bench-0', 'show', commits[5000]!]).startsWith(block)) {
    throw new Error('note text differs');
  }

  const f = summarize(fresh);
  const a = summarize(append);
  const d = summarize(distinct);
  const l = summarize(loopPerNote);
  const loop10k = l.median * COMMITS;
  const ratio = loop10k / f.median;
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const lines = [
    '## Audit notes for 10,000 commits: recordEvents vs `git notes add` loop',
    '',
    `Machine: ${machine()}`,
    `Command: \`npm run bench:notes\` (\`node --import tsx bench/notes.ts\`): a repository of ${COMMITS.toLocaleString('en')} commits (fast-import); ` +
      `one event annotating all of them, ${RUNS} runs, each on a fresh notes ref; interleaved with ${LOOP_ROUNDS} rounds of ` +
      `\`git notes --ref=... add -m <block> <commit>\` over ${LOOP_COMMITS} commits, one process per note as a shell loop would run it.`,
    '',
    '| method | median | min | max | runs |',
    '| --- | --- | --- | --- | --- |',
    `| \`recordEvents\`, 10,000 new notes (1 fast-import + 1 update-ref transaction) | ${ms(f.median)} | ${ms(f.min)} | ${ms(f.max)} | ${f.n} |`,
    `| \`recordEvents\`, a 2nd event appended to the same 10,000 notes (reads them with cat-file --batch) | ${ms(a.median)} | ${ms(a.min)} | ${ms(a.max)} | ${a.n} |`,
    `| \`recordEvents\`, 10,000 distinct events, one per commit (10,000 different blobs) | ${ms(d.median)} | ${ms(d.min)} | ${ms(d.max)} | ${d.n} |`,
    `| \`git notes add\` loop, per note (${LOOP_COMMITS} notes a round) | ${ms(l.median)} | ${ms(l.min)} | ${ms(l.max)} | ${l.n} |`,
    `| \`git notes add\` loop, extrapolated to 10,000 notes (per-note median x 10,000) | ${ms(loop10k)} | ${ms(l.min * COMMITS)} | ${ms(l.max * COMMITS)} | - |`,
    '',
    `recordEvents is ${ratio.toFixed(0)}x faster than the loop (extrapolated from ${LOOP_COMMITS} measured notes, not run on all 10,000, ` +
      `which would take minutes). ` +
      `Targets: < 1.5 s -> ${verdict(f.median < 1500)} (${ms(f.median)}); >= 50x -> ${verdict(ratio >= 50)} (${ratio.toFixed(0)}x).`,
    '',
  ];
  console.log(lines.join('\n'));
} finally {
  repo.cleanup();
}
