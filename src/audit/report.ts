import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import { formatDuration } from '../policy/duration.ts';
import { formatTime } from '../ticket/time.ts';
import type { UseRecord } from './consumed.ts';
import { eventKey, type AuditEvent } from './note.ts';
import type { ReviewOutcome } from './review.ts';

/**
 * The audit report (DESIGN §1 step 6, issue 5): one row per recorded event, joined from the
 * notes, the tickets, consumed/, revoked/ and reviews/. Pure: the source (src/git/audit-source.ts)
 * reads git, the CLI picks the clock. The JSON shape is a contract (docs/audit-format.md): add
 * fields only, and bump REPORT_SCHEMA_VERSION on any incompatible change.
 */

export const REPORT_SCHEMA_VERSION = 1;

/** An event from the notes with every commit it annotated (one event may annotate many). */
export interface NotedEvent {
  readonly event: AuditEvent;
  readonly commits: readonly string[];
  /** Set by the source when a consumed/ use record matches this event. */
  useRecord?: boolean;
  /** Set by the source: whether the event's ticket ref exists (else `ticketIds` is asked). */
  hasTicket?: boolean;
  /** The row id (rowId of the event), when the source computed it already. */
  readonly id?: string;
  /** What planReport needs of the event, when the source has it without making the event. */
  facts?(): EventFacts;
  /** `event` and `commits` at once, when the source makes them cheaper together. */
  unpack?(): { event: AuditEvent; commits: readonly string[] };
}

/** The parts of an event a report is filtered, ordered and counted by. */
export interface EventFacts {
  readonly kind: AuditEvent['kind'];
  readonly ticketId: string | undefined;
  readonly ref: string;
  readonly actions: readonly string[];
  /** The requester's principal, when the event names one. */
  readonly requester: string | undefined;
  readonly recordedAt: string;
}

/** What the report needs from a ticket (read from `refs/breakglass/tickets/<id>`). */
export interface TicketFacts {
  readonly id: string;
  readonly requester: string;
  readonly holder: string;
  readonly reason: string;
  readonly incident?: string | undefined;
  readonly notBefore: string;
  readonly expiresAt: string;
  readonly maxUses: number;
  /** Distinct signers besides the requester, when the envelope was verified under a policy. */
  readonly approvers?: readonly { principal: string; keyid: string }[] | undefined;
}

/** A revocation as read (valid = verified under the policy; null = no policy to verify with). */
export interface RevocationFacts {
  readonly ticket: string;
  readonly revoker: string;
  readonly revokedAt: string;
  readonly reason: string;
  readonly valid: boolean | null;
  readonly error?: string | undefined;
}

/** The newest review of a ticket (the tip of `refs/breakglass/reviews/<id>`). */
export interface ReviewFacts {
  readonly ticket: string;
  readonly reviewer: string;
  readonly outcome: ReviewOutcome;
  readonly note: string;
  readonly reviewedAt: string;
  readonly reviewedAtMs: number;
  /** true = verified (R1-R5), false = failed (error says why), null = no policy to verify with. */
  readonly valid: boolean | null;
  readonly error?: string | undefined;
}

/** A problem found while reading (malformed note, unreadable record, forged review...). */
export interface AuditProblem {
  /** `journal`: a server's break-glass event not (yet) recorded (E1, E4). */
  readonly kind: 'note' | 'use' | 'ticket' | 'review' | 'revocation' | 'journal';
  readonly where: string;
  readonly message: string;
}

/** Everything the source read. */
export interface AuditData {
  readonly events: readonly NotedEvent[];
  readonly tickets: ReadonlyMap<string, TicketFacts>;
  /** Ids that have a ticket ref (read or not). */
  readonly ticketIds: { has(id: string): boolean };
  readonly uses: readonly UseRecord[];
  readonly revocations: ReadonlyMap<string, RevocationFacts>;
  readonly reviews: ReadonlyMap<string, ReviewFacts>;
  readonly problems: readonly AuditProblem[];
}

export type ReviewStatus = 'reviewed' | 'unreviewed' | 'invalid' | 'unverified' | 'not-applicable';

/** One report row; serialised as-is in the JSON format. */
export interface AuditRow {
  /** Stable id: first 16 hex of sha256 over kind, ticket, ref and old..new. */
  readonly id: string;
  readonly kind: 'breakglass' | 'violation';
  readonly time: string;
  readonly recordedBy: string;
  readonly ticket: string | null;
  readonly ref: string;
  readonly actions: readonly string[];
  readonly update: { readonly old: string; readonly new: string };
  readonly commits: { readonly count: number; readonly ids: readonly string[] };
  readonly replacedTip: string | null;
  readonly dropped: { readonly count: number; readonly ids: readonly string[] } | null;
  readonly pusher: string;
  readonly requester: { readonly principal: string; readonly keyid: string | null } | null;
  readonly approvers: readonly { readonly principal: string; readonly keyid: string }[];
  readonly reason: string | null;
  readonly incident: string | null;
  readonly window: { readonly notBefore: string; readonly expiresAt: string } | null;
  readonly violation: string | null;
  /** Which records back this row: the audit note and/or the consumed/ use record. */
  readonly evidence: {
    readonly note: boolean;
    readonly useRecord: boolean;
    readonly ticket: boolean;
  };
  readonly revocation: {
    readonly revoker: string;
    readonly revokedAt: string;
    readonly reason: string;
    readonly valid: boolean | null;
  } | null;
  readonly review: {
    readonly status: ReviewStatus;
    readonly outcome: ReviewOutcome | null;
    readonly reviewer: string | null;
    readonly reviewedAt: string | null;
    readonly note: string | null;
    readonly error: string | null;
    /** Milliseconds the event has waited for a review at report time (null once reviewed). */
    readonly waitingMs: number | null;
  };
}

