// The pre-receive hook as git runs it (DESIGN §9), timed as whole processes, side by side:
//  (a) a push that touches no protected ref vs bare `node -e 0` (target <= 1.3x);
//  (b) a 1,000-commit break-glass push to main with 10,000 tickets in the namespace, with
//      `-o breakglass=<id>` and with auto-discovery (target < 300 ms median).
// Each bundle that exists is measured: dist/bg-sign.js (the whole CLI) and dist/bg-hook.cjs (the
// hooks' own build, loading dist/bg-hook-full.cjs when it must), so the report shows before and
// after. Each is given the `breakglass.*` settings as the installed shim hands them over
// (--git-config, read once per repository, untimed); the shim row times that `git config` too.
// Run: npm run build && node --import tsx bench/hook.ts [runs]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeEnvelope } from '../src/git/store.ts';
import { shimText } from '../src/server/install.ts';
import { addSignature, createTicketEnvelope, formatTicketId } from '../src/ticket/sign.ts';
import { keys, policyYaml } from '../test/helpers/fixtures.ts';
import { childCpuMs, machine, ms, summarize, type Summary } from './stats.ts';

const RUNS = Number(process.argv[2] ?? 30);
const PROTECTED_RUNS = Math.max(5, Math.round(RUNS / 2));
const TICKETS = 10_000;
const COMMITS = 1_000;
const ROOT = resolve(import.meta.dirname, '..');
// Oldest first; the last one is what the shims run now, and what the verdicts are about.
const BUNDLES = [
  { name: 'dist/bg-sign.js (whole CLI)', file: join(ROOT, 'dist/bg-sign.js') },
  { name: 'dist/bg-hook.cjs (hook build, CommonJS)', file: join(ROOT, 'dist/bg-hook.cjs') },
].filter((b) => existsSync(b.file));
const ZERO = '0'.repeat(40);
const BASE_ENV: NodeJS.ProcessEnv = {
  PATH: process.env.PATH,
  LANG: 'C',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Bench',
  GIT_AUTHOR_EMAIL: 'bench@example.com',
  GIT_COMMITTER_NAME: 'Bench',
  GIT_COMMITTER_EMAIL: 'bench@example.com',
};

interface Sample {
  wall: number;
  cpu: number;
}

/** Runs one process to completion with the given stdin; wall and CPU of it and its children. */
function timeProcess(
  argv: readonly string[],
  o: { cwd: string; env: NodeJS.ProcessEnv; input: string; expect?: number },
): Promise<Sample> {
  return new Promise((res, rej) => {
    const c0 = childCpuMs();
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: o.cwd,
      env: o.env,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdin.end(o.input);
    child.on('error', rej);
    child.on('close', (code) => {
      const wall = performance.now() - t0;
      if (o.expect !== undefined && code !== o.expect) {
        return rej(new Error(`${argv.join(' ')} exited ${code}, expected ${o.expect}\n${err}`));
      }
      res({ wall, cpu: childCpuMs() - c0 });
    });
  });
}

function git(gitDir: string, args: string[], input?: string, env = BASE_ENV): string {
  return execFileSync('git', ['--git-dir', gitDir, ...args], {
    env,
    input,
    maxBuffer: 1 << 28,
  })
    .toString()
    .trim();
}

interface Setup {
  gitDir: string;
  /** A second server repository whose policy is `.breakglass/policy.yml` on main (not pinned). */
  repoGitDir: string;
  quarantine: string;
  main: string;
  tip: string;
  ticket: string;
  setupMs: number;
}

