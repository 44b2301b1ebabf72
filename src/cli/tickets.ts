import { BreakglassError, isBreakglassError } from '../errors.ts';
import {
  countedApprovers,
  evaluateSignatures,
  evaluateUses,
  type Failure,
} from '../engine/evaluate.ts';
import { CatFileBatch, gitText, type GitContext } from '../git/git.ts';
import { parseBreakglassRef, readEnvelopeAt, refFor, REFS, type Namespace } from '../git/store.ts';
import type { Policy } from '../policy/policy.ts';
import type { Envelope } from '../ticket/dsse.ts';
import { verifyRevocation, type RevocationPayload } from '../ticket/revocation.ts';
import { parseTime } from '../ticket/time.ts';
import { verifyTicketEnvelope, type VerifiedTicket } from '../ticket/verify.ts';

export type TicketStatus =
  'pending approval' | 'active' | 'not yet valid' | 'expired' | 'revoked' | 'used up' | 'invalid';

/** Everything the CLI shows about one ticket: the verified envelope plus its outside state. */
export interface TicketView {
  readonly id: string;
  readonly ref: string;
  /** Commit the ticket ref points to. */
  readonly sha: string;
  /** Raw envelope, when the ref holds a readable one. */
  readonly envelope?: Envelope;
  /** Set when signatures verified and the payload parsed. */
  readonly ticket?: VerifiedTicket;
  /** Why the ticket could not be read or authenticated. */
  readonly error?: BreakglassError;
  /** Signature rules (T1-T3) that fail today. */
  readonly signatureFailures: readonly Failure[];
  /** Approvers whose signatures count. */
  readonly approvers: readonly string[];
  readonly revocation: RevocationPayload | null;
  /** A revocation ref that exists but does not count, and why. */
  readonly revocationError?: string;
  readonly uses: number;
  /** Time of the most recent recorded use (committer time of the consumed tip). */
  readonly lastUseAt?: number;
  readonly status: TicketStatus;
  /** When the ticket stopped being usable (expiry, revocation, last use), if it has. */
  readonly endedAt?: number;
}

type RefMap = Map<Namespace, Map<string, { sha: string; type: string }>>;

/** Lists `refs/breakglass/*` with one for-each-ref (optionally only some ticket ids). */
export async function scanBreakglassRefs(
  ctx: GitContext,
  ids?: readonly string[],
): Promise<RefMap> {
  const patterns = ids
    ? ids.flatMap((id) => (['tickets', 'revoked', 'consumed'] as const).map((ns) => refFor(ns, id)))
    : ['refs/breakglass/'];
  const out = await gitText(ctx, [
    'for-each-ref',
    '--format=%(objectname) %(objecttype) %(refname)',
    ...patterns,
  ]);
  const map: RefMap = new Map();
  for (const line of out ? out.split('\n') : []) {
    const [sha, type, ref] = line.split(' ') as [string, string, string];
    const parsed = parseBreakglassRef(ref);
    if (!parsed) continue;
    let ns = map.get(parsed.ns);
    if (!ns) map.set(parsed.ns, (ns = new Map()));
    ns.set(parsed.id, { sha, type });
  }
  return map;
}

/** Ticket ids present locally, oldest first (ids sort by creation time). */
export function ticketIds(refs: RefMap): string[] {
  return [...(refs.get('tickets')?.keys() ?? [])].sort();
}

/**
 * Builds the view of one ticket reading objects through a shared cat-file process, so listing
 * many tickets costs one spawn. Never throws for a bad ticket: the view says what is wrong.
 */