export interface ReportOptions {
  /** Reference time (ms), taken once by the CLI. */
  readonly now: number;
  readonly since?: number | undefined;
  readonly until?: number | undefined;
  /** Keep rows whose ref matches (a compiled predicate, so the core stays free of pattern rules). */
  readonly refFilter?: ((ref: string) => boolean) | undefined;
  readonly refText?: string | undefined;
  readonly ticket?: string | undefined;
  /** Keep only rows waiting for a review (unreviewed, invalid or unverified review). */
  readonly unreviewed?: boolean | undefined;
  /** With `unreviewed`: only rows waiting longer than this. */
  readonly olderThanMs?: number | undefined;
  readonly repository?: string | null | undefined;
  /** Where the policy came from, or null when reviews could not be verified. */
  readonly policySource?: string | null | undefined;
}

export interface ReportSummary {
  events: number;
  breakglass: number;
  violations: number;
  reviewed: number;
  awaitingReview: number;
  byOutcome: Record<string, number>;
  byReviewStatus: Record<string, number>;
  byRef: Record<string, number>;
  byRequester: Record<string, number>;
  byAction: Record<string, number>;
}

/** The whole report; `rows` is sorted by time, then id. */
export interface AuditReport {
  readonly schemaVersion: number;
  readonly generatedAt: string;
  readonly repository: string | null;
  readonly policySource: string | null;
  readonly period: { readonly since: string | null; readonly until: string | null };
  readonly filters: {
    readonly ref: string | null;
    readonly ticket: string | null;
    readonly unreviewed: boolean;
    readonly olderThan: string | null;
  };
  readonly summary: ReportSummary;
  readonly rows: readonly AuditRow[];
  readonly problems: readonly AuditProblem[];
}

// One-shot hashing (Node >= 20.12) skips the Hash object: 100,000 row ids are hashed per report.
// Asked for hex text, not a Buffer: making 100,000 digest Buffers cost more than the hashing
// (measured ~90 vs ~40 ms). The id is a slice of that text; the audit copies it into its packed
// events, so the rest of the text is not kept.
const oneShot = (crypto as { hash?: (alg: string, data: string, enc: 'hex') => string }).hash;

/** A row's stable id: first 16 hex of sha256 over the event key (kind, ticket, ref, update). */
export function rowId(
  e: Pick<AuditEvent, 'kind' | 'ticketId' | 'ref' | 'oldSha' | 'newSha'>,
): string {
  const key = eventKey(e);
  const hex = oneShot
    ? oneShot('sha256', key, 'hex')
    : createHash('sha256').update(key).digest('hex');
  return hex.slice(0, 16);
}

function factsOf(e: AuditEvent): EventFacts {
  return {
    kind: e.kind,
    ticketId: e.ticketId,
    ref: e.ref,
    actions: e.actions,
    requester: e.requester?.principal,
    recordedAt: e.recordedAt,
  };
}

function timeMs(text: string): number {
  // Notes and records were validated strictly when parsed; Date.parse is only for ordering here.
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? 0 : ms;
}

/**
 * Merges events that were read from several commits' notes into one (same kind, ticket, ref and
 * update), keeping every annotated commit once. The source may already have done this.
 */
export function dedupeEvents(items: Iterable<{ event: AuditEvent; commit: string }>): NotedEvent[] {
  const byKey = new Map<string, { event: AuditEvent; commits: string[]; seen: Set<string> }>();
  for (const { event, commit } of items) {
    const key = eventKey(event);
    let e = byKey.get(key);
    if (!e) {
      e = { event, commits: [], seen: new Set() };
      byKey.set(key, e);
    }
    if (!e.seen.has(commit)) {
      e.seen.add(commit);
      e.commits.push(commit);
    }
  }
  return [...byKey.values()].map(({ event, commits }) => ({ event, commits }));
}

// Rows share these small immutable objects (100,000 rows, 8 combinations).
const EVIDENCE = new Map<number, AuditRow['evidence']>();
function evidenceOf(note: boolean, useRecord: boolean, ticket: boolean): AuditRow['evidence'] {
  const k = (note ? 4 : 0) + (useRecord ? 2 : 0) + (ticket ? 1 : 0);
  let v = EVIDENCE.get(k);
  if (!v) EVIDENCE.set(k, (v = Object.freeze({ note, useRecord, ticket })));
  return v;
}

const NOT_APPLICABLE: AuditRow['review'] = Object.freeze({
  status: 'not-applicable',
  outcome: null,
  reviewer: null,
  reviewedAt: null,
  note: null,
  error: null,
  waitingMs: null,
});

/** What the summary counts of a row's review. */
interface ReviewCount {
  readonly status: ReviewStatus;
  readonly outcome: ReviewOutcome | null;
}

/** The status and outcome reviewOf would give, without making the review object. */
function reviewCountOf(
  kind: AuditRow['kind'],
  ticket: string | null,
  timeMsValue: number,
  reviews: ReadonlyMap<string, ReviewFacts>,
): ReviewCount {
  if (kind === 'violation' || ticket === null) return NOT_APPLICABLE;
  const r = reviews.get(ticket);
  if (!r || r.reviewedAtMs < timeMsValue) return UNREVIEWED;
  return {
    status: r.valid === true ? 'reviewed' : r.valid === false ? 'invalid' : 'unverified',
    outcome: r.outcome,
  };
}

const UNREVIEWED = Object.freeze({ status: 'unreviewed', outcome: null } as const);

/**
 * Row order: by time, then id. Times in whole seconds (as recorded) are sorted as numbers with
 * the row number attached (a native numeric sort, ~10x faster than a comparator over 100,000
 * rows), then rows of the same second by id; other times take the comparator.
 */