/** Server repository, 10,000 tickets, and a quarantined 1,000-commit push on top of main. */
async function setup(dir: string): Promise<Setup> {
  const t0 = performance.now();
  const gitDir = join(dir, 'server.git');
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', gitDir], { env: BASE_ENV });
  const policyFile = join(dir, 'policy.yml');
  writeFileSync(policyFile, policyYaml());
  git(gitDir, ['config', 'breakglass.policy', policyFile]);
  const at = `${Math.floor(Date.now() / 1000) - 86_400} +0000`;
  const seed = [
    'commit refs/heads/main',
    'mark :1',
    `committer Dev <dev@example.com> ${at}`,
    'data 8',
    'initial',
    'M 100644 inline README.md',
    'data 10',
    '# acme/api',
    '',
    '',
  ].join('\n');
  git(gitDir, ['fast-import', '--quiet'], seed);
  const main = git(gitDir, ['rev-parse', 'refs/heads/main']);
  // The same repository with the policy in it instead of pinned (the default set-up).
  const repoGitDir = join(dir, 'server-repo-policy.git');
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', repoGitDir], { env: BASE_ENV });
  const policyText = Buffer.from(policyYaml());
  git(
    repoGitDir,
    ['fast-import', '--quiet'],
    seed.replace(
      '\n\n',
      `\nM 100644 inline .breakglass/policy.yml\ndata ${policyText.length}\n${policyText}\n\n`,
    ),
  );

  // The real ticket, held by alice, approved by bob, for main.
  const now = Date.now();
  const ticket = formatTicketId(now - 1000, 'f00d00');
  let env = createTicketEnvelope(
    {
      id: ticket,
      nonce: 'YmVuY2gtbm9uY2UtMTIzNA==',
      now: Math.floor(now / 1000) * 1000 - 5000,
      repository: 'acme/api',
      requester: 'alice',
      holder: 'alice',
      refs: ['refs/heads/main'],
      actions: ['push'],
      reason: 'INC-4711 bench',
      ttlMs: 30 * 60_000,
      maxUses: 1,
    },
    keys.alice,
  );
  env = addSignature(env, keys.bob);
  const ticketCommit = await writeEnvelope(
    { gitDir, env: BASE_ENV },
    'tickets',
    ticket,
    env,
    `ticket ${ticket}`,
    { name: 'alice', email: 'alice@example.com' },
  );
  // 10,000 more refs holding a copy of it: 100 in the last 50 minutes (auto-discovery reads
  // and verifies the newest 64 of those), the rest spread over the past year.
  const lines: string[] = [];
  for (let i = 0; i < TICKETS; i++) {
    const age = i < 100 ? (i + 2) * 30_000 : i * 3_150_000;
    lines.push(
      `create refs/breakglass/tickets/${formatTicketId(now - age, i.toString(16).padStart(6, '0'))} ${ticketCommit}`,
    );
  }
  git(gitDir, ['update-ref', '--stdin'], lines.join('\n') + '\n');
  git(gitDir, ['pack-refs', '--all']);

  // The push as git's quarantine holds it: new objects in their own directory.
  const quarantine = join(gitDir, 'objects', 'tmp_objdir-incoming-bench');
  mkdirSync(join(quarantine, 'pack'), { recursive: true });
  const parts: string[] = [];
  for (let i = 1; i <= COMMITS; i++) {
    const msg = `hotfix step ${i}`;
    const content = `step ${i}\n`;
    parts.push(
      `commit refs/heads/bench-scratch\nmark :${i}\ncommitter Alice <alice@example.com> ${at}\ndata ${msg.length}\n${msg}\n` +
        (i === 1 ? `from ${main}\n` : '') +
        `M 100644 inline hotfix.txt\ndata ${content.length}\n${content}\n`,
    );
  }
  parts.push(`reset refs/heads/bench-scratch\n\nget-mark :${COMMITS}\ndone\n`);
  const qenv = {
    ...BASE_ENV,
    GIT_OBJECT_DIRECTORY: quarantine,
    GIT_ALTERNATE_OBJECT_DIRECTORIES: join(gitDir, 'objects'),
  };
  const tip = git(gitDir, ['fast-import', '--quiet', '--done'], parts.join(''), qenv);
  return { gitDir, repoGitDir, quarantine, main, tip, ticket, setupMs: performance.now() - t0 };
}

/** The argument the installed shim adds: its one `git config`, then git's exit status. */
function settingsArg(gitDir: string): string {
  const text = execFileSync(
    'sh',
    ['-c', `git config --get-regexp '^breakglass\\.' 2>/dev/null; echo "$?"`],
    { cwd: gitDir, env: { ...BASE_ENV, GIT_DIR: '.' }, encoding: 'utf8' },
  );
  return `--git-config=${text.replace(/\n+$/, '')}`;
}

