import type { UseRecord } from './consumed.ts';
import type { NotedEvent, RevocationFacts } from './report.ts';
import type { ReviewOutcome } from './review.ts';

/**
 * The life of one ticket for `bg-sign log ID` (issue 5): requested, each approval with its
 * signer, each use with its commits, revocation, expiry, reviews. Pure: the source reads git.
 */

export type TimelineKind =
  'requested' | 'approved' | 'signed' | 'used' | 'revoked' | 'expired' | 'expires' | 'reviewed';

export interface TimelineEntry {
  readonly time: string;
  readonly kind: TimelineKind;
  /** Principal who acted (null when unknown, e.g. a signature under no policy key). */
  readonly actor: string | null;
  readonly keyid: string | null;
  readonly detail: string;
  readonly ref?: string;
  readonly update?: { readonly old: string; readonly new: string };
  readonly commits?: readonly string[];
  /**
   * Where the time comes from: `signed` (inside a signed payload), `recorded` (written by the
   * server), `commit` (committer time of the ref commit, as claimed by whoever made it).
   */
  readonly timeSource: 'signed' | 'recorded' | 'commit';
  /** False for a record that failed verification (shown, never trusted). */
  readonly valid: boolean | null;
}

/** A signature added by one commit of the ticket chain. */
export interface ApprovalStep {
  /** Committer time of the commit that added it (epoch ms). */
  readonly at: number;
  readonly principal: string | null;
  readonly keyid: string;
}

/** One review on the chain `refs/breakglass/reviews/<id>`, oldest first. */
export interface ReviewStep {
  readonly reviewer: string;
  readonly keyid: string | null;
  readonly outcome: ReviewOutcome | string;
  readonly note: string;
  readonly reviewedAt: string;
  readonly valid: boolean | null;
  readonly error?: string | undefined;
}

export interface TimelineInput {
  readonly id: string;
  readonly requester: string;
  readonly holder: string;
  readonly reason: string;
  readonly incident?: string | undefined;
  readonly refs: readonly string[];
  readonly actions: readonly string[];
  readonly issuedAt: string;
  readonly notBefore: string;
  readonly expiresAt: string;
  readonly maxUses: number;
  /** Signatures in the order the chain added them; the first is the requester's. */
  readonly signatures: readonly ApprovalStep[];
  readonly events: readonly NotedEvent[];
  readonly uses: readonly UseRecord[];
  readonly revocation: RevocationFacts | null;
  readonly reviews: readonly ReviewStep[];
  readonly now: number;
}

export interface TicketTimeline {
  readonly schemaVersion: 1;
  readonly ticket: string;
  readonly requester: string;
  readonly holder: string;
  readonly reason: string;
  readonly incident: string | null;
  readonly scope: { readonly refs: readonly string[]; readonly actions: readonly string[] };
  readonly window: { readonly notBefore: string; readonly expiresAt: string };
  readonly uses: number;
  readonly maxUses: number;
  readonly entries: readonly TimelineEntry[];
}

