import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CONSUMED_REF_PREFIX,
  consumedRefOf,
  formatUseRecord,
  parseUseRecord,
  useRecordOf,
  type UseRecord,
} from '../audit/consumed.ts';
import { appendBlock, formatNoteBlock, noteHasBlock, type AuditEvent } from '../audit/note.ts';
import { BreakglassError } from '../errors.ts';
import { isValidRefName } from '../policy/refs.ts';
import { parseTime } from '../ticket/time.ts';
import { CatFileBatch, runGit, type GitContext } from './git.ts';
import { commitsPresent, DEFAULT_NOTES_REF, readNotesFor, readRefTips } from './notes.ts';
import { withRecorderLock } from './record-lock.ts';

/**
 * The evidence writer (DESIGN §6, §7): turns events into audit notes on every affected commit and
 * one `refs/breakglass/consumed/<id>` commit per ticket use. Once per call: one
 * `cat-file --batch-check` (which listed commits exist). Per attempt: one `for-each-ref`, one
 * `cat-file --batch` for the existing notes (and one for the consumed/ chains, when there are
 * tickets), one `fast-import` (all new objects, no ref touched) and one `update-ref --stdin`
 * transaction that moves every ref from its expected old value. A race with another writer fails
 * that transaction as a whole; we re-read and rebuild, so nothing is lost and, because what is
 * already present is skipped, nothing is written twice. An advisory lock file queues concurrent
 * recorders so they rarely race at all.
 */

/** One event and the commits whose notes must carry it (first = the one checked for idempotence). */
export interface RecordItem {
  event: AuditEvent;
  /** Commits to annotate; empty means the new tip (or the old tip for a delete). */
  commits: string[];
  /**
   * Whether this break-glass event records a ticket use (default true). One push is one use
   * (T13) however many refs the ticket covers in it: the caller sets this on one event per
   * ticket and push, and false on the others, which get their note only.
   */
  use?: boolean;
}

export interface RecordOptions {
  /** Environment for git (a hook passes its own through). */
  env?: NodeJS.ProcessEnv;
  notesRef?: string;
  /** Transaction attempts after the first one (default 40). */
  maxRetries?: number;
  /** Commit time of the notes commit, epoch ms (default: now). */
  now?: number;
  /**
   * Queue behind other recorders of this repository with an advisory lock file
   * (`<gitDir>/breakglass-record.lock`, default true). Only a throughput aid: races are still
   * settled by the ref transaction.
   */
  lock?: boolean;
  /** Test hook: runs after the objects are built and before the ref transaction. */
  beforeUpdate?: (attempt: number) => void | Promise<void>;
  /** Told what was repaired on the way (a stale ref lock removed). */
  onWarning?: (message: string) => void;
}

export interface RecordResult {
  /** Commit notes created or extended. */
  notesWritten: number;
  /** consumed/ commits written. */
  usesRecorded: number;
  /** Transactions lost to a concurrent writer and redone. */
  retries: number;
  /** Events already recorded (block in their first commit's note and, with a ticket, the use). */
  skipped: number;
  /** Listed commits that are not in the repository (e.g. pruned dropped commits): not annotated. */
  missing: string[];
  /** Indices of items none of whose commits exist: nothing was recorded for them. */
  unrecorded: number[];
}

const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const ZERO = /^0+$/;
const IDENTITY = 'git-breakglass';
/** Longest consumed/ chain walked when looking for an already recorded use. */
const MAX_USES_READ = 100_000;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function invalidItem(message: string): BreakglassError {
  return new BreakglassError('AUDIT_RECORD_INVALID', message);
}