/** The environment git gives pre-receive during a push. */
function hookEnv(s: Setup, pushOptions: string[]): NodeJS.ProcessEnv {
  return {
    ...BASE_ENV,
    GIT_DIR: '.',
    GIT_QUARANTINE_PATH: s.quarantine,
    GIT_OBJECT_DIRECTORY: s.quarantine,
    GIT_ALTERNATE_OBJECT_DIRECTORIES: join(s.gitDir, 'objects'),
    REMOTE_USER: 'alice',
    ...(pushOptions.length
      ? Object.fromEntries([
          ['GIT_PUSH_OPTION_COUNT', String(pushOptions.length)],
          ...pushOptions.map((p, i) => [`GIT_PUSH_OPTION_${i}`, p]),
        ])
      : {}),
  };
}

/** Git processes a hook run starts (a logging `git` first on PATH; not timed). */
function countGit(bundle: string, s: Setup, env: NodeJS.ProcessEnv, input: string, dir: string) {
  const bin = join(dir, 'count-bin');
  const log = join(dir, 'git-calls.log');
  mkdirSync(bin, { recursive: true });
  const real = execFileSync('sh', ['-c', 'command -v git']).toString().trim();
  writeFileSync(
    join(bin, 'git'),
    `#!/bin/sh\necho "$*" >> ${JSON.stringify(log)}\nexec ${JSON.stringify(real)} "$@"\n`,
    { mode: 0o755 },
  );
  const hook = () =>
    spawnSync(process.execPath, [bundle, 'hook', 'pre-receive', settingsArg(s.gitDir)], {
      cwd: s.gitDir,
      env: { ...env, PATH: `${bin}:${env.PATH}` },
      input,
    });
  // A warm-up run first: the bundle may have been rebuilt meanwhile (a shared work tree), and
  // the first run after a rebuild refreshes the fast path's cache.
  hook();
  rmSync(join(s.gitDir, 'breakglass'), { recursive: true, force: true });
  rmSync(log, { force: true });
  const r = hook();
  rmSync(join(s.gitDir, 'breakglass'), { recursive: true, force: true });
  const calls = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : [];
  return {
    code: r.status,
    calls: calls.map((c) =>
      c
        .replace(/^(--no-replace-objects )?--git-dir \S+ /, '')
        .split(' ')
        .slice(0, 2)
        .join(' '),
    ),
  };
}

const fmt = (s: Summary) => `${ms(s.median)} | ${ms(s.min)} | ${ms(s.p90)} | ${ms(s.max)}`;
const cpuMean = (xs: Sample[]) => xs.reduce((a, x) => a + x.cpu, 0) / xs.length;

