import type { AuditEvent } from '../audit/note.ts';
import { ZERO_SHA } from '../engine/update.ts';
import { BreakglassError } from '../errors.ts';
import { gitText, type GitContext } from '../git/git.ts';
import { recordEvents, type RecordItem } from '../git/record.ts';
import {
  armedEntry,
  claimEntries,
  eventStatus,
  finish,
  quarantineBad,
  readTxMarkers,
  reclaimSlots,
  releaseUse,
  reservedTickets,
  sameProcess,
  unclaim,
  updateKey,
  type Claimed,
  type EventStatus,
  type JournalEntry,
  type PendingEvent,
  type Reservation,
} from './journal.ts';
import { findReceivePack, liveness, type ProcessRef } from './receive-pack.ts';
import { broughtIn, MAX_NOTED_COMMITS } from './brought-in.ts';
import { parseUpdateLines, readBounded, type HookInput, type UpdateLine } from './push-input.ts';
import { notifyEvents } from './notify.ts';
import type { Sink } from './pre-receive.ts';

/** A flusher that crashed mid-entry leaves it in processing/; after this, another takes over. */
const STALE_CLAIM_MS = 10 * 60_000;
/** Dropped commits annotated on a force push; the note itself lists at most 50. */
const MAX_DROPPED = 100_000;
export interface FlushOptions {
  /** The updates git just made (post-receive stdin): their events landed for sure. */
  readonly updated?: readonly UpdateLine[];
  /** The flusher's receive-pack (post-receive): its own entry is final now. */
  readonly receivePack?: ProcessRef | null;
  /**
   * Also give back every use slot git did not commit, of every ticket (`reclaimSlots`): what
   * `bg-sign audit flush` does. Hooks don't: pre-receive settles one ticket when it runs out.
   */
  readonly sweep?: boolean;
}

export interface FlushedEvent {
  /** The journal entry (the push). */
  readonly entry: string;
  readonly ticket: string;
  readonly ref: string;
  readonly oldSha: string;
  readonly newSha: string;
  /** Commits annotated. */
  readonly commits: number;
}

export interface FlushResult {
  readonly recorded: FlushedEvent[];
  /** Events whose push git did not commit; their reservations were released. */
  readonly dropped: FlushedEvent[];
  /** Events of pushes that may still be landing (kept pending). */
  readonly waiting: number;
  /** Events git prepared and then said nothing more about (kept pending, use kept, reported). */
  readonly uncertain: FlushedEvent[];
  readonly released: Reservation[];
  readonly errors: string[];
}