function reportOrder(times: readonly number[], ids: readonly string[]): number[] {
  const n = times.length;
  const byTimeThenId = (a: number, b: number) =>
    times[a]! - times[b]! || (ids[a]! < ids[b]! ? -1 : 1);
  const ROW_BITS = 2 ** 21;
  let whole = n < ROW_BITS;
  for (let i = 0; whole && i < n; i++) {
    const sec = times[i]! / 1000;
    whole = Number.isInteger(sec) && sec >= 0 && sec < 2 ** 31;
  }
  if (!whole) return Array.from({ length: n }, (_, i) => i).sort(byTimeThenId);
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = (times[i]! / 1000) * ROW_BITS + i;
  keys.sort();
  const order = Array.from(keys, (k) => k % ROW_BITS);
  // Rows of the same second: by id.
  for (let i = 0; i < n;) {
    let j = i + 1;
    while (j < n && times[order[j]!] === times[order[i]!]) j++;
    if (j - i > 1) {
      const run = order.slice(i, j).sort(byTimeThenId);
      for (let k = i; k < j; k++) order[k] = run[k - i]!;
    }
    i = j;
  }
  return order;
}

/**
 * Counts rows into a summary, adding a run of rows with the same key at once (the keys of a
 * 100,000-row report are a handful of refs, names and actions). Keys are still inserted in the
 * order rows first show them.
 */
class Tally {
  private readonly runs: { map: Record<string, number>; key: string | null; n: number }[];
  constructor(private readonly s: ReportSummary) {
    this.runs = [s.byReviewStatus, s.byOutcome, s.byRef, s.byRequester, s.byAction].map((map) => ({
      map,
      key: null,
      n: 0,
    }));
  }

  private bump(i: number, key: string): void {
    const r = this.runs[i]!;
    if (r.key === key) r.n++;
    else {
      if (r.key !== null) r.map[r.key] = (r.map[r.key] ?? 0) + r.n;
      r.key = key;
      r.n = 1;
    }
  }

  add(
    kind: AuditRow['kind'],
    review: ReviewCount,
    ref: string,
    requester: string | null,
    actions: readonly string[],
  ): void {
    const s = this.s;
    s.events++;
    if (kind === 'violation') s.violations++;
    else s.breakglass++;
    if (review.status === 'reviewed') s.reviewed++;
    if (awaitsReview({ review })) s.awaitingReview++;
    this.bump(0, review.status);
    if (review.status === 'reviewed' && review.outcome) this.bump(1, review.outcome);
    this.bump(2, ref);
    this.bump(3, requester ?? '(none)');
    // Actions: a row's list counts each action; lists are shared, so a run compares the list.
    for (const a of actions) this.bump(4, a);
  }

  flush(): void {
    for (const r of this.runs) {
      if (r.key !== null) r.map[r.key] = (r.map[r.key] ?? 0) + r.n;
      r.key = null;
      r.n = 0;
    }
  }
}

function reviewOf(
  kind: AuditRow['kind'],
  ticket: string | null,
  timeMsValue: number,
  reviews: ReadonlyMap<string, ReviewFacts>,
  now: number,
): AuditRow['review'] {
  if (kind === 'violation' || ticket === null) return NOT_APPLICABLE;
  const r = reviews.get(ticket);
  const waiting = Math.max(0, now - timeMsValue);
  // A review covers the uses recorded before it; a later use of the same ticket waits again.
  // Plain literals (one per row, 100,000 rows): no spread, so each is one small fixed-shape object.
  if (!r || r.reviewedAtMs < timeMsValue) {
    return {
      status: 'unreviewed',
      outcome: null,
      reviewer: null,
      reviewedAt: null,
      note: null,
      error: null,
      waitingMs: waiting,
    };
  }
  return {
    status: r.valid === true ? 'reviewed' : r.valid === false ? 'invalid' : 'unverified',
    outcome: r.outcome,
    reviewer: r.reviewer,
    reviewedAt: r.reviewedAt,
    note: r.note,
    error: r.error ?? null,
    waitingMs: r.valid === true ? null : waiting,
  };
}

/** True if a row still needs a (valid) review. */
export function awaitsReview(row: { review: { status: ReviewStatus } }): boolean {
  const s = row.review.status;
  return s === 'unreviewed' || s === 'invalid' || s === 'unverified';
}

function useKey(u: { ticket: string; ref: string; oldSha: string; newSha: string }): string {
  return `${u.ticket} ${u.ref} ${u.oldSha}..${u.newSha}`;
}

