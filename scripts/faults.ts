// Fault injection for the evidence path (issue 6 item 4): `npm run faults [-- trials]`.
// Builds the CLI first (npm script), then:
//  1. kills post-receive (SIGKILL, the node process or its whole group with git) at random
//     moments, 100 trials by default, and recovers with `bg-sign audit flush`;
//  2. stale lock files (recorder lock, processing/ leftovers, orphan reservations, a git .lock);
//  3. a broken journal directory: a ticketed push must be rejected (fail closed);
//  4. a concurrent `git notes --ref=breakglass add` loop while post-receive records.
// Every trial must end with every accepted event recorded exactly once. Exit 1 otherwise.
import {
  brokenJournalTrial,
  concurrentWriterTrial,
  killTrial,
  makePendingTemplate,
  staleLocksTrial,
  type KillTrial,
} from '../test/faults/lib.ts';

const TRIALS = Number(process.argv[2] ?? process.env.BG_FAULT_TRIALS ?? 100);
const PUSHES = Number(process.env.BG_FAULT_PUSHES ?? 4);
const WRITER_TRIALS = Number(process.env.BG_FAULT_WRITER_TRIALS ?? 10);

const started = performance.now();
let failures = 0;
const log = (s: string) => console.log(s);

const t0 = performance.now();
const template = await makePendingTemplate(PUSHES);
log(
  `template: ${PUSHES} accepted break-glass pushes pending in the journal (built in ${Math.round(performance.now() - t0)} ms); an undisturbed post-receive takes ${Math.round(template.flushMs)} ms`,
);
try {
  // 1. Kills. Delays spread over 0..1.3x an undisturbed run, so every phase gets hit.
  const span = template.flushMs * 1.3;
  const trials: KillTrial[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const tr = await killTrial(template, Math.random() * span, i % 2 ? 'group' : 'node');
    trials.push(tr);
    if (!tr.ok) {
      failures++;
      log(
        `  FAIL trial ${i + 1} (${tr.mode}, ${Math.round(tr.delayMs)} ms, ${tr.phase}): ${JSON.stringify(tr.verdict)} ${tr.note ?? ''}`,
      );
    }
  }
  const phases = new Map<string, { n: number; ok: number; flushes: number; aged: number }>();
  for (const tr of trials) {
    const p = phases.get(tr.phase) ?? { n: 0, ok: 0, flushes: 0, aged: 0 };
    p.n++;
    if (tr.ok) p.ok++;
    p.flushes = Math.max(p.flushes, tr.flushes);
    if (tr.aged) p.aged++;
    phases.set(tr.phase, p);
  }
  log(
    `\n1. post-receive killed at random (${TRIALS} trials, SIGKILL after 0..${Math.round(span)} ms; odd trials kill the process group incl. git):`,
  );
  log(
    '| state the kill left | trials | recorded exactly once after recovery | needed the 10 min stale-claim age | most flushes |',
  );
  log('| --- | --- | --- | --- | --- |');
  for (const [phase, p] of phases) {
    log(`| ${phase} | ${p.n} | ${p.ok}/${p.n} | ${p.aged} | ${p.flushes} |`);
  }
  const okTrials = trials.filter((t) => t.ok).length;
  log(
    `events: ${okTrials * PUSHES}/${TRIALS * PUSHES} recorded exactly once (notes parsed with parseNote, one consumed/ commit each)`,
  );

  // 2. Stale locks.
  const stale = await staleLocksTrial(template);
  if (!stale.ok) failures++;
  log(`\n2. stale lock files: ${stale.ok ? 'all recovered' : 'FAILED'}`);
  for (const d of stale.details) log(`   - ${d}`);

  // 3. Broken journal directory.
  log('\n3. journal directory unusable:');
  for (const which of ['pending', 'tmp', 'reservations'] as const) {
    const r = await brokenJournalTrial(which);
    if (!r.ok) failures++;
    log(`   - ${r.ok ? 'ok  ' : 'FAIL'} ${r.detail}`);
  }

  // 4. Concurrent notes writer.
  log(
    `\n4. concurrent \`git notes --ref=breakglass add\` loop during post-receive (${WRITER_TRIALS} trials):`,
  );
  let lostWriter = 0;
  let overwritten = 0;
  for (let i = 0; i < WRITER_TRIALS; i++) {
    const r = await concurrentWriterTrial(template);
    if (!r.ok) failures++;
    lostWriter += r.writerNotes - r.writerSurvived;
    overwritten += r.overwritten;
    log(`   - ${r.ok ? 'ok  ' : 'FAIL'} ${r.detail}`);
  }
  log(
    `   events: ${WRITER_TRIALS * PUSHES - overwritten}/${WRITER_TRIALS * PUSHES} in their note exactly once, ${overwritten} note block(s) overwritten by the foreign writer ` +
      `(git notes updates the ref without an old-value check; those events keep their consumed/ record and their audit row), none duplicated; ` +
      `foreign notes lost: ${lostWriter}`,
  );
} finally {
  await template.close();
}
log(
  `\n${failures ? `${failures} FAILURE(S)` : 'all fault trials passed'} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
process.exit(failures ? 1 : 0);