export async function loadTicketView(
  reader: CatFileBatch,
  refs: RefMap,
  policy: Policy,
  id: string,
  now: number,
): Promise<TicketView> {
  const entry = refs.get('tickets')?.get(id);
  const ref = REFS.tickets + id;
  if (!entry) {
    throw new BreakglassError('TICKET_NOT_FOUND', `ticket ${id} not found (${ref})`, {
      hint: 'check the id, or run "bg-sign fetch" to get the tickets on the remote',
    });
  }
  const base = {
    id,
    ref,
    sha: entry.sha,
    signatureFailures: [],
    approvers: [],
    revocation: null,
    uses: 0,
  };
  let envelope: Envelope;
  try {
    envelope = await readEnvelopeAt(reader, 'tickets', entry.sha, `ticket ${id}`);
  } catch (e) {
    return { ...base, error: asCoded(e), status: 'invalid' };
  }
  let ticket: VerifiedTicket;
  try {
    ticket = verifyTicketEnvelope(envelope, policy.keyOwners);
    if (ticket.payload.id !== id) {
      throw new BreakglassError(
        'TICKET_REF_INVALID',
        `${ref} holds ticket ${ticket.payload.id}, not ${id}`,
      );
    }
  } catch (e) {
    return { ...base, envelope, error: asCoded(e), status: 'invalid' };
  }

  let revocation: RevocationPayload | null = null;
  let revocationError: string | undefined;
  const revokedEntry = refs.get('revoked')?.get(id);
  if (revokedEntry) {
    try {
      const env = await readEnvelopeAt(reader, 'revoked', revokedEntry.sha, `revocation ${id}`);
      revocation = verifyRevocation(env, ticket, policy);
    } catch (e) {
      revocationError = `${asCoded(e).code}: ${(e as Error).message}`;
    }
  }

  const consumed = refs.get('consumed')?.get(id);
  const { uses, lastUseAt } = consumed
    ? await countUsesVia(reader, consumed.sha, ticket.payload.maxUses + 1)
    : { uses: 0, lastUseAt: undefined };

  const signatureFailures = evaluateSignatures(ticket, policy);
  const approvers = countedApprovers(ticket, policy);
  const { status, endedAt } = ticketStatus(
    ticket,
    policy,
    { signatureFailures, revocation, uses, lastUseAt },
    now,
  );
  return {
    ...base,
    envelope,
    ticket,
    signatureFailures,
    approvers,
    revocation,
    ...(revocationError ? { revocationError } : {}),
    uses,
    ...(lastUseAt !== undefined ? { lastUseAt } : {}),
    status,
    ...(endedAt !== undefined ? { endedAt } : {}),
  };
}

/** Status of an authenticated ticket at `now` (revoked, used up and expired win over pending). */
export function ticketStatus(
  ticket: VerifiedTicket,
  policy: Policy,
  state: {
    signatureFailures: readonly Failure[];
    revocation: RevocationPayload | null;
    uses: number;
    lastUseAt?: number | undefined;
  },
  now: number,
): { status: TicketStatus; endedAt?: number } {
  const t = ticket.payload.times;
  if (state.revocation) {
    return {
      status: 'revoked',
      endedAt: Math.min(parseTime(state.revocation.revokedAt), t.expiresAt),
    };
  }
  if (state.uses >= ticket.payload.maxUses) {
    return { status: 'used up', endedAt: Math.min(state.lastUseAt ?? t.expiresAt, t.expiresAt) };
  }
  if (now >= t.expiresAt) return { status: 'expired', endedAt: t.expiresAt };
  if (state.signatureFailures.some((f) => f.code !== 'APPROVALS_MISSING')) {
    return { status: 'invalid' };
  }
  // T15: more uses than the policy allows can't be fixed by an approval.
  if (evaluateUses(ticket, policy).length) return { status: 'invalid' };
  if (state.signatureFailures.length) return { status: 'pending approval' };
  if (ticket.payload.repository !== policy.repository) return { status: 'invalid' };
  if (now < t.notBefore - policy.tickets.clockSkewMs) return { status: 'not yet valid' };
  return { status: 'active' };
}

/**
 * Counts uses recorded on a consumed ref by walking its commits through the shared reader
 * (one commit per use), stopping at `limit`.
 */
async function countUsesVia(
  reader: CatFileBatch,
  tip: string,
  limit: number,
): Promise<{ uses: number; lastUseAt: number | undefined }> {
  const seen = new Set<string>();
  const queue = [tip];
  let lastUseAt: number | undefined;
  while (queue.length && seen.size < limit) {
    const sha = queue.shift()!;
    if (seen.has(sha)) continue;
    const obj = await reader.read(sha);
    if (!obj || obj.type !== 'commit') break;
    seen.add(sha);
    const header = obj.data.toString('utf8', 0, Math.min(obj.data.length, 4096));
    if (sha === tip) {
      const m = /^committer .* (\d+) [+-]\d{4}$/m.exec(header);
      if (m) lastUseAt = Number(m[1]) * 1000;
    }
    for (const m of header.matchAll(/^parent ([0-9a-f]{40,64})$/gm)) queue.push(m[1]!);
  }
  return { uses: seen.size, lastUseAt };
}

/** Reads one ticket's view with a short-lived reader (for show, verify, approve, revoke). */
export async function readTicketView(
  ctx: GitContext,
  policy: Policy,
  id: string,
  now: number,
): Promise<TicketView> {
  const refs = await scanBreakglassRefs(ctx, [id]);
  const reader = new CatFileBatch(ctx);
  try {
    return await loadTicketView(reader, refs, policy, id, now);
  } finally {
    reader.close();
  }
}

/** The authenticated ticket of a view, or the error that made it unreadable. */
export function requireTicket(view: TicketView): VerifiedTicket {
  if (view.ticket) return view.ticket;
  throw view.error ?? new BreakglassError('TICKET_REF_INVALID', `ticket ${view.id} is invalid`);
}

function asCoded(e: unknown): BreakglassError {
  if (isBreakglassError(e)) return e;
  return new BreakglassError('INTERNAL', (e as Error).message ?? String(e));
}