function inc(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

/** Rows that are made on demand, in report order (each iteration makes them afresh). */
export interface RowList extends Iterable<AuditRow> {
  readonly length: number;
}

/**
 * A report whose rows are not held: each is made from its event when iterated, so the CLI
 * writes 100,000 rows without keeping them (DESIGN §9: < 200 MiB). The data must not change
 * while the view is used. An AuditReport is a ReportView (an array is a RowList).
 */
export interface ReportView extends Omit<AuditReport, 'rows'> {
  readonly rows: RowList;
}

/** Joins what the source read into report rows, applies the filters and counts the summary. */
export function buildReport(data: AuditData, opts: ReportOptions): AuditReport {
  const view = planReport(data, opts);
  return { ...view, rows: [...view.rows] };
}

/**
 * buildReport without holding the rows: the kept events are chosen, ordered and counted here
 * (cheap facts only), and each row is made when the view's rows are iterated.
 */
export function planReport(data: AuditData, opts: ReportOptions): ReportView {
  const now = opts.now;
  const events = data.events;
  const usesByKey = new Map<string, UseRecord>();
  for (const u of data.uses) usesByKey.set(useKey(u), u);
  const matchedUses = new Set<string>();
  const filterReview = !!opts.unreviewed || opts.olderThanMs !== undefined;

  const keep = (kind: AuditRow['kind'], ticket: string | null, ref: string, t: number) =>
    (opts.since === undefined || t >= opts.since) &&
    (opts.until === undefined || t < opts.until) &&
    (opts.ticket === undefined || ticket === opts.ticket) &&
    (!opts.refFilter || opts.refFilter(ref)) &&
    (kind === 'breakglass' || opts.ticket === undefined);
  // The review as the summary and the --unreviewed filter see it (reviewOf's status, outcome
  // and waiting time, without making the review object).
  const keepReview = (review: ReviewCount, t: number) =>
    !filterReview ||
    (awaitsReview({ review }) &&
      (opts.olderThanMs === undefined || Math.max(0, now - t) > opts.olderThanMs));

  // Row k: k < events.length is that event, the others are use records without a note.
  const kept: number[] = [];
  const times: number[] = [];
  const ids: string[] = [];
  // What the summary counts, per kept row, read in report order: kept apart from the events
  // (shared values, a pointer each) so that counting touches no event again.
  const counted: {
    kinds: AuditRow['kind'][];
    reviews: ReviewCount[];
    refs: string[];
    requesters: (string | null)[];
    actions: (readonly string[])[];
  } = { kinds: [], reviews: [], refs: [], requesters: [], actions: [] };
  const countRow = (f: EventFacts, ticketId: string | null, review: ReviewCount) => {
    counted.kinds.push(f.kind);
    counted.reviews.push(review);
    counted.refs.push(f.ref);
    counted.requesters.push(
      f.requester ?? (ticketId !== null ? (data.tickets.get(ticketId)?.requester ?? null) : null),
    );
    counted.actions.push(f.actions);
  };
  const eventKeys: (string | null)[] = [];
  for (let k = 0; k < events.length; k++) {
    const noted = events[k]!;
    // Only uses without a note are joined here (the source matched the others): usually none.
    // Then the whole event is needed; else its facts are (cheaper from a packed event).
    const whole = usesByKey.size > 0 || !noted.facts || noted.id === undefined;
    const e: EventFacts = whole ? factsOf(noted.event) : noted.facts!();
    const ticketId = e.kind === 'breakglass' ? (e.ticketId ?? null) : null;
    if (usesByKey.size > 0) {
      const ev = noted.event;
      const key = ticketId
        ? useKey({ ticket: ticketId, ref: ev.ref, oldSha: ev.oldSha, newSha: ev.newSha })
        : null;
      eventKeys.push(key);
      if (key && usesByKey.has(key)) matchedUses.add(key);
    }
    const t = timeMs(e.recordedAt);
    if (!keep(e.kind, ticketId, e.ref, t)) continue;
    const review = reviewCountOf(e.kind, ticketId, t, data.reviews);
    if (!keepReview(review, t)) continue;
    kept.push(k);
    times.push(t);
    ids.push(noted.id ?? rowId(noted.event));
    countRow(e, ticketId, review);
  }
  // A use record without any note is still an emergency access: list it, flagged.
  const orphans: UseRecord[] = [];
  for (const u of data.uses) {
    const key = useKey(u);
    if (matchedUses.has(key)) continue;
    matchedUses.add(key);
    const t = timeMs(u.recordedAt);
    if (!keep('breakglass', u.ticket, u.ref, t)) continue;
    const review = reviewCountOf('breakglass', u.ticket, t, data.reviews);
    if (!keepReview(review, t)) continue;
    kept.push(events.length + orphans.length);
    orphans.push(u);
    times.push(t);
    ids.push(rowId({ kind: 'breakglass', ticketId: u.ticket, ...u }));
    const f: EventFacts = {
      kind: 'breakglass',
      ticketId: u.ticket,
      ref: u.ref,
      actions: u.actions,
      requester: undefined,
      recordedAt: u.recordedAt,
    };
    countRow(f, u.ticket, review);
  }

  const order = reportOrder(times, ids);

  const row = (pos: number): AuditRow => {
    const k = kept[pos]!;
    const t = times[pos]!;
    const id = ids[pos]!;
    if (k < events.length) {
      const noted = events[k]!;
      const { useRecord, hasTicket } = noted;
      const { event, commits } = noted.unpack ? noted.unpack() : noted;
      const key = eventKeys.length ? eventKeys[k]! : null;
      return eventRow(
        data,
        event,
        commits,
        useRecord === true || (key ? usesByKey.has(key) : false),
        hasTicket,
        id,
        t,
        now,
      );
    }
    return useRow(data, orphans[k - events.length]!, id, t, now);
  };

  // The summary counts in report order (its maps list keys in the order rows first show them),
  // from the same facts the rows take.
  const s = emptySummary();
  const tally = new Tally(s);
  for (const pos of order) {
    tally.add(
      counted.kinds[pos]!,
      counted.reviews[pos]!,
      counted.refs[pos]!,
      counted.requesters[pos]!,
      counted.actions[pos]!,
    );
  }
  tally.flush();

  const rows: RowList = {
    length: order.length,
    *[Symbol.iterator]() {
      for (const pos of order) yield row(pos);
    },
  };
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    generatedAt: formatTime(now),
    repository: opts.repository ?? null,
    policySource: opts.policySource ?? null,
    period: {
      since: opts.since === undefined ? null : formatTime(opts.since),
      until: opts.until === undefined ? null : formatTime(opts.until),
    },
    filters: {
      ref: opts.refText ?? null,
      ticket: opts.ticket ?? null,
      unreviewed: filterReview,
      olderThan: opts.olderThanMs === undefined ? null : formatDuration(opts.olderThanMs),
    },
    summary: s,
    rows,
    problems: data.problems,
  };
}