/** Validates an item and fills in its default commits; throws before anything is written. */
function normalize(item: RecordItem, index: number): RecordItem {
  const e = item.event;
  const where = `event ${index + 1} (${e?.ref ?? '?'})`;
  if (!e || (e.kind !== 'breakglass' && e.kind !== 'violation'))
    throw invalidItem(`${where}: bad kind`);
  if (!OID.test(e.oldSha) || !OID.test(e.newSha))
    throw invalidItem(`${where}: old/new must be object ids`);
  if (!isValidRefName(e.ref)) throw invalidItem(`${where}: invalid ref name`);
  try {
    parseTime(e.recordedAt, 'recordedAt');
  } catch (err) {
    throw invalidItem(`${where}: ${(err as Error).message}`);
  }
  // A break-glass event must make a valid use record (ticket id, actions); check it now.
  if (e.kind === 'breakglass') useRecordOf(e, 0);
  let commits = [...new Set(item.commits ?? [])];
  if (commits.length === 0) {
    const tip = ZERO.test(e.newSha) ? e.oldSha : e.newSha;
    if (ZERO.test(tip)) throw invalidItem(`${where}: nothing to annotate`);
    commits = [tip];
  }
  for (const c of commits)
    if (!OID.test(c)) throw invalidItem(`${where}: "${c}" is not a commit id`);
  return { event: e, commits, use: item.use !== false };
}

function noteText(b: Buffer | string | undefined): string | undefined {
  return b === undefined || typeof b === 'string' ? b : b.toString('utf8');
}

/** Appends a block, keeping a non-UTF-8 note's bytes intact. */
function appendTo(existing: Buffer | string | undefined, block: string): Buffer | string {
  if (existing === undefined || typeof existing === 'string') return appendBlock(existing, block);
  try {
    return appendBlock(utf8.decode(existing), block);
  } catch {
    let end = existing.length;
    while (end > 0 && /\s/.test(String.fromCharCode(existing[end - 1]!))) end--;
    return Buffer.concat([existing.subarray(0, end), Buffer.from(`\n\n${block}`)]);
  }
}

function dataCommand(content: Buffer | string): Buffer[] {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  return [Buffer.from(`data ${bytes.length}\n`), bytes, Buffer.from('\n')];
}

function committerLine(recordedBy: string, ms: number): string {
  // The recorder goes into the ident's email slot: keep it to characters an ident can hold.
  const email = recordedBy.replace(/[^A-Za-z0-9._@+-]/g, '-').slice(0, 200) || 'unknown';
  return `committer ${IDENTITY} <${email}> ${Math.floor(ms / 1000)} +0000\n`;
}

interface Plan {
  notes: Map<string, Buffer | string>;
  uses: Map<string, UseRecord[]>;
  skipped: number;
  recorder: string;
}

// Same use, whatever number of commits it ended up annotating.
function useKey(r: UseRecord): string {
  return formatUseRecord({ ...r, commits: 0 });
}

/**
 * The uses already recorded on each consumed/ chain (first-parent walk, one cat-file process).
 * A files-backend transaction is not atomic across a crash mid-commit, so the use and the note
 * are checked separately: a retry completes whichever half is missing.
 */
async function readUseKeys(
  ctx: GitContext,
  tips: Map<string, string>,
  refs: readonly string[],
): Promise<Map<string, Set<string>>> {
  const keys = new Map<string, Set<string>>();
  const starts = refs.filter((r) => r.startsWith(CONSUMED_REF_PREFIX) && tips.has(r));
  if (starts.length === 0) return keys;
  const batch = new CatFileBatch(ctx);
  try {
    await Promise.all(
      starts.map(async (ref) => {
        const seen = new Set<string>();
        keys.set(ref, seen);
        let next: string | undefined = tips.get(ref);
        for (let n = 0; next && n < MAX_USES_READ; n++) {
          const o = await batch.read(next);
          if (o?.type !== 'commit') break;
          const text = o.data.toString('utf8');
          const split = text.indexOf('\n\n');
          const headers = split < 0 ? text : text.slice(0, split);
          try {
            seen.add(useKey(parseUseRecord(text.slice(split + 2))));
          } catch {
            /* not one of ours: it can't match */
          }
          next = /^parent ([0-9a-f]+)$/m.exec(headers)?.[1];
        }
      }),
    );
    return keys;
  } finally {
    batch.close();
  }
}

