// Fault scenarios for the server's evidence path (issue 6 item 4), shared by `npm run faults`
// (scripts/faults.ts, 100 kill trials) and the short version in `npm test` (faults.test.ts).
// Everything runs real processes on real repositories: the built CLI bundle as the hook, real
// pushes through the installed pre-receive, SIGKILL at random moments, real `git notes` writers.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseNote } from '../../src/audit/note.ts';
import { formatTicketId } from '../../src/ticket/sign.ts';
import { processRef } from '../../src/server/receive-pack.ts';
import { BUNDLE, cleanEnv, run, TestServer, type DevClone } from '../helpers/server.ts';

const ZERO = '0'.repeat(40);

/** One accepted break-glass push whose event must end up recorded exactly once. */
export interface AcceptedEvent {
  readonly ticket: string;
  readonly ref: string;
  readonly oldSha: string;
  readonly newSha: string;
  readonly commits: readonly string[];
}

/**
 * A server repository with `pushes` accepted break-glass pushes whose post-receive never ran
 * (their events sit in `breakglass/journal/pending/`), kept as a template that trials copy.
 */
export interface PendingTemplate {
  readonly server: TestServer;
  readonly clone: DevClone;
  readonly events: readonly AcceptedEvent[];
  /** Other commits (not annotated by us) for a concurrent `git notes` writer. */
  readonly spare: readonly string[];
  /** How long an undisturbed post-receive takes on this template (ms, median of 3). */
  readonly flushMs: number;
  close(): Promise<void>;
}

const NOOP_HOOK = '#!/bin/sh\n# faults: post-receive disabled so events stay pending\nexit 0\n';

/** Builds the template: real ticketed pushes through the installed pre-receive. */
export async function makePendingTemplate(
  pushes: number,
  commitsEach = 3,
): Promise<PendingTemplate> {
  const branches = Array.from({ length: pushes }, (_, i) => `release/${i + 1}`);
  const server = await TestServer.create({ branches });
  try {
    const postReceive = join(server.gitDir, 'hooks', 'post-receive');
    const real = await readFile(postReceive, 'utf8');
    await writeFile(postReceive, NOOP_HOOK);
    const clone = await server.clone('alice');
    const ids: string[] = [];
    for (const b of branches) ids.push(await clone.makeTicket({ refs: [`refs/heads/${b}`] }));
    const t = await clone.pushTickets(ids);
    if (t.code !== 0) throw new Error(`ticket push failed: ${t.stderr}`);
    const events: AcceptedEvent[] = [];
    for (let i = 0; i < pushes; i++) {
      const commits = await clone.commitsOn(server.seed, commitsEach, `fault ${i}`);
      const tip = commits[commits.length - 1]!;
      const ref = `refs/heads/${branches[i]}`;
      const r = await clone.push([`${tip}:${ref}`], { tickets: [ids[i]!] });
      if (r.code !== 0) throw new Error(`ticketed push ${i} failed: ${r.stderr}`);
      // commitsOn makes siblings on the seed; only the tip is new to the ref's history.
      events.push({ ticket: ids[i]!, ref, oldSha: server.seed, newSha: tip, commits: [tip] });
    }
    const spare = await clone.commitsOn(server.seed, 20, 'spare');
    const sp = await clone.push(spare.map((c, i) => `${c}:refs/heads/spare/${i}`));
    if (sp.code !== 0) throw new Error(`spare push failed: ${sp.stderr}`);
    await writeFile(postReceive, real);
    const pending = await listJson(join(server.gitDir, 'breakglass/journal/pending'));
    if (pending.length !== pushes)
      throw new Error(`${pending.length} pending entries, want ${pushes}`);
    const times: number[] = [];
    for (let k = 0; k < 3; k++) {
      const trial = await copyTemplate(server.gitDir);
      const t0 = performance.now();
      await hookProcess(trial.gitDir, 'post-receive').done;
      times.push(performance.now() - t0);
      await trial.close();
    }
    times.sort((a, b) => a - b);
    return {
      server,
      clone,
      events,
      spare,
      flushMs: times[1]!,
      close: () => server.close(),
    };
  } catch (e) {
    await server.close();
    throw e;
  }
}

