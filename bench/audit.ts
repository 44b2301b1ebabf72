// `bg-sign audit` over 100,000 events (DESIGN §9: < 3 s, < 200 MiB), timed on the built CLI.
// The repository is made with one fast-import: 100,000 commits on main (the policy in the
// first), one ticket per event (signed, on refs/breakglass/tickets/<id>), one use record per
// event (refs/breakglass/consumed/<id>), one audit note per event (refs/notes/breakglass) and
// signed reviews for 1,000 of the tickets (verified by the audit under the policy).
// Run: npm run bench:audit   (node --import tsx bench/audit.ts [events])
// BENCH_AUDIT_REPO=<dir>: keep the generated repository in <dir> and reuse it on later runs with
// the same event count and generator (saves the ~20 s fast-import when profiling); by default
// every run makes a fresh repository in a temp dir and removes it.
// BENCH_AUDIT_BASELINE=<bundle> [BENCH_AUDIT_BASELINE_LABEL=<name>]: also time that bg-sign.js
// (e.g. an older commit built elsewhere), alternating with dist/bg-sign.js run by run, and print
// a before/after table measured side by side.
import { createHash, createPrivateKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { formatUseRecord, useRecordOf } from '../src/audit/consumed.ts';
import { formatNoteBlock, type AuditEvent } from '../src/audit/note.ts';
import { encodeReview, REVIEW_PAYLOAD_TYPE } from '../src/audit/review.ts';
import { pae, serializeEnvelope, type Envelope } from '../src/ticket/dsse.ts';
import { payloadDigest } from '../src/ticket/verify.ts';
import type { SigningKey } from '../src/ticket/keys.ts';
import { encodePayload, TICKET_PAYLOAD_TYPE } from '../src/ticket/payload.ts';
import { buildTicketPayload, formatTicketId } from '../src/ticket/sign.ts';
import { formatTime } from '../src/ticket/time.ts';
import { keys, policyYaml, T0, ticketRequest } from '../test/helpers/fixtures.ts';
import { machine, ms, summarize } from './stats.ts';

const EVENTS = Number(process.argv[2] ?? 100_000);
const REVIEWED = Math.min(1000, EVENTS);
const RUNS = Number(process.env.BENCH_AUDIT_RUNS ?? 3);
const ROOT = resolve(import.meta.dirname, '..');
const BUNDLE = join(ROOT, 'dist', 'bg-sign.js');
const ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Bench',
  GIT_AUTHOR_EMAIL: 'bench@example.com',
  GIT_COMMITTER_NAME: 'Bench',
  GIT_COMMITTER_EMAIL: 'bench@example.com',
};

// Native Ed25519 signing (the CLI signs with tweetnacl; here speed matters, the bytes are the same).
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const nativeKeys = new Map<SigningKey, KeyObject>();
function sig(key: SigningKey, type: string, payload: Buffer) {
  let k = nativeKeys.get(key);
  if (!k) {
    k = createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519, Buffer.from(key.secretKey.subarray(0, 32))]),
      format: 'der',
      type: 'pkcs8',
    });
    nativeKeys.set(key, k);
  }
  return { keyid: key.publicKey.keyid, sig: nodeSign(null, pae(type, payload), k) };
}

function data(text: string | Buffer): string {
  const b = Buffer.isBuffer(text) ? text : Buffer.from(text);
  return `data ${b.length}\n${b.toString('utf8')}\n`;
}

