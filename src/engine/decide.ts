import type { Policy } from '../policy/policy.ts';
import { protectionFor } from '../policy/policy.ts';
import { isValidRefName } from '../policy/refs.ts';
import type { Action } from '../ticket/payload.ts';
import type { VerifiedTicket } from '../ticket/verify.ts';
import {
  evaluateTicket,
  type Failure,
  type PushCertCheck,
  type Pusher,
  type TicketState,
} from './evaluate.ts';
import { actionsOf, updateKind, type RefUpdate, type UpdateKind } from './update.ts';

/** A ticket the edge found for this push, or the reason it could not be read. */
export type Candidate =
  | { readonly id: string; readonly ticket: VerifiedTicket; readonly state: TicketState }
  | { readonly id: string; readonly error: Failure };

export type Path = 'unprotected' | 'normal' | 'breakglass' | 'rejected';

export interface UpdateDecision {
  readonly update: RefUpdate;
  readonly kind: UpdateKind;
  readonly actions: readonly Action[];
  readonly path: Path;
  /** The ticket that authorised it (path `breakglass`). */
  readonly ticketId?: string;
  /** Per examined ticket, why it did not authorise this update (path `rejected`). */
  readonly rejections: readonly {
    readonly ticketId: string | null;
    readonly failures: readonly Failure[];
  }[];
}

export interface PushDecision {
  readonly accepted: boolean;
  readonly updates: readonly UpdateDecision[];
  /**
   * Tickets that this push uses; each counts one use, however many refs it covers. Empty when
   * the push is rejected.
   */
  readonly ticketsUsed: readonly string[];
}

export interface PushInput {
  readonly policy: Policy;
  readonly updates: readonly RefUpdate[];
  readonly pusher: Pusher;
  readonly candidates: readonly Candidate[];
  readonly now: number;
  /** The push certificate's verdict, when the push was signed (PC4). */
  readonly pushCert?: PushCertCheck | undefined;
}

/** The failure for a ticket found under a ref id that is not its own (checked by decidePush). */
export function ticketIdMismatch(refId: string, ticket: VerifiedTicket): Failure {
  return {
    code: 'TICKET_REF_INVALID',
    rule: 'T13',
    message: `refs/breakglass/tickets/${refId} holds ticket ${ticket.payload.id}`,
  };
}

/** The normal path (P1): a listed pusher fast-forwarding, without touching `.breakglass/`. */
function isNormalPath(
  policy: Policy,
  u: RefUpdate,
  actions: readonly Action[],
  pusher: Pusher,
): boolean {
  const rule = protectionFor(policy, u.ref);
  if (!rule || !pusher.known || !pusher.principal) return false;
  return actions.length === 1 && actions[0] === 'push' && rule.pushers.includes(pusher.principal);
}

/**
 * Decides a whole push (pure). Unprotected refs pass; protected refs take the normal path or need
 * a candidate ticket that passes every rule for that update; one rejected update rejects the push.
 */
export function decidePush(input: PushInput): PushDecision {
  const { policy, pusher, now } = input;
  const decisions = input.updates.map((update): UpdateDecision => {
    const kind = updateKind(update);
    const actions = actionsOf(update);
    // No pattern matches a name outside our ref rules (git allows names over 255 characters), so
    // such a ref would look unprotected: refuse it instead.
    if (!isValidRefName(update.ref)) {
      const failure: Failure = {
        code: 'REF_INVALID',
        rule: 'P2',
        message: `"${update.ref.slice(0, 80)}${update.ref.length > 80 ? '...' : ''}" is not a ref name the policy can match (at most 255 characters)`,
      };
      return {
        update,
        kind,
        actions,
        path: 'rejected',
        rejections: [{ ticketId: null, failures: [failure] }],
      };
    }
    if (!protectionFor(policy, update.ref)) {
      return { update, kind, actions, path: 'unprotected', rejections: [] };
    }
    // P1: a listed pusher fast-forwarding, nothing else.
    if (isNormalPath(policy, update, actions, pusher)) {
      return { update, kind, actions, path: 'normal', rejections: [] };
    }
    // P2: anything else on a protected ref needs a ticket that passes T1-T15 for this update.
    const rejections: { ticketId: string | null; failures: Failure[] }[] = [];
    for (const c of input.candidates) {
      if ('error' in c) {
        rejections.push({ ticketId: c.id, failures: [c.error] });
        continue;
      }
      // T13: uses and revocations are recorded under the ticket's own id; a copy of a ticket
      // under another ref name would otherwise start with fresh uses and no revocation.
      if (c.ticket.payload.id !== c.id) {
        rejections.push({ ticketId: c.id, failures: [ticketIdMismatch(c.id, c.ticket)] });
        continue;
      }
      const failures = evaluateTicket(
        c.ticket,
        policy,
        {
          ref: update.ref,
          actions,
          newSha: kind === 'delete' ? undefined : update.newSha,
          pusher,
          pushCert: input.pushCert,
        },
        c.state,
        now,
      );
      if (failures.length === 0) {
        return { update, kind, actions, path: 'breakglass', ticketId: c.id, rejections: [] };
      }
      rejections.push({ ticketId: c.id, failures });
    }
    if (rejections.length === 0) {
      rejections.push({
        ticketId: null,
        failures: [
          {
            code: 'TICKET_REQUIRED',
            rule: 'P2',
            message: `${update.ref} is protected: ${actions.join(' + ')} needs a break-glass ticket covering ${actions.join(', ')}`,
          },
        ],
      });
    }
    return { update, kind, actions, path: 'rejected', rejections };
  });
  const accepted = decisions.every((d) => d.path !== 'rejected');
  // A rejected push happens not at all, so it must not spend a use of any ticket.
  const ticketsUsed = accepted
    ? [...new Set(decisions.flatMap((d) => (d.ticketId ? [d.ticketId] : [])))]
    : [];
  return {
    accepted,
    updates: decisions,
    ticketsUsed,
  };
}
