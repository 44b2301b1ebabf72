import type { AuditEvent } from '../audit/note.ts';
import { ZERO_SHA } from '../engine/update.ts';
import { isBreakglassError } from '../errors.ts';
import { gitText, runGit, type GitContext } from '../git/git.ts';
import { recordEvents, type RecordItem } from '../git/record.ts';
import {
  claimEntries,
  finish,
  quarantineBad,
  releaseUse,
  sweepOrphanReservations,
  unclaim,
  type Claimed,
  type JournalEntry,
  type PendingEvent,
  type Reservation,
} from './journal.ts';
import { parseUpdateLines, readBounded, type HookInput, type UpdateLine } from './push-input.ts';
import { notifyEvents } from './notify.ts';
import type { Sink } from './pre-receive.ts';

/**
 * How long an accepted push may take to land before its event is dropped. The ref moves right
 * after pre-receive returns; this only has to outlast a slow push (and the 20 s watchdog).
 */
export const DEFAULT_GRACE_MS = 120_000;
/** A flusher that crashed mid-entry leaves it in processing/; after this, another takes over. */
const STALE_CLAIM_MS = 10 * 60_000;
/** Dropped commits annotated on a force push; the note itself lists at most 50. */
const MAX_DROPPED = 100_000;

export interface FlushOptions {
  /** The updates git just made (post-receive stdin): their events landed for sure. */
  readonly updated?: readonly UpdateLine[];
  readonly graceMs?: number;
}

export interface FlushedEvent {
  readonly ticket: string;
  readonly ref: string;
  readonly oldSha: string;
  readonly newSha: string;
  /** Commits annotated. */
  readonly commits: number;
}

export interface FlushResult {
  readonly recorded: FlushedEvent[];
  /** Events whose push did not land; their reservations were released. */
  readonly dropped: FlushedEvent[];
  /** Events of pushes that may still be landing (kept pending). */
  readonly waiting: number;
  readonly released: Reservation[];
  readonly errors: string[];
}

type Status = 'landed' | 'dropped' | 'waiting';

const key = (ref: string, oldSha: string, newSha: string) => `${ref} ${oldSha} ${newSha}`;

/** Current tips of the given refs with one `for-each-ref`. */
async function refTips(ctx: GitContext, refs: readonly string[]): Promise<Map<string, string>> {
  const tips = new Map<string, string>();
  if (refs.length === 0) return tips;
  const out = await gitText(ctx, ['for-each-ref', '--format=%(objectname) %(refname)', ...refs]);
  for (const line of out ? out.split('\n') : []) {
    const sp = line.indexOf(' ');
    tips.set(line.slice(sp + 1), line.slice(0, sp));
  }
  return tips;
}

async function isAncestor(ctx: GitContext, a: string, b: string): Promise<boolean> {
  const r = await runGit(ctx, ['merge-base', '--is-ancestor', a, b], { allowFail: true });
  return r.code === 0;
}

/** Did this event's update happen? */
async function statusOf(
  ctx: GitContext,
  e: PendingEvent,
  tips: Map<string, string>,
  updated: Set<string>,
  ownEntry: boolean,
  young: boolean,
): Promise<Status> {
  if (updated.has(key(e.ref, e.oldSha, e.newSha))) return 'landed';
  const cur = tips.get(e.ref);
  if (ZERO_SHA.test(e.newSha)) {
    if (cur === undefined) return 'landed';
  } else if (cur === e.newSha) {
    return 'landed';
  } else if (cur !== undefined && cur !== e.oldSha && (await isAncestor(ctx, e.newSha, cur))) {
    // Someone pushed on top since: the update happened (a rejected push leaves the old tip).
    return 'landed';
  }
  // git reports every ref it updated to post-receive: a sibling that is not listed failed.
  if (ownEntry) return 'dropped';
  return young ? 'waiting' : 'dropped';
}