async function listJson(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
}

/** A copy of the template repository for one trial. */
export async function copyTemplate(
  gitDir: string,
): Promise<{ gitDir: string; close(): Promise<void> }> {
  const root = await mkdtemp(join(os.tmpdir(), 'bg-fault-'));
  const copy = join(root, 'server.git');
  await cp(gitDir, copy, { recursive: true });
  return { gitDir: copy, close: () => rm(root, { recursive: true, force: true }) };
}

/** Environment of a hook or admin command on the server. */
export function serverEnv(gitDir: string): NodeJS.ProcessEnv {
  return cleanEnv({ HOME: join(gitDir, '..'), GIT_DIR: gitDir });
}

/** `bg-sign hook <which>` as git would run it (in the repository, GIT_DIR set), in its own group. */
export function hookProcess(gitDir: string, which: 'pre-receive' | 'post-receive', input = '') {
  const child = spawn(process.execPath, [BUNDLE, 'hook', which], {
    cwd: gitDir,
    env: serverEnv(gitDir),
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  child.stdin.on('error', () => {});
  child.stdin.end(input);
  const done = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
  return { child, done };
}

/** `bg-sign audit flush GIT_DIR` (the real CLI). */
export function auditFlush(gitDir: string) {
  return run(process.execPath, [BUNDLE, 'audit', 'flush', gitDir, '--json'], {
    cwd: gitDir,
    env: cleanEnv({ HOME: join(gitDir, '..') }),
  });
}

function git(gitDir: string, args: readonly string[], input?: string) {
  return run('git', ['--git-dir', gitDir, ...args], {
    env: cleanEnv({
      HOME: join(gitDir, '..'),
      GIT_AUTHOR_NAME: 'ops',
      GIT_AUTHOR_EMAIL: 'ops@example.test',
      GIT_COMMITTER_NAME: 'ops',
      GIT_COMMITTER_EMAIL: 'ops@example.test',
    }),
    ...(input === undefined ? {} : { input }),
  });
}

/** Where a killed flush left the repository (for the report). */
export type KillPhase =
  | 'untouched (all pending)'
  | 'claimed, nothing written'
  | 'objects written, refs not moved'
  | 'refs moved, entry not filed'
  | 'finished'
  | 'other';

async function looseObjects(gitDir: string): Promise<number> {
  let n = 0;
  for (const d of await readdir(join(gitDir, 'objects')).catch(() => [] as string[])) {
    if (/^[0-9a-f]{2}$/.test(d)) n += (await readdir(join(gitDir, 'objects', d))).length;
  }
  return n;
}

/** Classifies the state a kill left behind. */
export async function killPhase(
  gitDir: string,
  objectsBefore: number,
  notesBefore: string | null,
): Promise<KillPhase> {
  const j = join(gitDir, 'breakglass/journal');
  const pending = (await listJson(join(j, 'pending'))).length;
  const processing = (await listJson(join(j, 'processing'))).length;
  const done = (await listJson(join(j, 'done'))).length;
  // install-hooks creates the notes ref (E3): "moved" is a tip other than the one before.
  const notes = (await notesTip(gitDir)) !== notesBefore;
  if (processing === 0 && done === 0 && !notes) return 'untouched (all pending)';
  if (pending === 0 && processing === 0 && done > 0) return 'finished';
  if (notes) return 'refs moved, entry not filed';
  if ((await looseObjects(gitDir)) > objectsBefore) return 'objects written, refs not moved';
  if (processing > 0) return 'claimed, nothing written';
  return 'other';
}

/** The tip of refs/notes/breakglass, or null. */
async function notesTip(gitDir: string): Promise<string | null> {
  const r = await git(gitDir, ['rev-parse', '--verify', '--quiet', 'refs/notes/breakglass']);
  return r.code === 0 ? r.stdout.trim() : null;
}

export { looseObjects };

/** Ages everything a crashed flusher could have left, as if `minutes` had passed. */
export async function ageLeftovers(gitDir: string, minutes: number): Promise<number> {
  const t = new Date(Date.now() - minutes * 60_000);
  const dir = join(gitDir, 'breakglass/journal/processing');
  const files = await listJson(dir);
  for (const f of files) await utimes(join(dir, f), t, t);
  // And ref locks left by a git process killed inside update-ref (our refs only).
  const locks = (await refLocks(gitDir)).filter((l) => /^refs\/(notes|breakglass)\//.test(l));
  for (const l of locks) await utimes(join(gitDir, l), t, t);
  return files.length + locks.length;
}

/** git's ref lock files left in a repository (relative paths). */
async function refLocks(gitDir: string): Promise<string[]> {
  const locks: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(d, e.name), `${rel}${e.name}/`);
      else if (e.name.endsWith('.lock')) locks.push(`${rel}${e.name}`);
    }
  };
  await walk(join(gitDir, 'refs'), 'refs/');
  if (existsSync(join(gitDir, 'packed-refs.lock'))) locks.push('packed-refs.lock');
  return locks;
}

