import type { Candidate } from '../../src/engine/decide.ts';
import { isBreakglassError } from '../../src/errors.ts';
import { CatFileBatch, type GitContext } from '../../src/git/git.ts';
import { countUses, listRefs, readEnvelopeAt } from '../../src/git/store.ts';
import type { Policy } from '../../src/policy/policy.ts';
import { compileRefPattern, refMatches } from '../../src/policy/refs.ts';
import type { Action } from '../../src/ticket/payload.ts';
import { TICKET_ID } from '../../src/ticket/payload.ts';
import { verifyRevocation } from '../../src/ticket/revocation.ts';
import { verifyTicketEnvelope, type VerifiedTicket } from '../../src/ticket/verify.ts';

/** Which tickets to consider for one decision. */
export interface CandidateQuery {
  /** The protected ref the ticket must name. */
  readonly ref: string;
  /** If set, the ticket's scope must include this action (the gate asks for merge-unreviewed). */
  readonly action?: Action;
  /** Ticket ids named explicitly (PR body, commit message): always examined, errors reported. */
  readonly named: readonly string[];
}

const DAY = 86_400_000;
// A repository may hold thousands of old tickets; only this many are verified per run.
const MAX_EXAMINED = 500;
const MAX_NAMED = 10;

/** Ticket ids named as `breakglass: <id>` (or `Break-glass-Ticket: <id>`) in free text. */
export function namedTicketIds(text: string): string[] {
  const ids = new Set<string>();
  const re = /\b(?:break-?glass(?:-ticket)?)\s*[:=]\s*(\d{8}T\d{6}Z-[0-9a-f]{6,32})\b/gi;
  for (const m of text.slice(0, 65_536).matchAll(re)) {
    if (ids.size >= MAX_NAMED) break;
    ids.add(m[1]!);
  }
  return [...ids];
}

function idTime(id: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(id);
  if (!m) return NaN;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}

function inScope(t: VerifiedTicket, q: CandidateQuery): boolean {
  const s = t.payload.scope;
  if (q.action && !s.actions.includes(q.action)) return false;
  return s.refs.some((r) => refMatches(compileRefPattern(r), q.ref));
}

/**
 * Finds the tickets that could authorise an update of `q.ref`, verified against the policy's
 * keys, with their revocation and use counts read from the fetched refs. Tickets named
 * explicitly always come back (as an error candidate when unreadable) so the check can say why
 * they did not count; others are skipped quietly when unreadable, out of scope or long dead.
 */
export async function loadCandidates(
  ctx: GitContext,
  policy: Policy,
  now: number,
  q: CandidateQuery,
): Promise<Candidate[]> {
  const named = new Set(q.named.filter((id) => TICKET_ID.test(id)));
  const entries = await listRefs(ctx, 'tickets');
  const revoked = new Map((await listRefs(ctx, 'revoked')).map((e) => [e.id, e.sha]));
  const byId = new Map(entries.map((e) => [e.id, e]));
  // Ticket ids start with their creation time: skip ones that can't be alive now.
  const horizon = policy.tickets.maxTtlMs + policy.tickets.clockSkewMs + DAY;
  const recent = entries
    .filter((e) => !named.has(e.id))
    .filter((e) => Math.abs(now - idTime(e.id)) <= horizon)
    .sort((a, b) => b.id.localeCompare(a.id))
    .slice(0, MAX_EXAMINED);
  const out: Candidate[] = [];
  const reader = new CatFileBatch(ctx);
  try {
    const examine = async (id: string, isNamed: boolean): Promise<void> => {
      const entry = byId.get(id);
      if (!entry) {
        if (isNamed) {
          out.push({
            id,
            error: {
              code: 'TICKET_NOT_FOUND',
              rule: 'T0',
              message: `ticket ${id} is not in refs/breakglass/tickets/ (was it pushed?)`,
            },
          });
        }
        return;
      }
      try {
        const envelope = await readEnvelopeAt(reader, 'tickets', entry.sha, `ticket ${id}`);
        const ticket = verifyTicketEnvelope(envelope, policy.keyOwners);
        if (ticket.payload.id !== id) {
          if (isNamed) {
            out.push({
              id,
              error: {
                code: 'TICKET_REF_INVALID',
                rule: 'T0',
                message: `refs/breakglass/tickets/${id} holds ticket ${ticket.payload.id}`,
              },
            });
          }
          return;
        }
        if (!isNamed && !inScope(ticket, q)) return;
        let isRevoked = false;
        const rsha = revoked.get(id);
        if (rsha) {
          try {
            const renv = await readEnvelopeAt(reader, 'revoked', rsha, `revocation of ${id}`);
            verifyRevocation(renv, ticket, policy);
            isRevoked = true;
          } catch {
            // An unsigned or foreign revocation does not revoke (anyone may create the ref).
          }
        }
        out.push({
          id,
          ticket,
          state: { revoked: isRevoked, usesConsumed: await countUses(ctx, id) },
        });
      } catch (e) {
        if (!isNamed) return;
        out.push({
          id,
          error: {
            code: isBreakglassError(e) ? e.code : 'TICKET_REF_INVALID',
            rule: 'A1',
            message: `ticket ${id}: ${(e as Error).message}`,
          },
        });
      }
    };
    for (const id of named) await examine(id, true);
    for (const e of recent) await examine(e.id, false);
  } finally {
    reader.close();
  }
  return out;
}