/** Writes the whole repository with one fast-import; returns the git dir. */
function makeRepo(dir: string): string {
  const gitDir = join(dir, 'bench.git');
  const tStart = performance.now();
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', gitDir], { env: ENV });
  const chunks: string[] = [];
  const at = (i: number) => `${Math.floor(T0 / 1000) + i * 60} +0000`;
  // Main: 100,000 commits, the first with the policy (the audit reads it from HEAD).
  for (let i = 1; i <= EVENTS; i++) {
    chunks.push(
      `commit refs/heads/main\nmark :${i}\ncommitter Dev <dev@example.com> ${at(i)}\n${data(`change ${i}`)}`,
    );
    if (i === 1) chunks.push(`M 100644 inline .breakglass/policy.yml\n${data(policyYaml())}`);
    chunks.push('\n');
  }
  let mark = EVENTS;
  const noteMarks: { blob: number; commit: number }[] = [];
  // Evidence refs are written straight into packed-refs after fast-import (200,000 loose refs
  // would dominate the setup); each commit is made on a scratch branch, reset every time.
  const refMarks: { ref: string; mark: number }[] = [];
  let spareSigs: ReturnType<typeof sig>[] | undefined;
  const evidence = (ref: string, body: string) => {
    const m = ++mark;
    refMarks.push({ ref, mark: m });
    chunks.push(`reset refs/bench/scratch\ncommit refs/bench/scratch\nmark :${m}\n${body}`);
  };
  for (let i = 1; i <= EVENTS; i++) {
    const now = T0 + i * 60_000;
    const id = formatTicketId(now, i.toString(16).padStart(6, '0'));
    const payload = encodePayload(
      buildTicketPayload(
        ticketRequest({ id, now, nonce: Buffer.from(id).toString('base64').slice(0, 24) }),
      ),
    );
    const env: Envelope = {
      payloadType: TICKET_PAYLOAD_TYPE,
      payload,
      // Only reviewed tickets are verified by the audit (to check their reviews); the others
      // reuse one pair of signatures, which keeps setup for 100,000 tickets to seconds.
      signatures:
        i <= REVIEWED || !spareSigs
          ? (spareSigs = [
              sig(keys.alice, TICKET_PAYLOAD_TYPE, payload),
              sig(keys.bob, TICKET_PAYLOAD_TYPE, payload),
            ])
          : spareSigs,
    };
    const tb = ++mark;
    chunks.push(`blob\nmark :${tb}\n${data(serializeEnvelope(env))}`);
    evidence(
      `refs/breakglass/tickets/${id}`,
      `committer Alice <alice@example.com> ${at(i)}\n${data(`breakglass: request ${id}`)}M 100644 :${tb} ticket.json\n\n`,
    );
    const oldSha = i === 1 ? '0'.repeat(40) : null;
    const event: AuditEvent = {
      kind: 'breakglass',
      ticketId: id,
      actions: ['push'],
      ref: 'refs/heads/main',
      // The bench keeps ids symbolic: fast-import resolves marks, not these; use fixed fakes.
      oldSha: oldSha ?? (i - 1).toString(16).padStart(40, 'a'),
      newSha: i.toString(16).padStart(40, 'b'),
      pusher: 'alice',
      requester: { principal: 'alice', keyid: keys.alice.publicKey.keyid },
      approvers: [{ principal: 'bob', keyid: keys.bob.publicKey.keyid }],
      reason: `INC-${4700 + (i % 100)} payment outage hotfix #${i}`,
      window: { notBefore: formatTime(now), expiresAt: formatTime(now + 15 * 60_000) },
      recordedAt: formatTime(now + 120_000),
      recordedBy: 'pre-receive@git.example.com',
    };
    evidence(
      `refs/breakglass/consumed/${id}`,
      `committer git-breakglass <server@example.com> ${at(i)}\n${data(formatUseRecord(useRecordOf(event, 1)))}\n`,
    );
    const nb = ++mark;
    chunks.push(`blob\nmark :${nb}\n${data(formatNoteBlock(event))}`);
    noteMarks.push({ blob: nb, commit: i });
    if (i <= REVIEWED) {
      const review = encodeReview({
        type: 'git-breakglass/review',
        version: 1,
        ticket: id,
        ticketDigest: payloadDigest(payload),
        reviewer: 'carol',
        outcome: i % 10 === 0 ? 'false-emergency' : 'justified',
        note: 'checked against the incident timeline',
        reviewedAt: formatTime(now + 86_400_000),
      });
      const renv: Envelope = {
        payloadType: REVIEW_PAYLOAD_TYPE,
        payload: review,
        signatures: [sig(keys.carol, REVIEW_PAYLOAD_TYPE, review)],
      };
      const rb = ++mark;
      chunks.push(`blob\nmark :${rb}\n${data(serializeEnvelope(renv))}`);
      evidence(
        `refs/breakglass/reviews/${id}`,
        `committer Carol <carol@example.com> ${at(i + 1440)}\n${data(`breakglass: review ${id}`)}M 100644 :${rb} review.json\n\n`,
      );
    }
  }
  chunks.push(
    `commit refs/notes/breakglass\ncommitter git-breakglass <server@example.com> ${at(EVENTS)}\n${data('notes')}`,
  );
  for (const n of noteMarks) chunks.push(`N :${n.blob} :${n.commit}\n`);
  chunks.push('\n');
  const tGen = performance.now();
  if (process.env.BENCH_VERBOSE) console.error(`generate ${ms(tGen - tStart)}`);
  const marksFile = join(dir, 'marks');
  const r = spawnSync(
    'git',
    ['--git-dir', gitDir, 'fast-import', '--quiet', '--depth=0', `--export-marks=${marksFile}`],
    { env: ENV, input: chunks.join(''), maxBuffer: 1 << 30 },
  );
  if (r.status !== 0) throw new Error(`fast-import failed: ${r.stderr.toString()}`);
  const tPack = performance.now();
  const shaOf = new Map<number, string>();
  for (const line of readFileSync(marksFile, 'utf8').split('\n')) {
    const [m, sha] = line.split(' ');
    if (m && sha) shaOf.set(Number(m.slice(1)), sha);
  }
  execFileSync('git', ['--git-dir', gitDir, 'pack-refs', '--all'], { env: ENV });
  const packed = readFileSync(join(gitDir, 'packed-refs'), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#') && !l.endsWith(' refs/bench/scratch'));
  for (const { ref, mark: m } of refMarks) packed.push(`${shaOf.get(m)!} ${ref}`);
  const byRef = (l: string) => l.slice(l.indexOf(' ') + 1);
  packed.sort((x, y) => (byRef(x) < byRef(y) ? -1 : 1));
  writeFileSync(
    join(gitDir, 'packed-refs'),
    `# pack-refs with: peeled fully-peeled sorted \n${packed.join('\n')}\n`,
  );
  if (process.env.BENCH_VERBOSE) {
    console.error(`fast-import ${ms(tPack - tGen)}, refs ${ms(performance.now() - tPack)}`);
  }
  return gitDir;
}

// Loaded into the CLI process (`node --import`): its own peak RSS and CPU, apart from git's.
const EXIT_PROBE = `process.on('exit', () => { const r = process.resourceUsage(); process.stderr.write('\\nBENCH node maxRSS ' + r.maxRSS + ' cpu ' + Math.round((r.userCPUTime + r.systemCPUTime) / 1000) + '\\n'); });\n`;

interface Run {
  readonly wallMs: number;
  /** User + system CPU of the process and its git children (less sensitive to other load). */
  readonly cpuMs: number;
  readonly maxRssKiB: number;
  /** The Node process alone. */
  readonly nodeRssKiB: number;
  readonly nodeCpuMs: number;
}

function timeAudit(gitDir: string, args: string[], probe: string, bundle = BUNDLE): Run {
  const r = spawnSync(
    '/usr/bin/time',
    ['-v', process.execPath, '--import', probe, bundle, 'audit', gitDir, ...args],
    {
      env: ENV,
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    },
  );
  if (r.status !== 0) throw new Error(`audit failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)/.exec(r.stderr);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  if (!wall || !rss)
    throw new Error(`could not read /usr/bin/time output: ${r.stderr.slice(-500)}`);
  const seconds = wall[1]!.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
  const user = /User time \(seconds\): ([\d.]+)/.exec(r.stderr);
  const sys = /System time \(seconds\): ([\d.]+)/.exec(r.stderr);
  const cpuMs = (Number(user?.[1] ?? 0) + Number(sys?.[1] ?? 0)) * 1000;
  const node = /BENCH node maxRSS (\d+) cpu (\d+)/.exec(r.stderr);
  return {
    wallMs: seconds * 1000,
    cpuMs,
    maxRssKiB: Number(rss[1]),
    nodeRssKiB: Number(node?.[1] ?? 0),
    nodeCpuMs: Number(node?.[2] ?? 0),
  };
}

/**
 * The repository kept in BENCH_AUDIT_REPO, made there first if it is not already (same event
 * count and the same generator: this file and the sources it encodes records with); undefined
 * without the variable.
 */
function cachedRepo(): { gitDir: string; setupMs: number } | undefined {
  const keep = process.env.BENCH_AUDIT_REPO;
  if (!keep) return undefined;
  const hash = createHash('sha256');
  for (const f of [
    'bench/audit.ts',
    'src/audit/consumed.ts',
    'src/audit/note.ts',
    'src/audit/review.ts',
    'test/helpers/fixtures.ts',
  ]) {
    hash.update(readFileSync(join(ROOT, f)));
  }
  const stamp = `${EVENTS} ${hash.digest('hex')}`;
  const dir = resolve(keep, String(EVENTS));
  const stampFile = join(dir, 'stamp');
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8').split('\n')[0] === stamp) {
    process.stderr.write(`bench: reusing ${dir}/bench.git\n`);
    const setupMs = Number(readFileSync(stampFile, 'utf8').split('\n')[1]);
    return { gitDir: join(dir, 'bench.git'), setupMs };
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const gitDir = makeRepo(dir);
  const setupMs = performance.now() - t0;
  writeFileSync(stampFile, `${stamp}\n${setupMs}\n`);
  return { gitDir, setupMs };
}

const build = spawnSync(process.execPath, ['scripts/build.mjs', 'cli'], {
  cwd: ROOT,
  stdio: 'inherit',
});
if (build.status !== 0) throw new Error('build failed');
// Thrown to leave the try block below with BENCH_SETUP_ONLY (process.exit would skip `finally`
// and leave the temporary directory behind).
const SETUP_ONLY = Symbol('setup only');
let keep = false;
const dir = mkdtempSync(join(tmpdir(), 'bg-bench-audit-'));
const probe = join(dir, 'probe.mjs');
writeFileSync(probe, EXIT_PROBE);
try {
  const t0 = performance.now();
  const cached = cachedRepo();
  const gitDir = cached?.gitDir ?? makeRepo(dir);
  const setupMs = cached?.setupMs ?? performance.now() - t0;
  if (process.env.BENCH_SETUP_ONLY) {
    // For profiling by hand: keep the repository (BENCH_AUDIT_REPO, or BENCH_KEEP) and stop here.
    console.log(gitDir);
    if (!cached) keep = true;
    throw SETUP_ONLY;
  }
  // Sanity: the report has every event, with the reviews verified.
  const check = spawnSync(process.execPath, [BUNDLE, 'audit', gitDir, '--format', 'json'], {
    env: ENV,
    maxBuffer: 1 << 30,
    encoding: 'utf8',
  });
  if (check.status !== 0) throw new Error(`audit failed: ${check.stderr}`);
  const report = JSON.parse(check.stdout);
  if (report.rows.length !== EVENTS)
    throw new Error(`report has ${report.rows.length} rows, want ${EVENTS}`);
  if (report.summary.reviewed !== REVIEWED)
    throw new Error(`${report.summary.reviewed} reviewed, want ${REVIEWED}`);
  if (report.problems.length)
    throw new Error(`problems: ${JSON.stringify(report.problems.slice(0, 3))}`);

  const formats: [string, string[]][] = [
    ['json', ['--format', 'json', '--output', '/dev/null']],
    ['csv', ['--format', 'csv', '--output', '/dev/null']],
    ['--unreviewed (json)', ['--unreviewed', '--format', 'json', '--output', '/dev/null']],
  ];
  const baseline = process.env.BENCH_AUDIT_BASELINE;
  const baselineLabel = process.env.BENCH_AUDIT_BASELINE_LABEL ?? baseline;
  const rows: string[] = [];
  const sideBySide: string[] = [];
  const brief = (runs: Run[]) => {
    const w = summarize(runs.map((x) => x.wallMs));
    return `${ms(w.median)} (${ms(w.min)}-${ms(w.max)}) | ${ms(summarize(runs.map((x) => x.nodeCpuMs)).median)} / ${ms(summarize(runs.map((x) => x.cpuMs)).median)} | ${(Math.max(...runs.map((x) => x.nodeRssKiB)) / 1024).toFixed(0)} MiB |`;
  };
  let jsonMedian = 0;
  let jsonRss = 0;
  for (const [name, args] of formats) {
    const runs: Run[] = [];
    const before: Run[] = [];
    for (let i = 0; i < RUNS; i++) {
      runs.push(timeAudit(gitDir, args, probe));
      if (baseline) before.push(timeAudit(gitDir, args, probe, baseline));
    }
    if (baseline) {
      sideBySide.push(`| \`${name}\` | before (${baselineLabel}) | ${brief(before)}`);
      sideBySide.push(`| \`${name}\` | after (this tree) | ${brief(runs)}`);
    }
    const w = summarize(runs.map((x) => x.wallMs));
    const peak = Math.max(...runs.map((x) => x.maxRssKiB)) / 1024;
    const cpu = summarize(runs.map((x) => x.cpuMs));
    const nodeCpu = summarize(runs.map((x) => x.nodeCpuMs));
    const nodePeak = Math.max(...runs.map((x) => x.nodeRssKiB)) / 1024;
    if (name === 'json') {
      jsonMedian = w.median;
      jsonRss = nodePeak;
    }
    rows.push(
      `| \`${name}\` | ${ms(w.median)} | ${ms(w.min)} | ${ms(w.max)} | ${ms(nodeCpu.median)} / ${ms(cpu.median)} | ${nodePeak.toFixed(0)} MiB / ${peak.toFixed(0)} MiB | ${w.n} |`,
    );
  }
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log(
    [
      `## \`bg-sign audit\` over ${EVENTS.toLocaleString('en')} events`,
      '',
      `Machine: ${machine()}; load average at the start ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' / ')} (other jobs share these cores)`,
      `Command: \`npm run bench:audit\` (\`node --import tsx bench/audit.ts\`). Repository made with one fast-import in ${ms(setupMs)}: ` +
        `${EVENTS.toLocaleString('en')} commits, ${EVENTS.toLocaleString('en')} signed tickets, use records and audit notes (one per event), ` +
        `${REVIEWED.toLocaleString('en')} signed reviews (verified against their tickets under the policy at HEAD; a ticket is read only when a review or revocation names it or its note leaves something out, as in any audit run). ` +
        `Timed: \`/usr/bin/time -v node dist/bg-sign.js audit <git-dir> ... --output /dev/null\`, the whole process ` +
        `(Node start-up, the git processes, the report); CPU and peak RSS are given for the Node process (measured inside it) and as /usr/bin/time reports them (CPU summed over git children, RSS the largest single process).`,
      '',
      '| report | wall median | wall min | wall max | CPU median, node / with git | peak RSS, node / largest incl. git | runs |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      ...rows,
      '',
      `Targets: < 3 s -> ${verdict(jsonMedian < 3000)} (${ms(jsonMedian)} wall); < 200 MiB -> ${verdict(jsonRss < 200)} (${jsonRss.toFixed(0)} MiB, the Node process). ` +
        `git's peak RSS is mostly its mmapped pack (this fast-import pack is not delta-compressed).`,
      '',
      ...(baseline
        ? [
            `Before/after, side by side in this run (the two bundles alternately, ${RUNS} runs each, same repository; wall median with min-max):`,
            '',
            '| report | build | wall median | CPU median, node / with git | peak RSS, node |',
            '| --- | --- | --- | --- | --- |',
            ...sideBySide,
            '',
          ]
        : []),
    ].join('\n'),
  );
} catch (e) {
  if (e !== SETUP_ONLY) throw e;
} finally {
  if (!process.env.BENCH_KEEP && !keep) rmSync(dir, { recursive: true, force: true });
  else console.error(`kept ${dir}`);
}
