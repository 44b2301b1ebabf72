// Node 20's test runner takes no glob patterns: find the test files and hand them over.
// Usage: node scripts/run-tests.mjs [dir-or-file ...]   (default: test/)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function collect(p, out) {
  if (statSync(p).isDirectory()) {
    for (const e of readdirSync(p).sort()) collect(join(p, e), out);
  } else if (p.endsWith('.test.ts')) {
    out.push(p);
  }
  return out;
}

const roots = process.argv.slice(2);
const files = (roots.length ? roots : ['test']).flatMap((r) => collect(r, []));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const concurrency = process.env.BG_TEST_CONCURRENCY ?? '2';
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