/** The row of a noted event (t = its time in ms, id = its row id). */
function eventRow(
  data: AuditData,
  e: AuditEvent,
  commits: readonly string[],
  useRecord: boolean,
  hasTicket: boolean | undefined,
  id: string,
  t: number,
  now: number,
): AuditRow {
  const ticketId = e.kind === 'breakglass' ? (e.ticketId ?? null) : null;
  const ticket = ticketId ? data.tickets.get(ticketId) : undefined;
  const rev = ticketId ? data.revocations.get(ticketId) : undefined;
  // New tip first, then the rest in a stable order: the first ids shown are the most telling.
  const ids =
    commits.length < 2
      ? commits
      : [...commits].sort((a, b) =>
          a === e.newSha ? -1 : b === e.newSha ? 1 : a < b ? -1 : a > b ? 1 : 0,
        );
  return {
    id,
    kind: e.kind,
    time: e.recordedAt,
    recordedBy: e.recordedBy,
    ticket: ticketId,
    ref: e.ref,
    actions: e.actions,
    update: { old: e.oldSha, new: e.newSha },
    commits: { count: ids.length, ids },
    replacedTip: e.replacedTip ?? null,
    dropped:
      e.dropped || e.droppedCount !== undefined
        ? {
            count: Math.max(e.dropped?.length ?? 0, e.droppedCount ?? 0),
            ids: e.dropped ?? [],
          }
        : null,
    pusher: e.pusher,
    requester: e.requester
      ? e.requester
      : ticket
        ? { principal: ticket.requester, keyid: null }
        : null,
    approvers: e.approvers.length ? e.approvers : (ticket?.approvers ?? []),
    reason: e.reason ?? ticket?.reason ?? null,
    incident: e.incident ?? ticket?.incident ?? null,
    window:
      e.window ?? (ticket ? { notBefore: ticket.notBefore, expiresAt: ticket.expiresAt } : null),
    violation: e.kind === 'violation' ? (e.violation ?? null) : null,
    evidence: evidenceOf(
      true,
      useRecord,
      hasTicket ?? (ticketId ? data.ticketIds.has(ticketId) : false),
    ),
    revocation: rev
      ? { revoker: rev.revoker, revokedAt: rev.revokedAt, reason: rev.reason, valid: rev.valid }
      : null,
    review: reviewOf(e.kind, ticketId, t, data.reviews, now),
  };
}

/** The row of a use record that no note matched. */
function useRow(data: AuditData, u: UseRecord, id: string, t: number, now: number): AuditRow {
  const ticket = data.tickets.get(u.ticket);
  const rev = data.revocations.get(u.ticket);
  return {
    id,
    kind: 'breakglass',
    time: u.recordedAt,
    recordedBy: u.recordedBy,
    ticket: u.ticket,
    ref: u.ref,
    actions: u.actions,
    update: { old: u.oldSha, new: u.newSha },
    commits: { count: u.commits, ids: [] },
    replacedTip: null,
    dropped: null,
    pusher: u.pusher,
    requester: ticket ? { principal: ticket.requester, keyid: null } : null,
    approvers: ticket?.approvers ?? [],
    reason: ticket?.reason ?? null,
    incident: ticket?.incident ?? null,
    window: ticket ? { notBefore: ticket.notBefore, expiresAt: ticket.expiresAt } : null,
    violation: null,
    evidence: evidenceOf(false, true, data.ticketIds.has(u.ticket)),
    revocation: rev
      ? { revoker: rev.revoker, revokedAt: rev.revokedAt, reason: rev.reason, valid: rev.valid }
      : null,
    review: reviewOf('breakglass', u.ticket, t, data.reviews, now),
  };
}

function emptySummary(): ReportSummary {
  return {
    events: 0,
    breakglass: 0,
    violations: 0,
    reviewed: 0,
    awaitingReview: 0,
    byOutcome: {},
    byReviewStatus: {},
    byRef: {},
    byRequester: {},
    byAction: {},
  };
}

/** Counts one row into the summary (from the row's kind, review, ref, requester and actions). */
function count(
  s: ReportSummary,
  kind: AuditRow['kind'],
  review: AuditRow['review'],
  ref: string,
  requester: string | null,
  actions: readonly string[],
): void {
  s.events++;
  if (kind === 'violation') s.violations++;
  else s.breakglass++;
  if (review.status === 'reviewed') s.reviewed++;
  if (awaitsReview({ review })) s.awaitingReview++;
  inc(s.byReviewStatus, review.status);
  if (review.status === 'reviewed' && review.outcome) inc(s.byOutcome, review.outcome);
  inc(s.byRef, ref);
  inc(s.byRequester, requester ?? '(none)');
  for (const a of actions) inc(s.byAction, a);
}