/** The audit event and the commits to annotate for one landed update (DESIGN §7). */
async function recordItem(
  ctx: GitContext,
  entry: JournalEntry,
  e: PendingEvent,
  commitsOf: (e: PendingEvent) => Promise<string[]>,
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
  const commits = e.commits ? [...e.commits] : [...(await commitsOf(e))];
  if (commits.length > MAX_NOTED_COMMITS) {
    throw new BreakglassError(
      'INPUT_TOO_LARGE',
      `${e.ref}: more than ${MAX_NOTED_COMMITS} commits to annotate; record them with bg-sign audit flush after raising the limit`,
    );
  }
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

/**
 * E5: a commit that several refs of one push bring in under one ticket gets one note block for
 * that push, naming every such ref (docs/audit-notes.md), not one block per ref: 64 release
 * branches moved to the same 25,000 commits make 25,000 notes of one block each. Events merge
 * when only their ref update differs (a force push's replaced tip and dropped commits are its
 * own); each distinct set of refs a commit was brought in by is one block.
 */
export function mergeRefs(items: readonly RecordItem[]): RecordItem[] {
  const groups = new Map<string, RecordItem[]>();
  const out: RecordItem[] = [];
  for (const it of items) {
    const e = it.event;
    if (e.replacedTip !== undefined || e.dropped !== undefined || e.kind !== 'breakglass') {
      out.push(it);
      continue;
    }
    const key = JSON.stringify({ ...e, ref: '', oldSha: '', newSha: '' });
    groups.set(key, [...(groups.get(key) ?? []), it]);
  }
  for (const group of groups.values()) {
    if (group.length === 1) {
      out.push(group[0]!);
      continue;
    }
    // Which of the group's updates brought each commit in (indices, in event order).
    const by = new Map<string, number[]>();
    group.forEach((it, i) => {
      for (const c of it.commits) {
        const list = by.get(c);
        if (list) list.push(i);
        else by.set(c, [i]);
      }
    });
    const sets = new Map<string, { members: number[]; commits: string[] }>();
    for (const [c, members] of by) {
      const k = members.join(',');
      const set = sets.get(k);
      if (set) set.commits.push(c);
      else sets.set(k, { members, commits: [c] });
    }
    for (const { members, commits } of sets.values()) {
      const first = group[members[0]!]!.event;
      const refs = members.map((i) => {
        const e = group[i]!.event;
        return { ref: e.ref, oldSha: e.oldSha, newSha: e.newSha };
      });
      out.push({ event: refs.length > 1 ? { ...first, refs } : first, commits });
    }
  }
  return out;
}

function flushed(entry: string, e: PendingEvent, commits: number): FlushedEvent {
  return { entry, ticket: e.ticket, ref: e.ref, oldSha: e.oldSha, newSha: e.newSha, commits };
}

async function flushEntry(
  ctx: GitContext & { gitDir: string },
  c: Claimed,
  entry: JournalEntry,
  o: FlushOptions,
  now: number,
  result: FlushResult,
): Promise<void> {
  const updated = new Set((o.updated ?? []).map((u) => updateKey(u.ref, u.oldSha, u.newSha)));
  const facts = {
    updated,
    // git runs post-receive once it has finished every update of the push, and lists those it
    // made. Without a provable receive-pack (a hook run in-process), an entry naming one of the
    // listed updates is taken as this push's.
    own:
      sameProcess(entry.receivePack, o.receivePack) ||
      (!entry.receivePack &&
        entry.events.some((e) => updated.has(updateKey(e.ref, e.oldSha, e.newSha)))),
    markers: await readTxMarkers(ctx.gitDir, entry.name),
    receivePack: liveness(entry.receivePack),
    transactionHook: entry.transactionHook !== false,
  };
  const status = new Map<PendingEvent, EventStatus>();
  for (const e of entry.events)
    status.set(e, eventStatus(updateKey(e.ref, e.oldSha, e.newSha), facts));
  const only = (s: EventStatus) => entry.events.filter((e) => status.get(e) === s);
  const landed = only('landed');
  const dropped = only('dropped');
  const open = [...only('waiting'), ...only('uncertain')];
  const usesRecorded = new Set(entry.usesRecorded ?? []);

  if (landed.length) {
    const perEvent: RecordItem[] = [];
    const ranges = new Map<string, Promise<string[]>>();
    const commitsOf = (e: PendingEvent) => {
      const k = `${e.oldSha} ${e.newSha} ${(e.base ?? []).join(' ')}`;
      let p = ranges.get(k);
      if (!p) ranges.set(k, (p = broughtIn(ctx, e)));
      return p;
    };
    for (const e of landed) perEvent.push(await recordItem(ctx, entry, e, commitsOf));
    // T13: one push is one use of a ticket, however many refs it covers.
    const items = mergeRefs(perEvent).map((item) => {
      const use = !usesRecorded.has(item.event.ticketId!);
      usesRecorded.add(item.event.ticketId!);
      return { ...item, use };
    });
    await recordEvents(ctx.gitDir, items, {
      env: ctx.env ?? process.env,
      now,
      onWarning: (m) => result.errors.push(m),
    });
    perEvent.forEach((it, i) =>
      result.recorded.push(flushed(entry.name, landed[i]!, it.commits.length)),
    );
  }
  // E2: a use is given back only when git committed nothing it authorised in this push.
  const keep: Reservation[] = [];
  for (const r of entry.reservations) {
    const mine = entry.events.filter((e) => e.ticket === r.ticket);
    if (mine.some((e) => status.get(e) === 'landed')) continue; // recorded: marker stays
    if (mine.some((e) => open.includes(e))) {
      keep.push(r);
      continue;
    }
    await releaseUse(ctx.gitDir, r);
    result.released.push(r);
  }
  result.dropped.push(...dropped.map((e) => flushed(entry.name, e, 0)));
  result.uncertain.push(...only('uncertain').map((e) => flushed(entry.name, e, 0)));
  if (open.length) {
    (result as { waiting: number }).waiting += only('waiting').length;
    await unclaim(ctx.gitDir, c, {
      ...entry,
      events: open,
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

// TM14, E1, E2: events are recorded once git has said it committed them, with expected old values.
/**
 * Turns pending journal entries into audit notes and consumed/ records (DESIGN §6): every entry
 * that is due, including ones a crash left behind. An event is recorded, dropped (its use given
 * back) or kept as git's own word decides (see `eventStatus`); entries of pushes still running
 * are left to their own post-receive. Safe to run concurrently and to re-run: entries are
 * claimed by rename and recording skips events already noted. One entry that fails is reported
 * (and counted in the entry, E4) without stopping the others. Used by post-receive and by
 * `bg-sign audit flush GIT_DIR`.
 */
export async function flushJournal(
  gitDir: string,
  env: NodeJS.ProcessEnv,
  now: number,
  o: FlushOptions = {},
): Promise<FlushResult> {
  const ctx = { gitDir, env };
  const result: FlushResult = {
    recorded: [],
    dropped: [],
    waiting: 0,
    uncertain: [],
    released: [],
    errors: [],
  };
  const claimed = await claimEntries(gitDir, now, STALE_CLAIM_MS, {
    mine: o.receivePack ?? null,
    mineKeys: new Set((o.updated ?? []).map((u) => updateKey(u.ref, u.oldSha, u.newSha))),
    onError: (m) => result.errors.push(m),
    onInFlight: (entry) => ((result as { waiting: number }).waiting += entry.events.length),
  });
  for (const c of claimed) {
    if (!c.entry) {
      result.errors.push(
        `journal file ${c.file} is unreadable (${c.error}); moved to journal/bad/ (new break-glass pushes are refused until an admin resolves it)`,
      );
      await quarantineBad(gitDir, c).catch((e: Error) =>
        result.errors.push(`could not move ${c.file} to journal/bad/: ${e.message}`),
      );
      continue;
    }
    try {
      await flushEntry(ctx, c, c.entry, o, now, result);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      result.errors.push(`journal entry ${c.entry.name}: ${msg}; kept pending`);
      // E4: counted in the entry, so pre-receive refuses new break-glass pushes meanwhile.
      await unclaim(gitDir, c, {
        ...c.entry,
        failures: (c.entry.failures ?? 0) + 1,
        lastError: msg.slice(0, 500),
      }).catch((e2: Error) =>
        result.errors.push(`journal entry ${c.entry!.name} could not be put back: ${e2.message}`),
      );
    }
  }
  if (o.sweep) {
    for (const id of await reservedTickets(gitDir)) {
      try {
        await reclaimSlots(gitDir, id, (r) => result.released.push(r));
      } catch (e) {
        result.errors.push(`reservations of ${id}: ${(e as Error).message}`);
      }
    }
  }
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
  for (const e of r.uncertain) {
    out.push(
      `git-breakglass: warning: uncertain whether git applied ${e.ref} -> ${e.newSha.slice(0, 12)} (ticket ${e.ticket}, journal entry ${e.entry}); kept pending with its use: check the ref, then bg-sign audit flush GIT_DIR --resolve ${e.entry}=landed|dropped`,
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
  /** The receive-pack running this hook (`findReceivePack(process.ppid)` in the hook process). */
  readonly receivePack?: ProcessRef | null;
}

/** Rounds a post-receive waits for its own entry while another flusher holds it. */
const OWN_ENTRY_ROUNDS = 50;

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
      updated = []; // the reference-transaction markers still say what git committed
    }
    const rp = o.receivePack === undefined ? findReceivePack(process.ppid) : o.receivePack;
    const r = await flushJournal(o.gitDir, o.env, o.now, { updated, receivePack: rp });
    // E1: this push's own entry is recorded before the push returns, even when another flusher
    // (an admin's flush, another push's post-receive) held it a moment ago; finishing disarms it.
    for (let i = 0; i < OWN_ENTRY_ROUNDS && r.errors.length === 0; i++) {
      if (!(await armedEntry(o.gitDir, rp))) break;
      await new Promise((res) => setTimeout(res, 100));
      const again = await flushJournal(o.gitDir, o.env, o.now, { updated, receivePack: rp });
      for (const k of ['recorded', 'dropped', 'uncertain', 'released', 'errors'] as const) {
        (r[k] as unknown[]).push(...again[k]);
      }
    }
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
