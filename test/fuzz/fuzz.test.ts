// A short fuzz run on every `npm test`; `npm run fuzz` runs the same targets at length.
import { test } from 'node:test';
import fc from 'fast-check';
import { fuzzTargets } from './targets.ts';

const RUNS = Number(process.env.BG_FUZZ_RUNS ?? 300);

for (const t of fuzzTargets()) {
  test(`fuzz (short): ${t.name}`, () => {
    fc.assert(t.property, { numRuns: RUNS, seed: Number(process.env.BG_FUZZ_SEED ?? 20261129) });
  });
}
