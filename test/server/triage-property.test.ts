// Property (issue 11): whenever the fast path accepts a push, the full hook accepts it too. Both
// run in-process against real temporary repositories, on generated stdin, push options,
// `breakglass.*` settings (handed over as the shim reads them, or read by git) and ref layouts
// (loose, packed, symbolic refs; pinned or in-repository policy; a warm, stale or cold cache).
// Bounded runs with a fixed seed, so `npm test` stays short and a failure replays.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import { settingsFromShim } from '../../src/engine/triage.ts';
import { fastPreReceive, writeFastPathCache } from '../../src/server/fast-path.ts';
import { protectedPatterns } from '../../src/server/hook-full.ts';
import { runPreReceive } from '../../src/server/pre-receive.ts';
import { policyYaml } from '../helpers/fixtures.ts';

const RUNS = 100;
const ZERO = '0'.repeat(40);
const ID = '20261129T031200Z-7f3a9c';
const POLICY = policyYaml(); // protects refs/heads/main and refs/heads/release/*
const WIDER = POLICY.replace(
  '"refs/heads/release/*"]',
  '"refs/heads/release/*", "refs/heads/feature/*"]',
);

/** Refs a push may name: unprotected, protected, evidence, replace, recording-blocking, aliases. */
const REFS = [
  'refs/heads/feature/a',
  'refs/heads/topic',
  'refs/tags/v1',
  'refs/heads/alias',
  'refs/heads/latest',
  'refs/notes/other',
  'refs/heads/main',
  'refs/heads/release/1',
  `refs/breakglass/tickets/${ID}`,
  'refs/notes/breakglass',
  `refs/replace/${'a'.repeat(40)}`,
  'refs/notes/breakglass/x',
  'refs/notes',
  'refs/breakglass',
  `refs/breakglass/consumed/${ID}/x`,
];
const ALIAS_TARGETS = [
  'refs/heads/main',
  'refs/heads/feature/a',
  'refs/heads/missing',
  'refs/notes/breakglass',
  'refs/notes/breakglass/x',
  'refs/breakglass/tickets/x',
];

/** Mostly what the fast path may accept, sometimes anything. */
const often = <T>(usual: fc.Arbitrary<T>, rare: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 9, arbitrary: usual }, { weight: 1, arbitrary: rare });

const line = fc.record({
  ref: often(fc.constantFrom(...REFS.slice(0, 6)), fc.constantFrom(...REFS)),
  old: fc.constantFrom('zero', 'seed', 'other'),
  new: fc.constantFrom('zero', 'seed', 'other'),
});
const layout = fc.record({
  inRepo: fc.boolean(),
  packed: fc.boolean(),
  branches: fc.subarray(['refs/heads/feature/a', 'refs/heads/release/1', 'refs/heads/topic']),
  aliases: fc.oneof(
    fc.constant<[string, string][]>([]),
    fc.array(
      fc.tuple(
        fc.constantFrom('refs/heads/alias', 'refs/heads/latest'),
        fc.constantFrom(...ALIAS_TARGETS),
      ),
      { minLength: 1, maxLength: 2 },
    ),
  ),
  cache: fc.constantFrom('warm', 'warm', 'warm', 'stale', 'cold'),
});
const settings = fc.record({
  identity: often(fc.constantFrom(undefined, 'auto', 'none', 'unix'), fc.constant('bogus')),
  timeout: often(fc.constantFrom(undefined, '30', '30s'), fc.constantFrom('0', '99999', 'soon')),
  multiline: often(fc.constant(false), fc.constant(true)),
  handOver: fc.boolean(),
});
const input = fc.record({
  // Distinct refs (a ref named twice is malformed input: `odd` covers that).
  lines: fc.uniqueArray(line, { minLength: 1, maxLength: 4, selector: (l) => l.ref }),
  odd: often(fc.constant('none'), fc.constantFrom('garbage', 'duplicate', 'bad-name', 'short-sha')),
  options: often(
    fc.constant<string[]>([]),
    fc.array(
      fc.constantFrom(
        `breakglass=${ID}`,
        'breakglass=../../etc/passwd',
        'ci.skip',
        'x'.repeat(1100),
      ),
      { maxLength: 2 },
    ),
  ),
  badCount: often(fc.constant(false), fc.constant(true)),
});

type Of<A> = A extends fc.Arbitrary<infer T> ? T : never;

let root: string;
let template: string;
let seed: string;
let env: NodeJS.ProcessEnv;
let n = 0;