/** Decides what to write given the notes and uses as they are now. */
function plan(
  items: readonly RecordItem[],
  existing: Map<string, Buffer>,
  usedKeys: Map<string, Set<string>>,
): Plan {
  const notes = new Map<string, Buffer | string>();
  const uses = new Map<string, UseRecord[]>();
  let skipped = 0;
  const current = (c: string) => notes.get(c) ?? existing.get(c);
  for (const { event, commits, use: countsUse } of items) {
    const block = formatNoteBlock(event);
    const noted = noteHasBlock(noteText(current(commits[0]!)), block);
    let use: UseRecord | undefined;
    let ref = '';
    if (event.kind === 'breakglass' && countsUse !== false) {
      ref = consumedRefOf(event.ticketId!);
      use = useRecordOf(event, commits.length);
      if (usedKeys.get(ref)?.has(useKey(use))) use = undefined;
    }
    if (noted && !use) {
      skipped++;
      continue;
    }
    if (!noted) {
      // Commits of one push usually share one note object: decide once per distinct note.
      const decided = new Map<Buffer | string | undefined, Buffer | string | null>();
      for (const c of commits) {
        const cur = current(c);
        let next = decided.get(cur);
        if (next === undefined) {
          next = noteHasBlock(noteText(cur), block) ? null : appendTo(cur, block);
          decided.set(cur, next);
        }
        if (next !== null) notes.set(c, next);
      }
    }
    if (use) {
      uses.set(ref, [...(uses.get(ref) ?? []), use]);
      usedKeys.set(ref, (usedKeys.get(ref) ?? new Set()).add(useKey(use)));
    }
  }
  return { notes, uses, skipped, recorder: items[0]?.event.recordedBy ?? IDENTITY };
}

/**
 * Builds every new object with one fast-import and returns the new tips. The commits go on
 * scratch branch names that are reset away before fast-import ends, so no ref is created: the
 * only ref writes are the caller's transaction.
 */
async function buildObjects(
  ctx: GitContext,
  p: Plan,
  tips: Map<string, string>,
  notesRef: string,
  now: number,
): Promise<Map<string, string>> {
  const scratch = `refs/breakglass/scratch/${process.pid}-${randomBytes(6).toString('hex')}`;
  const parts: Buffer[] = [];
  const put = (s: string) => parts.push(Buffer.from(s, 'utf8'));
  const marks: { ref: string; branch: string; mark: number }[] = [];
  let mark = 0;

  if (p.notes.size > 0) {
    // One blob per distinct note text: a push's block is usually the same on all its commits.
    const blobMarks = new Map<string, number>();
    const noteMarks: [string, number][] = [];
    for (const [commit, content] of p.notes) {
      const key = typeof content === 'string' ? content : `\0${content.toString('latin1')}`;
      let m = blobMarks.get(key);
      if (m === undefined) {
        m = ++mark;
        blobMarks.set(key, m);
        put(`blob\nmark :${m}\n`);
        parts.push(...dataCommand(content));
      }
      noteMarks.push([commit, m]);
    }
    const branch = `${scratch}/notes`;
    mark++;
    marks.push({ ref: notesRef, branch, mark });
    put(`commit ${branch}\nmark :${mark}\n${committerLine(p.recorder, now)}`);
    parts.push(...dataCommand(`Notes added by git-breakglass (${p.notes.size} commits)\n`));
    const from = tips.get(notesRef);
    if (from) put(`from ${from}\n`);
    put(noteMarks.map(([commit, m]) => `N :${m} ${commit}\n`).join(''));
    put('\n');
  }
  let n = 0;
  for (const [ref, records] of p.uses) {
    const branch = `${scratch}/consumed-${n++}`;
    const from = tips.get(ref);
    records.forEach((r, k) => {
      mark++;
      put(`commit ${branch}\nmark :${mark}\n`);
      put(committerLine(r.recordedBy, parseTime(r.recordedAt)));
      parts.push(...dataCommand(formatUseRecord(r)));
      if (k === 0 && from) put(`from ${from}\n`);
      put('\n');
    });
    marks.push({ ref, branch, mark });
  }
  for (const b of new Set(marks.map((m) => m.branch))) put(`reset ${b}\n\n`);
  for (const m of marks) put(`get-mark :${m.mark}\n`);
  put('done\n');

  const r = await runGit(ctx, ['fast-import', '--quiet', '--done'], {
    input: Buffer.concat(parts),
    timeoutMs: 300_000,
  });
  const ids = r.stdout.toString('utf8').trim().split('\n');
  if (ids.length !== marks.length || !ids.every((id) => OID.test(id))) {
    throw new BreakglassError('GIT_FAILED', 'git fast-import returned unexpected marks');
  }
  return new Map(marks.map((m, k) => [m.ref, ids[k]!]));
}