const dir = mkdtempSync(join(tmpdir(), 'bg-bench-hook-'));
const load0 = loadavg()[0]!;
try {
  if (BUNDLES.length === 0) throw new Error('no bundle: run npm run build first');
  const s = await setup(dir);
  const cwd = s.gitDir;
  const unprotectedInput = `${ZERO} ${s.main} refs/heads/feature/bench\n`;
  const protectedInput = `${s.main} ${s.tip} refs/heads/main\n`;
  const plainEnv = hookEnv(s, []);
  const optEnv = hookEnv(s, [`breakglass=${s.ticket}`]);
  const resetState = () => rmSync(join(s.gitDir, 'breakglass'), { recursive: true, force: true });

  // (a) unprotected push vs node -e 0, interleaved so every variant sees the same load.
  // Reference: Node plus one `git config` process, what reading the settings through git costs
  // (the floor of the previous design, which asked git on every push).
  const FLOOR = 'reference: node + one `git config` process';
  const floorScript =
    "require('node:child_process').spawn('git',['config','-z','--get-regexp','^breakglass\\\\.'],{stdio:'ignore'})";
  const last = BUNDLES[BUNDLES.length - 1]!;
  const REPO = `${last.name}, policy in the repository`;
  const SHIM = `as installed: hooks/pre-receive (sh, its one \`git config\` for every breakglass.* setting, then ${last.file.endsWith('.cjs') ? 'bg-hook.cjs' : 'the bundle'})`;
  const POST = `${last.name}: post-receive with nothing journalled`;
  const shim = join(dir, 'pre-receive');
  writeFileSync(
    shim,
    shimText('pre-receive', { bundle: join(ROOT, 'dist/bg-sign.js'), node: process.execPath }),
    { mode: 0o755 },
  );
  const repoEnv = {
    ...plainEnv,
    GIT_QUARANTINE_PATH: undefined,
    GIT_OBJECT_DIRECTORY: undefined,
    GIT_ALTERNATE_OBJECT_DIRECTORIES: undefined,
  };
  const variants: [string, string[], string, NodeJS.ProcessEnv, string, number | undefined][] = [
    ['node -e 0', [process.execPath, '-e', '0'], cwd, plainEnv, '', undefined],
    [FLOOR, [process.execPath, '-e', floorScript], cwd, plainEnv, '', 0],
    ...BUNDLES.map(
      (b) =>
        [
          b.name,
          [process.execPath, b.file, 'hook', 'pre-receive', settingsArg(cwd)],
          cwd,
          plainEnv,
          unprotectedInput,
          0,
        ] as [string, string[], string, NodeJS.ProcessEnv, string, number],
    ),
    [
      REPO,
      [process.execPath, last.file, 'hook', 'pre-receive', settingsArg(s.repoGitDir)],
      s.repoGitDir,
      repoEnv,
      unprotectedInput,
      0,
    ],
    [SHIM, ['/bin/sh', shim], cwd, plainEnv, unprotectedInput, 0],
    [
      POST,
      [process.execPath, last.file, 'hook', 'post-receive', settingsArg(cwd)],
      cwd,
      plainEnv,
      unprotectedInput,
      0,
    ],
  ];
  const a = new Map<string, Sample[]>(variants.map(([name]) => [name, []]));
  for (let i = 0; i < RUNS + 2; i++) {
    for (const [name, argv, where, env, input, expect] of variants) {
      const x = await timeProcess(argv, {
        cwd: where,
        env,
        input,
        ...(expect === undefined ? {} : { expect }),
      });
      if (i >= 2) a.get(name)!.push(x);
    }
  }
  // (b) the protected push, with -o and with auto-discovery; state reset between runs.
  const b = new Map<string, Sample[]>();
  for (let i = 0; i < PROTECTED_RUNS + 1; i++) {
    for (const bundle of BUNDLES) {
      for (const [mode, env] of [
        ['-o breakglass=<id>', optEnv],
        ['auto-discovery', plainEnv],
      ] as const) {
        resetState();
        const key = `${bundle.name}|${mode}`;
        const y = await timeProcess(
          [process.execPath, bundle.file, 'hook', 'pre-receive', settingsArg(cwd)],
          {
            cwd,
            env,
            input: protectedInput,
            expect: 0,
          },
        );
        if (i > 0) b.set(key, [...(b.get(key) ?? []), y]);
      }
    }
  }
  resetState();
  const gitUnprotected = countGit(last.file, s, plainEnv, unprotectedInput, dir);
  const gitRepo = countGit(
    last.file,
    { ...s, gitDir: s.repoGitDir },
    repoEnv,
    unprotectedInput,
    dir,
  );
  const gitOption = countGit(last.file, s, optEnv, protectedInput, dir);
  const gitAuto = countGit(last.file, s, plainEnv, protectedInput, dir);
  const load1 = loadavg()[0]!;

  const base = summarize(a.get('node -e 0')!.map((x) => x.wall));
  const baseCpu = cpuMean(a.get('node -e 0')!);
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const out: string[] = [
    '## Server hook: pre-receive as git runs it',
    '',
    `Machine: ${machine()}; 1-minute load average ${load0.toFixed(1)} at start, ${load1.toFixed(1)} at end (other jobs share these cores).`,
    `Command: \`npm run bench:hook\` (\`node --import tsx bench/hook.ts ${RUNS}\`). Each run is a whole \`node <bundle> hook pre-receive\` process started the way git starts it ` +
      `(cwd = the bare repository, \`GIT_DIR=.\`, quarantine variables, \`REMOTE_USER=alice\`, the update lines on stdin), timed from spawn to exit. ` +
      `Policy pinned with \`breakglass.policy\` unless the row says otherwise. Variants interleaved; CPU = user + system of the process and its git children (mean, 10 ms ticks). ` +
      `Setup (repository, ${TICKETS.toLocaleString('en')} ticket refs, ${COMMITS.toLocaleString('en')} quarantined commits): ${ms(s.setupMs)}.`,
    '',
    `### (a) Push touching no protected ref vs \`node -e 0\` (${RUNS} runs each)`,
    '',
    '| process | wall median | min | p90 | max | CPU mean | median / node -e 0 |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const [name, xs] of a) {
    const w = summarize(xs.map((x) => x.wall));
    out.push(
      `| ${name} | ${fmt(w)} | ${ms(cpuMean(xs))} | ${(w.median / base.median).toFixed(2)}x (CPU ${(cpuMean(xs) / baseCpu).toFixed(2)}x) |`,
    );
  }
  const ratio = (name: string) => summarize(a.get(name)!.map((x) => x.wall)).median / base.median;
  const cpuRatio = (name: string) => cpuMean(a.get(name)!) / baseCpu;
  const worstA = Math.max(ratio(last.name), ratio(REPO));
  const calls = (c: { calls: string[] }) => `${c.calls.length} (${c.calls.join('; ') || 'none'})`;
  out.push(
    '',
    `Target <= 1.3x \`node -e 0\`: ${verdict(worstA <= 1.3)} (${ratio(last.name).toFixed(2)}x wall, ${cpuRatio(last.name).toFixed(2)}x CPU with ${last.name}, pinned policy; ` +
      `${ratio(REPO).toFixed(2)}x wall, ${cpuRatio(REPO).toFixed(2)}x CPU with the policy in the repository). ` +
      `Git processes it starts on a warm cache: ${calls(gitUnprotected)} pinned, ${calls(gitRepo)} in the repository. ` +
      `Through the installed shim (sh and its one \`git config\` for every breakglass.* setting, handed to Node): ${ratio(SHIM).toFixed(2)}x.`,
    '',
    `### (b) 1,000-commit break-glass push to main, ${TICKETS.toLocaleString('en')} tickets in the namespace (${PROTECTED_RUNS} runs each)`,
    '',
    'Each run accepts the push, reserves the ticket use and journals the event (state reset between runs, untimed).',
    '',
    '| process | ticket found by | wall median | min | p90 | max | CPU mean |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  let worst = 0;
  for (const [key, xs] of b) {
    const [name, mode] = key.split('|');
    const w = summarize(xs.map((x) => x.wall));
    if (name === last.name) worst = Math.max(worst, w.median);
    out.push(`| ${name} | ${mode} | ${fmt(w)} | ${ms(cpuMean(xs))} |`);
  }
  out.push(
    '',
    `Target < 300 ms median: ${verdict(worst < 300)} (slowest mode ${ms(worst)} with ${last.name}). ` +
      `Git processes: ${gitOption.calls.length} with -o (${gitOption.calls.join('; ')}), ${gitAuto.calls.length} with auto-discovery (${gitAuto.calls.join('; ')}).`,
    '',
  );
  console.log(out.join('\n'));
  // Machine-readable figures for bench/run.ts.
  if (process.env.BG_BENCH_JSON) {
    writeFileSync(
      process.env.BG_BENCH_JSON,
      JSON.stringify({
        a: Object.fromEntries([...a].map(([k, xs]) => [k, summarize(xs.map((x) => x.wall))])),
        b: Object.fromEntries([...b].map(([k, xs]) => [k, summarize(xs.map((x) => x.wall))])),
      }),
    );
  }
} finally {
  if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
  else console.error(`kept ${dir}`);
}