/** Counts rows by kind, review outcome/status, ref, requester and action. */
export function summarize(rows: Iterable<AuditRow>): ReportSummary {
  const s = emptySummary();
  for (const r of rows)
    count(s, r.kind, r.review, r.ref, r.requester?.principal ?? null, r.actions);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Formats. Each yields text chunks so 100,000 rows stream out without one giant string.

// Rows are written field by field: 100,000 rows go out faster than through the generic
// serialiser walking each object (same bytes; a test checks rowJson(row) === JSON.stringify(row)).
// What JSON.stringify would escape: quote, backslash, control characters, and (well-formed
// JSON.stringify) lone surrogates; a string with none of them is its own JSON text in quotes.
// The check measured ~2x faster than JSON.stringify over a report's ids, times and reasons.
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function str(s: string | null): string {
  if (s === null) return 'null';
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

function strs(list: readonly string[]): string {
  return `[${list.map(str).join(',')}]`;
}

function principalJson(p: { principal: string; keyid: string | null }): string {
  return `{"principal":${str(p.principal)},"keyid":${str(p.keyid)}}`;
}

// Within one report, refs, names and approver lists repeat from row to row and are mostly the
// same objects (the source shares them): their JSON text is made once. Keyed by identity, so a
// report is serialised from objects that do not change while it is written.
type JsonCache = Map<unknown, string>;
const JSON_CACHE_MAX = 10_000;

function cachedJson<T>(cache: JsonCache | undefined, v: T, make: (v: T) => string): string {
  if (!cache) return make(v);
  let text = cache.get(v);
  if (text === undefined) {
    if (cache.size >= JSON_CACHE_MAX) cache.clear();
    text = make(v);
    cache.set(v, text);
  }
  return text;
}

function approversJson(list: AuditRow['approvers']): string {
  return `[${list.map(principalJson).join(',')}]`;
}

/** One row as JSON, field order as in AuditRow (same output as JSON.stringify(row)). */
export function rowJson(r: AuditRow, cache?: JsonCache): string {
  const rv = r.review;
  const rev = r.revocation;
  return (
    `{"id":${str(r.id)},"kind":${str(r.kind)},"time":${str(r.time)},"recordedBy":${cachedJson(cache, r.recordedBy, str)},` +
    `"ticket":${str(r.ticket)},"ref":${cachedJson(cache, r.ref, str)},"actions":${cachedJson(cache, r.actions, strs)},` +
    `"update":{"old":${str(r.update.old)},"new":${str(r.update.new)}},` +
    `"commits":{"count":${r.commits.count},"ids":${strs(r.commits.ids)}},` +
    `"replacedTip":${str(r.replacedTip)},` +
    `"dropped":${r.dropped ? `{"count":${r.dropped.count},"ids":${strs(r.dropped.ids)}}` : 'null'},` +
    `"pusher":${cachedJson(cache, r.pusher, str)},"requester":${r.requester ? cachedJson(cache, r.requester, principalJson) : 'null'},` +
    `"approvers":${cachedJson(cache, r.approvers, approversJson)},` +
    `"reason":${str(r.reason)},"incident":${str(r.incident)},` +
    `"window":${r.window ? `{"notBefore":${str(r.window.notBefore)},"expiresAt":${str(r.window.expiresAt)}}` : 'null'},` +
    `"violation":${str(r.violation)},` +
    `"evidence":{"note":${r.evidence.note},"useRecord":${r.evidence.useRecord},"ticket":${r.evidence.ticket}},` +
    `"revocation":${rev ? `{"revoker":${str(rev.revoker)},"revokedAt":${str(rev.revokedAt)},"reason":${str(rev.reason)},"valid":${rev.valid}}` : 'null'},` +
    `"review":{"status":${str(rv.status)},"outcome":${str(rv.outcome)},"reviewer":${str(rv.reviewer)},` +
    `"reviewedAt":${str(rv.reviewedAt)},"note":${str(rv.note)},"error":${str(rv.error)},"waitingMs":${rv.waitingMs}}}`
  );
}

/** The stable JSON document (docs/audit-format.md), streamed: header, one row per line, footer. */
export function* formatJson(report: ReportView): Generator<string> {
  const { rows, problems, ...head } = report;
  const headText = JSON.stringify(head);
  const cache: JsonCache = new Map();
  let chunk = headText.slice(0, -1) + ',"rows":[';
  let first = true;
  for (const row of rows) {
    chunk += (first ? '\n' : ',\n') + rowJson(row, cache);
    first = false;
    if (chunk.length > 65536) {
      yield chunk;
      chunk = '';
    }
  }
  yield chunk + (first ? '' : '\n') + '],"problems":' + JSON.stringify(problems) + '}\n';
}

/** CSV column order (a contract too: new columns are appended). */
export const CSV_COLUMNS = [
  'id',
  'kind',
  'time',
  'ticket',
  'ref',
  'actions',
  'old',
  'new',
  'commit_count',
  'commits',
  'pusher',
  'requester',
  'requester_keyid',
  'approvers',
  'reason',
  'incident',
  'window_start',
  'window_end',
  'recorded_by',
  'violation',
  'note_recorded',
  'use_recorded',
  'revoked_by',
  'revoked_at',
  'review_status',
  'review_outcome',
  'reviewer',
  'reviewed_at',
  'review_note',
] as const;

/**
 * One RFC 4180 field: quoted when it holds a quote, comma, CR or LF (quotes doubled). A field
 * that a spreadsheet would run as a formula (= + - @ TAB CR first) gets a leading `'`: reasons
 * and refs come from pushers, and the report is opened by auditors.
 */
export function csvField(value: string | number | boolean | null): string {
  let s = value === null ? '' : String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvRow(r: AuditRow): (string | number | boolean | null)[] {
  return [
    r.id,
    r.kind,
    r.time,
    r.ticket,
    r.ref,
    r.actions.join(' '),
    r.update.old,
    r.update.new,
    r.commits.count,
    r.commits.ids.join(' '),
    r.pusher,
    r.requester?.principal ?? null,
    r.requester?.keyid ?? null,
    r.approvers.map((a) => a.principal).join(' '),
    r.reason,
    r.incident,
    r.window?.notBefore ?? null,
    r.window?.expiresAt ?? null,
    r.recordedBy,
    r.violation,
    r.evidence.note,
    r.evidence.useRecord,
    r.revocation?.revoker ?? null,
    r.revocation?.revokedAt ?? null,
    r.review.status,
    r.review.outcome,
    r.review.reviewer,
    r.review.reviewedAt,
    r.review.note,
  ];
}

/** RFC 4180 CSV: header line, one record per row, CRLF line breaks. */
export function* formatCsv(report: ReportView): Generator<string> {
  yield CSV_COLUMNS.join(',') + '\r\n';
  let chunk = '';
  for (const r of report.rows) {
    chunk += csvRow(r).map(csvField).join(',') + '\r\n';
    if (chunk.length > 65536) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}

// Terminal-safe: a value from a note can't move the cursor or recolour the screen.
function plain(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/g, '?');
}

function cut(s: string, n: number): string {
  const p = plain(s);
  return p.length > n ? p.slice(0, n - 1) + '…' : p;
}

function short(sha: string): string {
  return sha.slice(0, 10);
}

function reviewCell(r: AuditRow): string {
  const rv = r.review;
  if (rv.status === 'reviewed') return `${rv.outcome} (${rv.reviewer})`;
  if (rv.status === 'not-applicable') return '-';
  if (rv.status === 'unreviewed') return `unreviewed ${formatDuration(rv.waitingMs ?? 0)}`;
  return `${rv.status} (${rv.reviewer ?? '?'})`;
}

function commitsCell(r: AuditRow): string {
  const ids = r.commits.ids.slice(0, 2).map(short).join(' ');
  return `${r.commits.count}${ids ? ` ${ids}` : ''}${r.commits.count > 2 ? ' …' : ''}`;
}

/** A fixed-width table for a terminal (values made safe to print). */
export function* formatTable(report: ReportView): Generator<string> {
  const head = [
    'TIME',
    'REF',
    'ACTION',
    'COMMITS',
    'PUSHER',
    'REQUESTER',
    'APPROVERS',
    'TICKET',
    'REVIEW',
    'REASON',
  ];
  const cells = Array.from(report.rows, (r) => [
    r.time,
    cut(r.ref.replace(/^refs\/heads\//, ''), 30),
    r.kind === 'violation' ? `VIOLATION ${r.actions.join(',')}` : r.actions.join(','),
    commitsCell(r),
    cut(r.pusher, 16),
    cut(r.requester?.principal ?? '-', 16),
    cut(r.approvers.map((a) => a.principal).join(',') || '-', 24),
    r.ticket ?? '-',
    cut(reviewCell(r), 32),
    cut(r.violation ?? r.reason ?? '', 48),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd() + '\n';
  yield line(head);
  for (const c of cells) yield line(c);
  const s = report.summary;
  yield (
    `\n${s.events} event(s): ${s.breakglass} break-glass, ${s.violations} violation(s); ` +
    `${s.reviewed} reviewed, ${s.awaitingReview} awaiting review` +
    (report.problems.length ? `; ${report.problems.length} problem(s) reading records` : '') +
    '\n'
  );
}

// Markdown: values are escaped so a reason can't inject links, HTML or table breaks.
function md(s: string | null | undefined): string {
  if (s === null || s === undefined || s === '') return '—';
  return plain(s)
    .replace(/[\\`*_{}[\]()#+!|<>~]/g, (c) => `\\${c}`)
    .replace(/^-/, '\\-');
}

function mdCode(s: string): string {
  return '`' + plain(s).replace(/`/g, "'") + '`';
}

function countsTable(title: string, counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  if (!entries.length) return `**${title}:** none\n\n`;
  return (
    `| ${title} | events |\n| --- | ---: |\n` +
    entries.map(([k, v]) => `| ${md(k)} | ${v} |`).join('\n') +
    '\n\n'
  );
}

/**
 * An evidence report for an auditor: scope, summary counts, every event in detail, the events
 * still awaiting review, problems found, and how this maps to SOC 2 and ISO 27001 controls.
 */
export function* formatMarkdown(report: ReportView): Generator<string> {
  const s = report.summary;
  const period = `${report.period.since ?? 'the first record'} to ${report.period.until ?? report.generatedAt}`;
  yield `# Break-glass access evidence report\n\n`;
  yield (
    `| | |\n| --- | --- |\n` +
    `| Repository | ${md(report.repository ?? '(not named)')} |\n` +
    `| Period | ${md(period)} |\n` +
    `| Generated | ${report.generatedAt} |\n` +
    `| Policy used to verify reviews | ${md(report.policySource ?? 'none found: reviews not verified')} |\n` +
    `| Filters | ${md(
      [
        report.filters.ref && `ref ${report.filters.ref}`,
        report.filters.ticket && `ticket ${report.filters.ticket}`,
        report.filters.unreviewed && 'awaiting review only',
        report.filters.olderThan && `waiting longer than ${report.filters.olderThan}`,
      ]
        .filter(Boolean)
        .join(', ') || 'none',
    )} |\n` +
    `| Report schema | git-breakglass audit v${report.schemaVersion} |\n\n`
  );

  yield `## Summary\n\n`;
  yield (
    `- Events: **${s.events}** (${s.breakglass} break-glass uses, ${s.violations} unticketed bypasses recorded as violations)\n` +
    `- Reviewed: **${s.reviewed}**; awaiting review: **${s.awaitingReview}**\n` +
    `- Problems reading records: **${report.problems.length}**\n\n`
  );
  yield countsTable('Review outcome', s.byOutcome);
  yield countsTable('Review status', s.byReviewStatus);
  yield countsTable('Ref', s.byRef);
  yield countsTable('Requester', s.byRequester);

  yield `## Events\n\n`;
  if (!report.rows.length) yield `No events in this period.\n\n`;
  for (const r of report.rows) {
    const title =
      r.kind === 'violation'
        ? `Violation on ${mdCode(r.ref)} at ${r.time}`
        : `Ticket ${mdCode(r.ticket ?? '?')} on ${mdCode(r.ref)} at ${r.time}`;
    let out = `### ${title}\n\n`;
    const f = (k: string, v: string) => (out += `- **${k}:** ${v}\n`);
    f('Event id', mdCode(r.id));
    if (r.violation !== null) f('Violation', md(r.violation));
    f('Action', md(r.actions.join(', ')));
    f('Update', `${mdCode(short(r.update.old))}..${mdCode(short(r.update.new))}`);
    f(
      'Commits',
      `${r.commits.count}` +
        (r.commits.ids.length
          ? `: ${r.commits.ids
              .slice(0, 20)
              .map((c) => mdCode(short(c)))
              .join(
                ', ',
              )}${r.commits.ids.length > 20 ? `, … ${r.commits.ids.length - 20} more` : ''}`
          : ''),
    );
    if (r.replacedTip) f('Replaced tip (force push)', mdCode(r.replacedTip));
    if (r.dropped) f('Commits dropped', String(r.dropped.count));
    f('Pushed by', md(r.pusher));
    f(
      'Requested by',
      r.requester
        ? `${md(r.requester.principal)}${r.requester.keyid ? ` (${mdCode(r.requester.keyid)})` : ''}`
        : '—',
    );
    f(
      'Approved by',
      r.approvers.length
        ? r.approvers.map((a) => `${md(a.principal)} (${mdCode(a.keyid)})`).join(', ')
        : '—',
    );
    f('Reason', md(r.reason));
    f('Incident', md(r.incident));
    f('Access window', r.window ? `${r.window.notBefore} to ${r.window.expiresAt}` : '—');
    f('Recorded by', md(r.recordedBy));
    f(
      'Evidence',
      [
        r.evidence.note ? 'audit note' : 'NO audit note',
        r.evidence.useRecord ? 'use record' : 'no use record',
        r.evidence.ticket ? 'ticket' : 'ticket not found',
      ].join(', '),
    );
    if (r.revocation) {
      f(
        'Revoked',
        `${r.revocation.revokedAt} by ${md(r.revocation.revoker)}: ${md(r.revocation.reason)}`,
      );
    }
    const rv = r.review;
    f(
      'Review',
      rv.status === 'reviewed'
        ? `**${rv.outcome}** by ${md(rv.reviewer)} at ${rv.reviewedAt}: ${md(rv.note)}`
        : rv.status === 'not-applicable'
          ? 'not applicable (no ticket); handle through the incident process'
          : rv.status === 'unreviewed'
            ? `**awaiting review** for ${formatDuration(rv.waitingMs ?? 0)}`
            : `**${rv.status}** review by ${md(rv.reviewer)}${rv.error ? `: ${md(rv.error)}` : ''}`,
    );
    yield out + '\n';
  }

  yield `## Awaiting review\n\n`;
  // The summary counted them already; the rows are made again (not held) to list them.
  if (!report.summary.awaitingReview) yield `Every event in this report has a valid review.\n\n`;
  else {
    yield `| Time | Ticket | Ref | Requester | Waiting | Status |\n| --- | --- | --- | --- | --- | --- |\n`;
    for (const r of report.rows) {
      if (!awaitsReview(r)) continue;
      yield `| ${r.time} | ${mdCode(r.ticket ?? '-')} | ${mdCode(r.ref)} | ${md(r.requester?.principal)} | ${formatDuration(r.review.waitingMs ?? 0)} | ${r.review.status} |\n`;
    }
    yield '\n';
  }

  if (report.problems.length) {
    yield `## Problems found while reading the records\n\n`;
    for (const p of report.problems.slice(0, 1000)) {
      yield `- ${p.kind} ${mdCode(p.where)}: ${md(p.message)}\n`;
    }
    if (report.problems.length > 1000) yield `- … ${report.problems.length - 1000} more\n`;
    yield '\n';
  }

  yield (
    `## Control mapping\n\n` +
    `How this evidence relates to common controls (for the auditor's working papers; the ` +
    `organisation's own control descriptions govern):\n\n` +
    `| Control | What this report shows |\n| --- | --- |\n` +
    `| SOC 2 CC6.1, CC6.2, CC6.3 (logical access: authorisation, provisioning, removal) | Every emergency access names its requester, its approvers (signatures verified by the server at push time), its scope and its access window; access ends at the window's end or on revocation. |\n` +
    `| SOC 2 CC7.2, CC7.3 (monitoring, evaluation of security events) | Each use and each unticketed bypass is recorded on the affected commits, and each use is reviewed after the fact with a signed outcome. |\n` +
    `| SOC 2 CC8.1 (change management) | The commits each emergency change brought in are listed, with the reason and incident, so they can be traced to a change record. |\n` +
    `| ISO/IEC 27001:2022 A.5.18 (access rights) | Emergency access rights are granted per request, approved by a second person, time-limited and revocable. |\n` +
    `| ISO/IEC 27001:2022 A.8.2 (privileged access rights) | Bypassing branch protection is a privileged action, allowed only with a signed, approved, short-lived ticket. |\n` +
    `| ISO/IEC 27001:2022 A.8.15 (logging) | Audit notes, use records, revocations and reviews are stored in the repository itself, written only by the server or the CI action, and signed where a person acts. |\n\n` +
    `Integrity: notes live on \`refs/notes/breakglass\`, uses on \`refs/breakglass/consumed/*\`, ` +
    `reviews on \`refs/breakglass/reviews/*\`; the server hook refuses rewrites of these refs. ` +
    `Re-run \`bg-sign audit --format json\` on a fresh clone to reproduce this report.\n`
  );
}

/** The report in the chosen format, as chunks. */
export function formatReport(
  report: ReportView,
  format: 'table' | 'json' | 'csv' | 'md',
): Generator<string> {
  switch (format) {
    case 'json':
      return formatJson(report);
    case 'csv':
      return formatCsv(report);
    case 'md':
      return formatMarkdown(report);
    default:
      return formatTable(report);
  }
}