/** A ref lock older than this is taken as left by a dead process (git holds them for ms). */
const STALE_REF_LOCK_MS = 30_000;
/**
 * A lock on one of our own refs this old is removed (and the transaction retried): git holds a
 * ref lock for milliseconds, so one left for 10 minutes belongs to a process that died (a
 * post-receive killed with its git children), and the events would otherwise wait for a human.
 * Younger than that, we fail fast with a hint and keep the events (a hung git could still
 * rename the lock into place).
 */
const REMOVE_REF_LOCK_MS = 10 * 60_000;

/** True for the lock file of one of the refs this transaction moves (ours only). */
function isOwnRefLock(gitDir: string, lock: string, refs: Map<string, string>): boolean {
  return [...refs.keys()].some((ref) => resolve(gitDir, `${ref}.lock`) === resolve(lock));
}

async function lockAgeMs(file: string): Promise<number> {
  try {
    return Date.now() - (await stat(file)).mtimeMs;
  } catch {
    return 0; // gone meanwhile: a live writer released it
  }
}

/** Moves all refs in one transaction; false when another writer got there first. */
async function moveRefs(
  ctx: GitContext,
  newTips: Map<string, string>,
  oldTips: Map<string, string>,
  onWarning?: (message: string) => void,
): Promise<boolean> {
  const lines = ['start'];
  for (const [ref, id] of newTips) {
    const old = oldTips.get(ref);
    lines.push(old ? `update ${ref} ${id} ${old}` : `create ${ref} ${id}`);
  }
  lines.push('prepare', 'commit', '');
  const r = await runGit(ctx, ['update-ref', '--stdin'], {
    input: lines.join('\n'),
    allowFail: true,
  });
  if (r.code === 0) return true;
  // git holds a ref lock for milliseconds: one much older was left by a process that died, and
  // retrying would only keep a pusher waiting. Say so at once; the events stay pending.
  const lock = /Unable to create '([^']+\.lock)': File exists/.exec(r.stderr)?.[1];
  const age = lock ? await lockAgeMs(lock) : 0;
  if (lock && age > REMOVE_REF_LOCK_MS && ctx.gitDir && isOwnRefLock(ctx.gitDir, lock, newTips)) {
    await rm(lock, { force: true });
    onWarning?.(
      `removed ${lock}, a ref lock left ${Math.round(age / 60_000)} minutes ago by a git process that died`,
    );
    return false; // retried at once by the caller's loop
  }
  if (lock && age > STALE_REF_LOCK_MS) {
    throw new BreakglassError('GIT_FAILED', `stale ref lock ${lock} blocks the audit notes`, {
      hint: `no git process holds it for long: remove it, then run \`bg-sign audit flush\` (the events are kept)`,
    });
  }
  // Lost races: "is at X but expected Y", "reference already exists", a .lock another writer
  // holds, a ref deleted meanwhile. Anything else (a D/F conflict, a broken repo) is an error.
  if (
    /but expected|reference already exists|\.lock': File exists|unable to resolve reference/.test(
      r.stderr,
    )
  ) {
    return false;
  }
  throw new BreakglassError(
    'GIT_FAILED',
    `git update-ref failed: ${r.stderr.trim().split('\n').slice(-2).join(' / ')}`,
  );
}