function git(gitDir: string, args: string[], input?: string): string {
  return execFileSync('git', ['--git-dir', gitDir, ...args], {
    env,
    encoding: 'utf8',
    ...(input === undefined ? {} : { input }),
  }).trim();
}

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'bg-triage-prop-'));
  env = {
    PATH: process.env.PATH,
    HOME: path.join(root, 'home'),
    LANG: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'a',
    GIT_AUTHOR_EMAIL: 'a@example.test',
    GIT_COMMITTER_NAME: 'a',
    GIT_COMMITTER_EMAIL: 'a@example.test',
  };
  fs.mkdirSync(env.HOME!);
  template = path.join(root, 'template.git');
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', template], { env });
  const blob = git(template, ['hash-object', '-w', '--stdin'], POLICY);
  const sub = git(template, ['mktree'], `100644 blob ${blob}\tpolicy.yml\n`);
  const tree = git(template, ['mktree'], `040000 tree ${sub}\t.breakglass\n`);
  seed = git(template, ['commit-tree', tree, '-m', 'seed']);
  git(template, ['update-ref', 'refs/heads/main', seed]);
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A fresh repository with the generated layout and settings; returns its git dir. */
function repository(l: Of<typeof layout>, s: Of<typeof settings>) {
  const gitDir = path.join(root, `repo-${++n}.git`);
  fs.cpSync(template, gitDir, { recursive: true });
  const policyFile = path.join(gitDir, 'policy.yml');
  fs.writeFileSync(policyFile, POLICY);
  const config = [
    ...(l.inRepo ? [] : [`\tpolicy = ${policyFile}`]),
    ...(s.identity !== undefined ? [`\tidentity = ${s.identity}`] : []),
    ...(s.timeout !== undefined ? [`\ttimeout = ${s.timeout}`] : []),
    ...(s.multiline ? ['\tnote = "one\\ntwo"'] : []),
  ];
  fs.appendFileSync(path.join(gitDir, 'config'), `[breakglass]\n${config.join('\n')}\n`);
  if (l.branches.length) {
    git(gitDir, ['update-ref', '--stdin'], l.branches.map((b) => `create ${b} ${seed}\n`).join(''));
  }
  if (l.packed) git(gitDir, ['pack-refs', '--all']);
  for (const [alias, target] of l.aliases) git(gitDir, ['symbolic-ref', alias, target]);
  return { gitDir, policyFile };
}

/** What the hook shim hands over: its one `git config`, then git's exit status. */
function shimText(gitDir: string): string {
  return execFileSync(
    'sh',
    ['-c', `git config --get-regexp '^breakglass\\.' 2>/dev/null; echo "$?"`],
    {
      env: { ...env, GIT_DIR: gitDir },
      encoding: 'utf8',
    },
  ).replace(/\n+$/, '');
}

function stdinOf(i: Of<typeof input>): Buffer {
  const sha = { zero: ZERO, seed, other: 'b'.repeat(40) };
  const lines = i.lines.map((l) => `${sha[l.old]} ${sha[l.new]} ${l.ref}`);
  if (i.odd === 'garbage') lines.push('not an update line');
  if (i.odd === 'duplicate' && lines.length) lines.push(lines[0]!);
  if (i.odd === 'bad-name') lines.push(`${ZERO} ${seed} refs/heads/a..b`);
  if (i.odd === 'short-sha') lines.push(`${ZERO} ${seed.slice(0, 39)} refs/heads/topic`);
  return Buffer.from(lines.map((x) => x + '\n').join(''));
}

function optionsEnv(i: Of<typeof input>): NodeJS.ProcessEnv {
  if (i.badCount) return { GIT_PUSH_OPTION_COUNT: 'many' };
  if (!i.options.length) return {};
  return Object.fromEntries([
    ['GIT_PUSH_OPTION_COUNT', String(i.options.length)],
    ...i.options.map((o, k) => [`GIT_PUSH_OPTION_${k}`, o]),
  ]);
}

it('whenever the fast path accepts, the full hook accepts too', async (t) => {
  const patterns = await protectedPatterns();
  let accepted = 0;
  await fc.assert(
    fc.asyncProperty(layout, settings, input, async (l, s, i) => {
      const { gitDir, policyFile } = repository(l, s);
      const handed = s.handOver ? settingsFromShim(shimText(gitDir)) : null;
      if (l.cache !== 'cold') {
        // The first push of the day: a miss, after which the entry writes the cache.
        const warmUp = Buffer.from(`${ZERO} ${seed} refs/heads/warm-up\n`);
        const miss = await fastPreReceive(gitDir, env, warmUp, handed);
        if (!miss.decided && miss.cacheMiss) writeFastPathCache(gitDir, miss.cacheMiss, patterns);
        if (l.cache === 'stale') fs.writeFileSync(policyFile, WIDER);
      }
      const stdin = stdinOf(i);
      const hookEnv = { ...env, ...optionsEnv(i) };
      const fast = await fastPreReceive(gitDir, hookEnv, stdin, handed);
      if (!fast.decided) return;
      accepted++;
      let out = '';
      const sink = { write: (c: string) => (out += c) };
      const code = await runPreReceive({
        gitDir,
        env: hookEnv,
        stdin,
        now: Date.now(),
        stdout: sink,
        stderr: sink,
        ...(handed ? { settings: handed } : {}),
      });
      assert.equal(code, 0, `fast path accepted, full hook refused:\n${stdin}\n${out}`);
    }),
    { numRuns: RUNS, seed: 20261208 },
  );
  t.diagnostic(`the fast path accepted ${accepted} of ${RUNS} generated pushes`);
  // Not vacuous: the generators reach the fast path's accepting branch.
  assert.ok(accepted >= RUNS / 5, `the fast path accepted only ${accepted} of ${RUNS} pushes`);
});
