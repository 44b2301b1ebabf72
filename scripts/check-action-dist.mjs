// CI: the committed Action bundle must be exactly what the sources build to. Rebuilds
// action/dist/index.js and fails (exit 1) on any difference from the committed file, as
// actions/typescript-action's check-dist job does. Fix: `node scripts/build.mjs action` and commit.
import { spawnSync } from 'node:child_process';

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.error) throw r.error;
  return r;
}

const build = run(process.execPath, ['scripts/build.mjs', 'action']);
if (build.status !== 0) {
  console.error('check:dist: building the action bundle failed');
  process.exit(1);
}
const diff = run('git', ['status', '--porcelain', '--', 'action/dist']);
if (diff.status !== 0) {
  console.error('check:dist: git status failed');
  process.exit(1);
}
if (diff.stdout.trim() !== '') {
  console.error('check:dist: action/dist differs from a fresh build of action/src and src:');
  console.error(diff.stdout);
  console.error(run('git', ['diff', '--stat', '--', 'action/dist']).stdout);
  console.error('Run `node scripts/build.mjs action` and commit action/dist/index.js.');
  process.exit(1);
}
console.log('check:dist: action/dist/index.js is up to date');
