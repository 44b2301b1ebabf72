import type { Candidate } from '../engine/decide.ts';
import type { Pusher } from '../engine/evaluate.ts';
import { isBreakglassError } from '../errors.ts';
import { gitText, type CatFileBatch, type GitContext } from '../git/git.ts';
import { readEnvelopeAt, REFS } from '../git/store.ts';
import type { Policy } from '../policy/policy.ts';
import { TICKET_ID } from '../ticket/payload.ts';
import { verifyRevocation } from '../ticket/revocation.ts';
import { verifyTicketEnvelope, type VerifiedTicket } from '../ticket/verify.ts';
import { countReservations } from './journal.ts';
import type { UpdateLine } from './push-input.ts';
import { ticketIdTime } from './ticket-time.ts';

/** Recent tickets read when looking for the pusher's own; more than this are not auto-found. */
export const MAX_HELD_SCAN = 64;

export interface CandidateInput {
  readonly ctx: GitContext & { gitDir: string };
  readonly reader: CatFileBatch;
  readonly policy: Policy;
  readonly pusher: Pusher;
  readonly now: number;
  /** Ids named with `-o breakglass=<id>`; when present, only these are considered. */
  readonly optionIds: readonly string[];
  /** Every update of this push by ref (tickets and revocations pushed alongside are read there). */
  readonly pushed: ReadonlyMap<string, UpdateLine>;
  /** Tickets created or approved in this push that passed the namespace guard. */
  readonly pushedTickets: ReadonlyMap<string, VerifiedTicket>;
}

export interface CandidateResult {
  readonly candidates: Candidate[];
  /** Things worth telling the pusher that did not decide anything (an invalid revocation). */
  readonly warnings: string[];
}

function failure(id: string, e: unknown): Candidate {
  if (isBreakglassError(e)) return { id, error: { code: e.code, rule: 'A', message: e.message } };
  throw e;
}

/**
 * Number of uses recorded on `refs/breakglass/consumed/<id>` (one commit per use), counted up to
 * `limit + 1` by walking the chain with the push's one object reader: no git process per
 * candidate ticket, so a pusher holding a hundred used tickets costs what one does.
 */
async function recordedUses(input: CandidateInput, id: string, limit: number): Promise<number> {
  let next: string | undefined = (await input.reader.read(REFS.consumed + id))?.sha;
  let n = 0;
  while (next && n <= limit) {
    const o = await input.reader.read(next);
    if (o?.type !== 'commit') break;
    n++;
    const text = o.data.toString('latin1');
    const headers = text.slice(0, Math.max(0, text.indexOf('\n\n')));
    next = /^parent ([0-9a-f]{40,64})$/m.exec(headers)?.[1];
  }
  return n;
}

/** Revoked (T12) when a revocation that verifies exists; an invalid one is ignored and reported. */
async function isRevoked(
  input: CandidateInput,
  ticket: VerifiedTicket,
  warnings: string[],
): Promise<boolean> {
  const id = ticket.payload.id;
  const ref = REFS.revoked + id;
  const rev = input.pushed.get(ref)?.newSha ?? ref;
  if (!(await input.reader.read(rev))) return false;
  try {
    const env = await readEnvelopeAt(input.reader, 'revoked', rev, `revocation ${id}`);
    verifyRevocation(env, ticket, input.policy);
    return true;
  } catch (e) {
    if (!isBreakglassError(e)) throw e;
    warnings.push(`ignoring the revocation of ${id}: ${e.message}`);
    return false;
  }
}

/** Reads and verifies one ticket (as pushed alongside, else as stored) with its state. */
async function loadCandidate(
  input: CandidateInput,
  id: string,
  known: VerifiedTicket | undefined,
  warnings: string[],
): Promise<Candidate> {
  try {
    let ticket = known;
    if (!ticket) {
      const ref = REFS.tickets + id;
      const rev = input.pushed.get(ref)?.newSha ?? ref;
      const env = await readEnvelopeAt(input.reader, 'tickets', rev, `ticket ${id}`);
      ticket = verifyTicketEnvelope(env, input.policy.keyOwners);
    }
    // A ticket counts under its own id only: a copy under another ref name would otherwise get
    // fresh uses and escape its revocation.
    if (ticket.payload.id !== id) {
      return {
        id,
        error: {
          code: 'TICKET_REF_INVALID',
          rule: 'T13',
          message: `ref ${REFS.tickets}${id} holds ticket ${ticket.payload.id}`,
        },
      };
    }
    const [revoked, recorded, reserved] = await Promise.all([
      isRevoked(input, ticket, warnings),
      recordedUses(input, id, ticket.payload.maxUses),
      countReservations(input.ctx.gitDir, id, ticket.payload.maxUses),
    ]);
    // Reservations stay as markers after a use is recorded, so the larger count is the truth.
    return { id, ticket, state: { revoked, usesConsumed: Math.max(recorded, reserved) } };
  } catch (e) {
    return failure(id, e);
  }
}

/**
 * Ids of recent tickets, newest first. Ticket ids start with their creation time, so a ticket
 * created more than maxTtl + clockSkew ago can't be valid now and is skipped unread: thousands
 * of old tickets cost one `for-each-ref` line each.
 */
async function recentTicketIds(input: CandidateInput): Promise<string[]> {
  const out = await gitText(input.ctx, [
    'for-each-ref',
    '--format=%(refname:lstrip=3)',
    REFS.tickets,
  ]);
  const oldest = input.now - input.policy.tickets.maxTtlMs - input.policy.tickets.clockSkewMs;
  return (out ? out.split('\n') : [])
    .filter((id) => TICKET_ID.test(id) && ticketIdTime(id) >= oldest)
    .sort()
    .reverse()
    .slice(0, MAX_HELD_SCAN);
}

// TM7: candidates carry their use count (consumed/ or reservations, the larger) and revocation.
/**
 * Candidate tickets for a push (DESIGN §6): the ones named with `-o breakglass=<id>` if any;
 * otherwise tickets pushed in this same push and recent tickets whose holder is the pusher.
 */
export async function gatherCandidates(input: CandidateInput): Promise<CandidateResult> {
  const warnings: string[] = [];
  const ids: string[] = [];
  const known = new Map(input.pushedTickets);
  if (input.optionIds.length) {
    ids.push(...input.optionIds);
  } else {
    ids.push(...input.pushedTickets.keys());
    const { pusher } = input;
    if (pusher.known && pusher.principal) {
      for (const id of await recentTicketIds(input)) {
        if (ids.includes(id)) continue;
        try {
          const env = await readEnvelopeAt(input.reader, 'tickets', REFS.tickets + id, id);
          const t = verifyTicketEnvelope(env, input.policy.keyOwners);
          // Only live tickets of this pusher; expired ones would just clutter the answer.
          const p = t.payload;
          if (p.holder === pusher.principal && p.id === id && input.now < p.times.expiresAt) {
            ids.push(id);
            known.set(id, t);
          }
        } catch (e) {
          if (!isBreakglassError(e)) throw e; // someone else's broken ticket: not a candidate
        }
      }
    }
  }
  const candidates: Candidate[] = [];
  for (const id of ids) candidates.push(await loadCandidate(input, id, known.get(id), warnings));
  return { candidates, warnings };
}