/**
 * Records events: appends each event's note block to every listed commit and adds one consumed/
 * commit per break-glass event, atomically, retrying on a race. Events whose exact block is
 * already in the note of their first commit are skipped, so re-running after a crash is safe.
 */
export async function recordEvents(
  gitDir: string,
  items: readonly RecordItem[],
  opts: RecordOptions = {},
): Promise<RecordResult> {
  const notesRef = opts.notesRef ?? DEFAULT_NOTES_REF;
  if (!isValidRefName(notesRef)) throw invalidItem(`invalid notes ref "${notesRef}"`);
  const normalized = items.map(normalize);
  const ctx: GitContext = { gitDir, env: opts.env ?? process.env };
  const maxRetries = opts.maxRetries ?? 40;
  // fast-import refuses a note on a missing commit; one bad event must not block the others.
  const listed = [...new Set(normalized.flatMap((w) => w.commits))];
  const present = await commitsPresent(ctx, listed);
  const missing = listed.filter((c) => !present.has(c));
  const unrecorded: number[] = [];
  const work = normalized.flatMap((w, i) => {
    const commits = w.commits.filter((c) => present.has(c));
    if (commits.length === 0) unrecorded.push(i);
    return commits.length ? [{ event: w.event, commits, use: w.use }] : [];
  });
  const commits = listed.filter((c) => present.has(c));
  const refs = [
    notesRef,
    ...new Set(
      work
        .filter((w) => w.event.kind === 'breakglass')
        .map((w) => consumedRefOf(w.event.ticketId!)),
    ),
  ];
  const extra = { missing, unrecorded };
  const run = async () => ({
    ...(await recordLoop(ctx, work, refs, commits, notesRef, maxRetries, opts)),
    ...extra,
  });
  if (work.length === 0)
    return { notesWritten: 0, usesRecorded: 0, retries: 0, skipped: 0, ...extra };
  if (opts.lock === false) return run();
  return withRecorderLock(join(gitDir, 'breakglass-record.lock'), run);
}

async function recordLoop(
  ctx: GitContext,
  work: readonly RecordItem[],
  refs: readonly string[],
  commits: readonly string[],
  notesRef: string,
  maxRetries: number,
  opts: RecordOptions,
): Promise<Omit<RecordResult, 'missing' | 'unrecorded'>> {
  for (let attempt = 0; ; attempt++) {
    const started = performance.now();
    const tips = await readRefTips(ctx, refs);
    const existing = await readNotesFor(ctx, tips.get(notesRef), commits);
    const p = plan(work, existing, await readUseKeys(ctx, tips, refs));
    const usesRecorded = [...p.uses.values()].reduce((s, u) => s + u.length, 0);
    const result = {
      notesWritten: p.notes.size,
      usesRecorded,
      retries: attempt,
      skipped: p.skipped,
    };
    if (p.notes.size === 0 && usesRecorded === 0) return result;
    const newTips = await buildObjects(ctx, p, tips, notesRef, opts.now ?? Date.now());
    await opts.beforeUpdate?.(attempt);
    if (await moveRefs(ctx, newTips, tips, opts.onWarning)) return result;
    if (attempt >= maxRetries) {
      throw new BreakglassError(
        'GIT_FAILED',
        `could not record ${work.length} audit event(s): ${notesRef} kept changing (${attempt + 1} attempts)`,
        { hint: 'run `bg-sign audit flush` again; the pending events are kept' },
      );
    }
    // Back off by a random multiple of what an attempt costs, growing with each loss, so that
    // writers that collided spread out instead of colliding again (decorrelated jitter).
    const cost = Math.max(10, performance.now() - started);
    await sleep(Math.min(2000, cost * 2 ** Math.min(attempt, 4)) * Math.random());
  }
}
