// Long fuzz run: `npm run fuzz [-- totalRuns]` (default 100,000 inputs across all targets).
import fc from 'fast-check';
import { fuzzTargets } from '../test/fuzz/targets.ts';

const total = Number(process.argv[2] ?? 100_000);
const targets = fuzzTargets();
const per = Math.ceil(total / targets.length);
const seed = Number(process.env.BG_FUZZ_SEED ?? Date.now() % 2 ** 31);
console.log(`fuzz: ${targets.length} targets x ${per} runs, seed ${seed}`);
let failed = 0;
for (const t of targets) {
  const started = process.hrtime.bigint();
  const r = await fc.check(t.property, { numRuns: per, seed });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.failed) {
    failed++;
    console.log(`FAIL ${t.name}\n${fc.defaultReportMessage(r)}`);
  } else {
    console.log(`ok   ${t.name}: ${r.numRuns} runs in ${(ms / 1000).toFixed(1)} s`);
  }
}
console.log(
  failed
    ? `${failed} target(s) failed`
    : `all ${targets.length} targets passed (${per * targets.length} inputs)`,
);
process.exit(failed ? 1 : 0);