/** What the evidence in a repository says about the expected events. */
export interface Verdict {
  /** Per expected event: how many times its block is in the note of its tip commit. */
  readonly noteCounts: number[];
  /** Per expected event: commits on refs/breakglass/consumed/<ticket>. */
  readonly useCounts: number[];
  readonly pending: number;
  readonly processing: number;
  readonly done: number;
  readonly bad: number;
  /** Break-glass events found in all notes together. */
  readonly eventsInNotes: number;
  readonly noteErrors: string[];
  /** Leftover git ref lock files. */
  readonly gitLocks: string[];
}

/** Reads every note with one `cat-file --batch` and counts events (parseNote). */
export async function verify(gitDir: string, events: readonly AcceptedEvent[]): Promise<Verdict> {
  const list = await git(gitDir, ['notes', '--ref=breakglass', 'list']);
  const pairs =
    list.code === 0
      ? list.stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split(' '))
      : [];
  const byCommit = new Map<string, ReturnType<typeof parseNote>>();
  if (pairs.length) {
    const out = await git(
      gitDir,
      ['cat-file', '--batch'],
      pairs.map(([blob]) => blob).join('\n') + '\n',
    );
    let rest = out.stdout;
    for (const [, commit] of pairs) {
      const nl = rest.indexOf('\n');
      const size = Number(rest.slice(0, nl).split(' ')[2]);
      // Notes are ASCII trailers; byte and character lengths agree.
      byCommit.set(commit!, parseNote(rest.slice(nl + 1, nl + 1 + size)));
      rest = rest.slice(nl + 1 + size + 1);
    }
  }
  let eventsInNotes = 0;
  const noteErrors: string[] = [];
  for (const n of byCommit.values()) {
    eventsInNotes += n.events.filter((e) => e.kind === 'breakglass').length;
    noteErrors.push(...n.errors);
  }
  const noteCounts = events.map((ev) => {
    const note = byCommit.get(ev.newSha);
    return (note?.events ?? []).filter(
      (e) => e.ticketId === ev.ticket && e.ref === ev.ref && e.newSha === ev.newSha,
    ).length;
  });
  const useCounts: number[] = [];
  for (const ev of events) {
    const r = await git(gitDir, ['rev-list', '--count', `refs/breakglass/consumed/${ev.ticket}`]);
    useCounts.push(r.code === 0 ? Number(r.stdout.trim()) : 0);
  }
  const j = join(gitDir, 'breakglass/journal');
  const locks = await refLocks(gitDir);
  return {
    noteCounts,
    useCounts,
    pending: (await listJson(join(j, 'pending'))).length,
    processing: (await listJson(join(j, 'processing'))).length,
    done: (await listJson(join(j, 'done'))).length,
    bad: (await listJson(join(j, 'bad'))).length,
    eventsInNotes,
    noteErrors,
    gitLocks: locks,
  };
}