/** The audit event and the commits to annotate for one landed update (DESIGN §7). */
async function recordItem(
  ctx: GitContext,
  entry: JournalEntry,
  e: PendingEvent,
): Promise<RecordItem> {
  const event: AuditEvent = {
    kind: 'breakglass',
    ticketId: e.ticket,
    actions: [...e.actions],
    ref: e.ref,
    oldSha: e.oldSha,
    newSha: e.newSha,
    pusher: e.pusher,
    requester: e.requester,
    approvers: e.approvers,
    reason: e.reason,
    ...(e.incident ? { incident: e.incident } : {}),
    window: e.window,
    recordedAt: entry.createdAt,
    recordedBy: entry.recordedBy,
  };
  const commits = [...e.commits];
  if (e.kind === 'force') {
    // A force push also marks what it replaced: the old tip and every commit it dropped.
    const out = await gitText(ctx, [
      'rev-list',
      `--max-count=${MAX_DROPPED}`,
      e.oldSha,
      '--not',
      e.newSha,
    ]);
    const dropped = out ? out.split('\n') : [];
    event.replacedTip = e.oldSha;
    event.dropped = dropped;
    commits.push(...dropped.filter((c) => !commits.includes(c)));
    if (!commits.includes(e.oldSha)) commits.push(e.oldSha);
  } else if (e.kind === 'delete') {
    commits.push(e.oldSha);
  }
  // A push of commits the repository already had annotates the new tip.
  if (commits.length === 0 && !ZERO_SHA.test(e.newSha)) commits.push(e.newSha);
  return { event, commits };
}

function flushed(e: PendingEvent, commits: number): FlushedEvent {
  return { ticket: e.ticket, ref: e.ref, oldSha: e.oldSha, newSha: e.newSha, commits };
}

async function flushEntry(
  ctx: GitContext & { gitDir: string },
  c: Claimed,
  entry: JournalEntry,
  now: number,
  o: FlushOptions,
  graceMs: number,
  result: FlushResult,
): Promise<void> {
  const updated = new Set((o.updated ?? []).map((u) => key(u.ref, u.oldSha, u.newSha)));
  const tips = await refTips(ctx, [...new Set(entry.events.map((e) => e.ref))]);
  const ownEntry = entry.events.some((e) => updated.has(key(e.ref, e.oldSha, e.newSha)));
  const young = now - entry.createdAtMs < graceMs;
  const status = new Map<PendingEvent, Status>();
  for (const e of entry.events) {
    status.set(e, await statusOf(ctx, e, tips, updated, ownEntry, young));
  }
  const landed = entry.events.filter((e) => status.get(e) === 'landed');
  const usesRecorded = new Set(entry.usesRecorded ?? []);
  const dropped = entry.events.filter((e) => status.get(e) === 'dropped');
  const waiting = entry.events.filter((e) => status.get(e) === 'waiting');

  if (landed.length) {
    const items = [];
    // T13: one push is one use of a ticket, however many refs it covers.
    for (const e of landed) {
      const item = await recordItem(ctx, entry, e);
      items.push({ ...item, use: !usesRecorded.has(e.ticket) });
      usesRecorded.add(e.ticket);
    }
    await recordEvents(ctx.gitDir, items, {
      env: ctx.env ?? process.env,
      now,
      onWarning: (m) => result.errors.push(m),
    });
    items.forEach((it, i) => result.recorded.push(flushed(landed[i]!, it.commits.length)));
  }
  // A use is given back only when nothing it authorised landed (and nothing may still land).
  const keep: Reservation[] = [];
  for (const r of entry.reservations) {
    const mine = entry.events.filter((e) => e.ticket === r.ticket);
    if (mine.some((e) => status.get(e) === 'landed')) continue; // recorded: marker stays
    if (mine.some((e) => status.get(e) === 'waiting')) {
      keep.push(r);
      continue;
    }
    await releaseUse(ctx.gitDir, r);
    result.released.push(r);
  }
  result.dropped.push(...dropped.map((e) => flushed(e, 0)));
  if (waiting.length) {
    (result as { waiting: number }).waiting += waiting.length;
    await unclaim(ctx.gitDir, c, {
      ...entry,
      events: waiting,
      reservations: keep,
      usesRecorded: [...usesRecorded],
    });
    return;
  }
  await finish(ctx.gitDir, c, {
    ...entry,
    resolution: {
      recorded: landed.map((e) => e.ref),
      dropped: dropped.map((e) => e.ref),
      at: new Date(now).toISOString(),
    },
  });
}