function iso(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** Builds the ordered timeline of one ticket. */
export function buildTimeline(t: TimelineInput): TicketTimeline {
  const entries: TimelineEntry[] = [];
  entries.push({
    time: t.issuedAt,
    kind: 'requested',
    actor: t.requester,
    keyid: t.signatures[0]?.keyid ?? null,
    detail: `requested ${t.actions.join(', ')} on ${t.refs.join(', ')} for ${t.holder}: ${t.reason}`,
    timeSource: 'signed',
    valid: null,
  });
  for (const s of t.signatures.slice(1)) {
    const known = s.principal !== null;
    entries.push({
      time: iso(s.at),
      kind: known && s.principal !== t.requester ? 'approved' : 'signed',
      actor: s.principal,
      keyid: s.keyid,
      detail: known
        ? s.principal === t.requester
          ? 'signed again by the requester (does not count as an approval)'
          : `approval by ${s.principal}`
        : 'signature under no key in the policy (does not count)',
      timeSource: 'commit',
      valid: known,
    });
  }

  // Uses: from the notes (with commits), completed by use records without a note.
  const seen = new Set<string>();
  for (const { event: e, commits } of t.events) {
    const key = `${e.ref} ${e.oldSha}..${e.newSha}`;
    seen.add(key);
    entries.push({
      time: e.recordedAt,
      kind: 'used',
      actor: e.pusher,
      keyid: null,
      detail: `${e.actions.join(', ')} on ${e.ref} by ${e.pusher}, ${commits.length} commit(s) annotated (${e.recordedBy})`,
      ref: e.ref,
      update: { old: e.oldSha, new: e.newSha },
      commits,
      timeSource: 'recorded',
      valid: true,
    });
  }
  for (const u of t.uses) {
    const key = `${u.ref} ${u.oldSha}..${u.newSha}`;
    if (seen.has(key)) continue;
    seen.add(key);
    entries.push({
      time: u.recordedAt,
      kind: 'used',
      actor: u.pusher,
      keyid: null,
      detail: `${u.actions.join(', ')} on ${u.ref} by ${u.pusher}, ${u.commits} commit(s); use record without an audit note`,
      ref: u.ref,
      update: { old: u.oldSha, new: u.newSha },
      commits: [],
      timeSource: 'recorded',
      valid: true,
    });
  }
  if (t.revocation) {
    entries.push({
      time: t.revocation.revokedAt,
      kind: 'revoked',
      actor: t.revocation.revoker,
      keyid: null,
      detail:
        `revoked by ${t.revocation.revoker}: ${t.revocation.reason}` +
        (t.revocation.valid === false
          ? ` (INVALID: ${t.revocation.error ?? 'does not verify'})`
          : ''),
      timeSource: 'signed',
      valid: t.revocation.valid,
    });
  }
  const expiresMs = Date.parse(t.expiresAt);
  entries.push({
    time: t.expiresAt,
    kind: expiresMs <= t.now ? 'expired' : 'expires',
    actor: null,
    keyid: null,
    detail: expiresMs <= t.now ? 'window closed' : 'window closes',
    timeSource: 'signed',
    valid: null,
  });
  for (const r of t.reviews) {
    entries.push({
      time: r.reviewedAt,
      kind: 'reviewed',
      actor: r.reviewer,
      keyid: r.keyid,
      detail:
        `${r.outcome} (${r.reviewer}): ${r.note}` +
        (r.valid === false ? ` (INVALID: ${r.error ?? 'does not verify'})` : '') +
        (r.valid === null ? ' (not verified: no policy)' : ''),
      timeSource: 'signed',
      valid: r.valid,
    });
  }
  // Stable sort by time; entries of equal time keep the order above (request before approvals).
  const order = entries.map((e, i) => ({ e, i }));
  order.sort((a, b) => (a.e.time < b.e.time ? -1 : a.e.time > b.e.time ? 1 : a.i - b.i));
  return {
    schemaVersion: 1,
    ticket: t.id,
    requester: t.requester,
    holder: t.holder,
    reason: t.reason,
    incident: t.incident ?? null,
    scope: { refs: t.refs, actions: t.actions },
    window: { notBefore: t.notBefore, expiresAt: t.expiresAt },
    uses: seen.size,
    maxUses: t.maxUses,
    entries: order.map((o) => o.e),
  };
}

// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/** Human lines for a terminal (values from records made safe to print). */
export function formatTimeline(t: TicketTimeline): string[] {
  const safe = (s: string) => s.replace(UNSAFE, '?');
  const lines = [
    `ticket ${t.ticket}  requester ${safe(t.requester)}  holder ${safe(t.holder)}`,
    `reason ${safe(t.reason)}${t.incident ? `  incident ${safe(t.incident)}` : ''}`,
    `scope  ${t.scope.actions.join(', ')} on ${t.scope.refs.map(safe).join(', ')}`,
    `window ${t.window.notBefore} .. ${t.window.expiresAt}   uses ${t.uses} of ${t.maxUses}`,
    '',
  ];
  for (const e of t.entries) {
    lines.push(`${e.time}  ${e.kind.padEnd(9)} ${safe(e.detail)}`);
    if (e.keyid) lines.push(`${' '.repeat(32)}key ${e.keyid}`);
    if (e.commits && e.commits.length) {
      const shown = e.commits.slice(0, 10).map((c) => c.slice(0, 12));
      lines.push(
        `${' '.repeat(32)}commits ${shown.join(' ')}${e.commits.length > 10 ? ` ... ${e.commits.length - 10} more` : ''}`,
      );
    }
  }
  return lines;
}