/** True when every event is in its note exactly once, used once, and the journal is drained. */
export function exactlyOnce(v: Verdict): boolean {
  return (
    v.noteCounts.every((n) => n === 1) &&
    v.useCounts.every((n) => n === 1) &&
    v.pending === 0 &&
    v.processing === 0 &&
    v.bad === 0 &&
    v.noteErrors.length === 0
  );
}

export interface KillTrial {
  readonly delayMs: number;
  readonly mode: 'node' | 'group';
  readonly phase: KillPhase;
  /** Flushes needed after the kill (1 = the next flush finished it). */
  readonly flushes: number;
  /** A processing/ leftover had to be aged past the stale-claim time (10 min) first. */
  readonly aged: boolean;
  readonly ok: boolean;
  readonly verdict: Verdict;
  readonly note?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One trial: copy the template, start post-receive, SIGKILL it (the node process alone, or its
 * whole process group with the git children) after `delayMs`, then recover with `audit flush`
 * as an operator (or the next push) would: first at once, then, if a claim is left in
 * processing/, once it is older than the stale-claim time. Ends with the evidence check.
 */
export async function killTrial(
  t: PendingTemplate,
  delayMs: number,
  mode: 'node' | 'group',
): Promise<KillTrial> {
  const trial = await copyTemplate(t.server.gitDir);
  try {
    const before = await looseObjects(trial.gitDir);
    const notesBefore = await notesTip(trial.gitDir);
    const h = hookProcess(trial.gitDir, 'post-receive');
    await Promise.race([sleep(delayMs), h.done]);
    try {
      if (mode === 'group') process.kill(-h.child.pid!, 'SIGKILL');
      else h.child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
    await h.done;
    if (mode === 'node') await sleep(50); // git children still finishing on their own
    const phase = await killPhase(trial.gitDir, before, notesBefore);
    let flushes = 0;
    let aged = false;
    let note: string | undefined;
    let v = await verify(trial.gitDir, t.events);
    // Immediate flush: must never duplicate, may leave a claim it cannot know is dead.
    for (let k = 0; k < 3 && !exactlyOnce(v); k++) {
      const f = await auditFlush(trial.gitDir);
      flushes++;
      v = await verify(trial.gitDir, t.events);
      if (v.noteCounts.some((n) => n > 1) || v.useCounts.some((n) => n > 1)) {
        note = `duplicate after flush ${flushes}: ${f.stdout.slice(0, 300)}`;
        break;
      }
      // Time passes before the next push: claims and ref locks of the dead processes go stale.
      if (!exactlyOnce(v) && (v.processing > 0 || v.gitLocks.length) && !aged) {
        await ageLeftovers(trial.gitDir, 11);
        aged = true;
      } else if (!exactlyOnce(v) && v.gitLocks.length) {
        note = `stale git lock ${v.gitLocks.join(', ')}: ${f.stdout.slice(0, 300)}`;
        break;
      }
    }
    return { delayMs, mode, phase, flushes, aged, ok: exactlyOnce(v), verdict: v, note };
  } finally {
    await trial.close();
  }
}

/** Stale lock files: recorder lock of a dead process, an old foreign one, orphan reservations. */
export async function staleLocksTrial(
  t: PendingTemplate,
  o: { gitLock?: boolean } = {},
): Promise<{
  readonly ok: boolean;
  readonly details: string[];
}> {
  const details: string[] = [];
  let ok = true;
  // 1. A recorder lock left by a dead process on this host: taken over at once.
  for (const [label, token, ageMin] of [
    ['dead pid on this host', `${await deadPid()} ${os.hostname()} deadbeef\n`, 0],
    ['another host, 2 minutes old', '4242 elsewhere.example cafe\n', 2],
  ] as const) {
    const trial = await copyTemplate(t.server.gitDir);
    try {
      const lock = join(trial.gitDir, 'breakglass-record.lock');
      await writeFile(lock, token);
      if (ageMin) {
        const old = new Date(Date.now() - ageMin * 60_000);
        await utimes(lock, old, old);
      }
      const t0 = performance.now();
      const f = await auditFlush(trial.gitDir);
      const v = await verify(trial.gitDir, t.events);
      const good = f.code === 0 && exactlyOnce(v) && !existsSync(lock);
      ok &&= good;
      details.push(
        `recorder lock (${label}): ${good ? 'taken over' : 'NOT recovered'}, flush ${Math.round(performance.now() - t0)} ms, ${v.noteCounts.filter((n) => n === 1).length}/${t.events.length} events recorded once`,
      );
    } finally {
      await trial.close();
    }
  }
  // 2. processing/ leftovers: fresh (another flusher may be alive: left alone) vs stale.
  {
    const trial = await copyTemplate(t.server.gitDir);
    try {
      const pend = join(trial.gitDir, 'breakglass/journal/pending');
      const proc = join(trial.gitDir, 'breakglass/journal/processing');
      await mkdir(proc, { recursive: true });
      const files = await listJson(pend);
      for (const f of files) {
        await cp(join(pend, f), join(proc, f.replace(/\.json$/, '~0badc0de.json')));
        await rm(join(pend, f));
      }
      await auditFlush(trial.gitDir);
      const fresh = await verify(trial.gitDir, t.events);
      const leftAlone = fresh.processing === files.length && fresh.noteCounts.every((n) => n === 0);
      await ageLeftovers(trial.gitDir, 11);
      await auditFlush(trial.gitDir);
      const v = await verify(trial.gitDir, t.events);
      const good = leftAlone && exactlyOnce(v);
      ok &&= good;
      details.push(
        `journal/processing/ leftovers (${files.length}): fresh ones ${leftAlone ? 'left alone' : 'TOUCHED'}, after 11 min ${exactlyOnce(v) ? 'reclaimed and recorded once' : 'NOT recovered'}`,
      );
    } finally {
      await trial.close();
    }
  }
  // 3. A reservation whose journal entry was never written (pre-receive killed in between).
  {
    const trial = await copyTemplate(t.server.gitDir);
    try {
      const orphanId = formatTicketId(Date.now() - 60_000, 'abcdef');
      const dir = join(trial.gitDir, 'breakglass/reservations', orphanId);
      await mkdir(dir, { recursive: true });
      const slot = join(dir, '0');
      // The pre-receive that reserved it, killed before it wrote the journal entry: a real
      // process, alive at first, then gone.
      const writer = spawn('sleep', ['600'], { stdio: 'ignore' });
      await writeFile(
        slot,
        JSON.stringify({
          entry: '20261129T000000Z-1-abcdefabcdef',
          at: 0,
          writer: processRef(writer.pid!),
        }) + '\n',
      );
      await auditFlush(trial.gitDir);
      const keptYoung = existsSync(slot);
      await new Promise((res) => {
        writer.once('exit', res);
        writer.kill('SIGKILL');
      });
      await auditFlush(trial.gitDir);
      const released = !existsSync(slot);
      const v = await verify(trial.gitDir, t.events);
      const good = keptYoung && released && exactlyOnce(v);
      ok &&= good;
      details.push(
        `orphan reservation (journal entry never written): ${keptYoung ? 'kept while its pre-receive runs (fail closed)' : 'RELEASED TOO EARLY'}, ${released ? 'released once that process was gone' : 'NOT released'}; events ${exactlyOnce(v) ? 'recorded once' : 'NOT recorded once'}`,
      );
    } finally {
      await trial.close();
    }
  }
  // 4. A stale git ref lock on the notes ref (git killed inside update-ref): kept pending while
  // the lock is young (a hung git could still rename it into place), removed by the next flush
  // once it is 10 minutes old. Slow (the recorder takes a young lock for a lost race and retries
  // ~40 times), so optional.
  if (o.gitLock !== false) {
    const trial = await copyTemplate(t.server.gitDir);
    try {
      await mkdir(join(trial.gitDir, 'refs/notes'), { recursive: true });
      const lock = join(trial.gitDir, 'refs/notes/breakglass.lock');
      await writeFile(lock, '');
      const t0 = performance.now();
      const f1 = await auditFlush(trial.gitDir);
      const stuckMs = performance.now() - t0;
      const mid = await verify(trial.gitDir, t.events);
      const kept = mid.pending === t.events.length && mid.noteCounts.every((n) => n === 0);
      const old = new Date(Date.now() - 11 * 60_000);
      await utimes(lock, old, old);
      const f2 = await auditFlush(trial.gitDir);
      const v = await verify(trial.gitDir, t.events);
      const removed = !existsSync(lock) && /removed .*breakglass\.lock/.test(f2.stdout);
      const good = kept && removed && exactlyOnce(v);
      ok &&= good;
      details.push(
        `stale refs/notes/breakglass.lock: flush exit ${f1.code} after ${(stuckMs / 1000).toFixed(1)} s of retries, events ${kept ? 'kept pending (nothing lost)' : 'NOT kept'}; ` +
          `once 11 minutes old: ${removed ? 'removed by the next flush, with a warning' : 'NOT removed'}, events ${exactlyOnce(v) ? 'recorded once' : 'NOT recorded'}`,
      );
    } finally {
      await trial.close();
    }
  }
  return { ok, details };
}

async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((r) => child.on('close', r));
  return child.pid!;
}

/**
 * A broken journal directory (a file where a directory should be; as root, permissions do not
 * stop writes, so this is how "cannot write the journal" is simulated): a ticketed push must be
 * REJECTED (fail closed) with nothing changed, an unprotected push still accepted.
 */
export async function brokenJournalTrial(which: 'pending' | 'tmp' | 'reservations'): Promise<{
  readonly ok: boolean;
  readonly detail: string;
}> {
  const server = await TestServer.create({ branches: ['release/1'] });
  try {
    const clone = await server.clone('alice');
    const id = await clone.makeTicket({ refs: ['refs/heads/release/1'] });
    const tp = await clone.pushTickets([id]);
    if (tp.code !== 0) throw new Error(tp.stderr);
    const state = join(server.gitDir, 'breakglass');
    const target =
      which === 'reservations' ? join(state, 'reservations') : join(state, 'journal', which);
    await mkdir(join(target, '..'), { recursive: true });
    await rm(target, { recursive: true, force: true });
    await writeFile(target, 'not a directory\n');
    const before = await server.snapshot();
    const [c] = await clone.commitsOn(server.seed, 1, 'broken journal');
    const r = await clone.push([`${c}:refs/heads/release/1`], { tickets: [id] });
    const after = await server.snapshot();
    const rejected = r.code !== 0 && /rejected/.test(r.stderr);
    const unchanged =
      before.refs === after.refs && JSON.stringify(before.state) === JSON.stringify(after.state);
    const [u] = await clone.commitsOn(server.seed, 1, 'unprotected');
    const free = await clone.push([`${u}:refs/heads/feature/x`]);
    // The hook names the code either as the push's (`push rejected: CODE`) or as the reason the
    // ticket examined could not be used (`- CODE (...)`).
    const code = /\bJOURNAL_UNAVAILABLE\b/.test(r.stderr)
      ? 'JOURNAL_UNAVAILABLE'
      : (/push rejected: ([A-Z_]+)/.exec(r.stderr)?.[1] ?? '?');
    const ok = rejected && code === 'JOURNAL_UNAVAILABLE' && unchanged && free.code === 0;
    return {
      ok,
      detail: `${which === 'reservations' ? 'breakglass/reservations' : `journal/${which}`} is a file: ticketed push ${rejected ? `rejected (${code})` : 'ACCEPTED'}, refs and state ${unchanged ? 'unchanged' : 'CHANGED'}, unprotected push ${free.code === 0 ? 'accepted' : 'rejected'}`,
    };
  } finally {
    await server.close();
  }
}

/** Rows of `bg-sign audit --format json` per expected event, and how many are note-backed. */
export async function auditCounts(
  gitDir: string,
  events: readonly AcceptedEvent[],
): Promise<{ rows: number[]; fromNotes: number[] }> {
  const r = await run(process.execPath, [BUNDLE, 'audit', gitDir, '--format', 'json'], {
    cwd: gitDir,
    env: cleanEnv({ HOME: join(gitDir, '..') }),
  });
  const report = JSON.parse(r.stdout || '{"rows":[]}') as {
    rows: {
      ticket: string | null;
      ref: string;
      update: { new: string };
      evidence: { note: boolean };
    }[];
  };
  const mine = (ev: AcceptedEvent) =>
    report.rows.filter(
      (x) => x.ticket === ev.ticket && x.ref === ev.ref && x.update.new === ev.newSha,
    );
  return {
    rows: events.map((ev) => mine(ev).length),
    fromNotes: events.map((ev) => mine(ev).filter((x) => x.evidence.note).length),
  };
}

/**
 * A concurrent writer on refs/notes/breakglass: a loop of `git notes --ref=breakglass add` on
 * other commits while post-receive records. `git notes` moves the ref WITHOUT checking its old
 * value, so a notes commit of ours that lands between its read and its write is overwritten (our
 * recorder's own transactions compare-and-swap; git's don't). Such an event keeps its consumed/
 * use record and stays in the audit report; it is counted as `overwritten`, never as duplicated.
 */
export async function concurrentWriterTrial(t: PendingTemplate): Promise<{
  readonly ok: boolean;
  readonly detail: string;
  readonly verdict: Verdict;
  readonly writerNotes: number;
  readonly writerSurvived: number;
  /** Events whose note block the foreign writer's unconditional update removed from the tip. */
  readonly overwritten: number;
}> {
  const trial = await copyTemplate(t.server.gitDir);
  try {
    let stop = false;
    const touched = new Set<number>();
    // Keeps writing (cycling over the spare commits) for as long as post-receive runs.
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const k = i % t.spare.length;
        const r = await git(trial.gitDir, [
          'notes',
          '--ref=breakglass',
          'add',
          '-f',
          '-m',
          `ops note ${k}`,
          t.spare[k]!,
        ]);
        if (r.code === 0) touched.add(k);
      }
    })();
    await sleep(Math.random() * 30);
    await hookProcess(trial.gitDir, 'post-receive').done;
    stop = true;
    await writer;
    let v = await verify(trial.gitDir, t.events);
    let flushes = 0;
    if (!exactlyOnce(v)) {
      await auditFlush(trial.gitDir);
      flushes++;
      v = await verify(trial.gitDir, t.events);
    }
    let survived = 0;
    for (const k of touched) {
      const r = await git(trial.gitDir, ['notes', '--ref=breakglass', 'show', t.spare[k]!]);
      if (r.code === 0 && r.stdout.startsWith(`ops note ${k}`)) survived++;
    }
    const written = touched.size;
    const audit = await auditCounts(trial.gitDir, t.events);
    const overwritten = v.noteCounts.filter((n) => n === 0).length;
    const ok =
      v.noteCounts.every((n) => n <= 1) &&
      v.useCounts.every((n) => n === 1) &&
      v.pending + v.processing + v.bad === 0 &&
      v.noteErrors.length === 0 &&
      audit.rows.every((n) => n === 1);
    return {
      ok,
      verdict: v,
      writerNotes: written,
      writerSurvived: survived,
      overwritten,
      detail:
        `${v.noteCounts.filter((n) => n === 1).length}/${t.events.length} events in their note once${flushes ? ` (after ${flushes} audit flush)` : ''}` +
        `${overwritten ? `, ${overwritten} note block(s) overwritten by git notes' unconditional ref update` : ''}; ` +
        `uses ${v.useCounts.join(',')}; audit rows ${audit.rows.join(',')} (note-backed ${audit.fromNotes.join(',')}); writer's notes: ${survived}/${written} at the tip`,
    };
  } finally {
    await trial.close();
  }
}

export { ZERO };