// TM14: only events whose ref really moved are recorded, once, with expected old values.
/**
 * Turns pending journal entries into audit notes and consumed/ records (DESIGN §6): every entry,
 * including ones a crash left behind. Events whose ref did not move are dropped (after a grace
 * period for pushes still landing) and their reservations released. Safe to run concurrently
 * and to re-run: entries are claimed by rename and recording skips events already noted.
 * Used by post-receive and by `bg-sign audit flush GIT_DIR`.
 */
export async function flushJournal(
  gitDir: string,
  env: NodeJS.ProcessEnv,
  now: number,
  o: FlushOptions = {},
): Promise<FlushResult> {
  const ctx = { gitDir, env };
  const graceMs = o.graceMs ?? DEFAULT_GRACE_MS;
  const result: FlushResult = { recorded: [], dropped: [], waiting: 0, released: [], errors: [] };
  for (const c of await claimEntries(gitDir, now, STALE_CLAIM_MS)) {
    if (!c.entry) {
      result.errors.push(
        `journal file ${c.file} is unreadable (${c.error}); moved to journal/bad/`,
      );
      await quarantineBad(gitDir, c);
      continue;
    }
    try {
      await flushEntry(ctx, c, c.entry, now, o, graceMs, result);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (isBreakglassError(e) && e.code === 'AUDIT_RECORD_INVALID') {
        // Retrying can't fix a malformed event; keep it for a human, keep its reservation.
        result.errors.push(`journal entry ${c.entry.name}: ${msg}; moved to journal/bad/`);
        await quarantineBad(gitDir, c);
      } else {
        result.errors.push(`journal entry ${c.entry.name}: ${msg}; kept pending`);
        await unclaim(gitDir, c, c.entry);
      }
    }
  }
  result.released.push(...(await sweepOrphanReservations(gitDir, now, graceMs)));
  return result;
}

/** Human lines for a flush result. */
export function formatFlush(r: FlushResult): string[] {
  const out: string[] = [];
  for (const e of r.recorded) {
    out.push(
      `git-breakglass: recorded ticket ${e.ticket} on ${e.ref} (${e.oldSha.slice(0, 12)}..${e.newSha.slice(0, 12)}): audit note on ${e.commits} commit(s) in refs/notes/breakglass`,
    );
  }
  for (const e of r.dropped) {
    out.push(
      `git-breakglass: ${e.ref} did not move to ${e.newSha.slice(0, 12)}; ticket ${e.ticket}'s use was released`,
    );
  }
  for (const e of r.errors) out.push(`git-breakglass: warning: ${e}`);
  return out;
}

export interface PostReceiveOptions {
  readonly gitDir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly stdin: HookInput;
  readonly now: number;
  readonly stdout: Sink;
  readonly stderr: Sink;
}

/**
 * The post-receive hook: records what pre-receive journaled. It can't fail the push (the refs
 * have moved); problems are printed and the entries stay pending for `bg-sign audit flush`.
 */
export async function runPostReceive(o: PostReceiveOptions): Promise<number> {
  try {
    let updated: UpdateLine[] = [];
    try {
      updated = parseUpdateLines(await readBounded(o.stdin));
    } catch {
      updated = []; // only a hint; the ref check still decides
    }
    const r = await flushJournal(o.gitDir, o.env, o.now, { updated });
    const lines = formatFlush(r);
    if (lines.length) o.stdout.write(lines.join('\n') + '\n');
    // After the events are recorded: a slow or failing notifier can't lose them (bounded, logged).
    await notifyEvents(o.gitDir, o.env, r.recorded, { now: o.now });
  } catch (e) {
    o.stderr.write(
      `git-breakglass: warning: could not record the audit trail now (${e instanceof Error ? e.message : String(e)}); run: bg-sign audit flush <GIT_DIR>\n`,
    );
  }
  return 0;
}
