import type { ErrorCode } from '../errors.ts';
import { hasRole, type Policy } from '../policy/policy.ts';
import { compileRefPattern, refMatches } from '../policy/refs.ts';
import type { Action } from '../ticket/payload.ts';
import { formatTime } from '../ticket/time.ts';
import type { Signer, VerifiedTicket } from '../ticket/verify.ts';
import { formatDuration } from '../policy/duration.ts';

/** One failed rule, with the rule's number from docs/rules.md. */
export interface Failure {
  readonly code: ErrorCode;
  readonly rule: string;
  readonly message: string;
}

/** Who pushed, as far as the edge knows. */
export type Pusher =
  | { readonly known: false }
  | { readonly known: true; readonly login: string; readonly principal: string | undefined };

/** What a ticket is being asked to authorise. */
export interface UseRequest {
  readonly ref: string;
  readonly actions: readonly Action[];
  /** New tip; omitted for deletes and for checks without a commit. */
  readonly newSha?: string | undefined;
  readonly pusher: Pusher;
  /** The push certificate's verdict (PC1-PC3), when the push carried one. */
  readonly pushCert?: PushCertCheck | undefined;
}

/** Who signed the push certificate, or why it does not count (src/server/push-cert.ts). */
export type PushCertCheck =
  { readonly principal: string; readonly keyid: string } | { readonly error: string };

/** Ticket state that lives outside the envelope. */
export interface TicketState {
  readonly revoked: boolean;
  readonly usesConsumed: number;
}

/** Authority of a ticket: who signed it and whether enough of the right people did (T1-T4). */
export function evaluateSignatures(ticket: VerifiedTicket, policy: Policy): Failure[] {
  const failures: Failure[] = [];
  const p = ticket.payload;
  const signerNames = ticket.signers.map((s) => s.principal);
  // T1: the requester signed it.
  if (!policy.principals.has(p.requester)) {
    failures.push({
      code: 'PRINCIPAL_UNKNOWN',
      rule: 'T1',
      message: `requester "${p.requester}" is not a principal in the policy`,
    });
  } else if (!signerNames.includes(p.requester)) {
    failures.push({
      code: 'REQUESTER_SIGNATURE_MISSING',
      rule: 'T1',
      message: `no valid signature from the requester ${p.requester} under a key the policy lists for them`,
    });
  } else if (!hasRole(policy, p.requester, policy.tickets.requesterRoles)) {
    // T2: the requester may request.
    failures.push({
      code: 'REQUESTER_ROLE',
      rule: 'T2',
      message: `requester ${p.requester} has none of the roles ${policy.tickets.requesterRoles.join(', ')}`,
    });
  }
  // T3: enough approver principals besides the requester (separation of duties). T4: signers
  // are already distinct principals (verifySignatures), so a second key or a copied signature
  // adds nothing.
  const approvers = countedApprovers(ticket, policy);
  // S5: approvers whose signature lacks a touch of a hardware key, when the policy wants one.
  const untouched = ticket.signers
    .filter((s) => isApproverSigner(s.principal, ticket, policy) && !hasPresence(s, policy))
    .map((s) => s.principal);
  if (approvers.length < policy.tickets.approvals && untouched.length > 0) {
    failures.push({
      code: 'USER_PRESENCE_REQUIRED',
      rule: 'S5',
      message:
        `needs ${policy.tickets.approvals} approval(s) made with a hardware key (sk-) and a touch (tickets.requireUserPresence), has ${approvers.length}; ` +
        `${untouched.join(', ')} signed without user presence`,
    });
  } else if (approvers.length < policy.tickets.approvals) {
    const ignored = signerNames.filter(
      (n) => n !== p.requester && !isApproverSigner(n, ticket, policy),
    );
    const extra = [
      ignored.length ? `${ignored.join(', ')} signed without an approver role` : '',
      ticket.unverified.length
        ? `${ticket.unverified.length} signature(s) verify under no trusted key`
        : '',
    ].filter(Boolean);
    failures.push({
      code: 'APPROVALS_MISSING',
      rule: 'T3',
      message:
        `needs ${policy.tickets.approvals} approval(s) from ${policy.tickets.approverRoles.join('/')} other than the requester, has ${approvers.length}` +
        (approvers.length ? ` (${approvers.join(', ')})` : '') +
        (extra.length ? `; ${extra.join('; ')}` : ''),
    });
  }
  return failures;
}

function isApproverSigner(name: string, ticket: VerifiedTicket, policy: Policy): boolean {
  return name !== ticket.payload.requester && hasRole(policy, name, policy.tickets.approverRoles);
}

function hasPresence(s: Signer, policy: Policy): boolean {
  return !policy.tickets.requireUserPresence || s.userPresent;
}

/** The approvers whose signatures count (T3, T4, S5). */
export function countedApprovers(ticket: VerifiedTicket, policy: Policy): string[] {
  return ticket.signers
    .filter((s) => isApproverSigner(s.principal, ticket, policy) && hasPresence(s, policy))
    .map((s) => s.principal);
}

/** PC4: under `tickets.requireSignedPush` the ticket's holder signed this push's certificate. */
function evaluateSignedPush(p: { holder: string }, policy: Policy, use: UseRequest): Failure[] {
  if (!policy.tickets.requireSignedPush) return [];
  const fix =
    'sign the push with your key: git -c gpg.format=ssh -c user.signingkey=<your key> push --signed -o breakglass=<id> ...';
  const c = use.pushCert;
  if (!c) {
    return [
      {
        code: 'PUSH_CERT_REQUIRED',
        rule: 'PC4',
        message: `this policy requires break-glass pushes to be signed by the ticket's holder; ${fix}`,
      },
    ];
  }
  if ('error' in c)
    return [{ code: 'PUSH_CERT_INVALID', rule: 'PC4', message: `${c.error}; ${fix}` }];
  if (c.principal !== p.holder) {
    return [
      {
        code: 'PUSH_CERT_INVALID',
        rule: 'PC4',
        message: `the push is signed by ${c.principal} (${c.keyid}), but the ticket is held by ${p.holder}`,
      },
    ];
  }
  return [];
}

/** Time rules (T9-T11): window with clock skew at the start, hard expiry, TTL cap. */
export function evaluateTime(ticket: VerifiedTicket, policy: Policy, now: number): Failure[] {
  const failures: Failure[] = [];
  const t = ticket.payload.times;
  // Every comparison with NaN is false: without this a broken clock would mean "not expired".
  if (!Number.isFinite(now)) {
    return [
      {
        code: 'TIME_INVALID',
        rule: 'T10',
        message: 'the reference time (now) is not a valid time',
      },
    ];
  }
  // T9: not before notBefore, with the policy's clock skew (clocks on laptops drift).
  if (now < t.notBefore - policy.tickets.clockSkewMs) {
    failures.push({
      code: 'TICKET_NOT_YET_VALID',
      rule: 'T9',
      message: `ticket is valid from ${ticket.payload.notBefore} (now ${formatTime(now)})`,
    });
  }
  // T10: expiry is hard: no skew, so a ticket is dead when it says it is.
  if (now >= t.expiresAt) {
    failures.push({
      code: 'TICKET_EXPIRED',
      rule: 'T10',
      message: `ticket expired at ${ticket.payload.expiresAt} (now ${formatTime(now)})`,
    });
  }
  // T11: the whole lifetime, counted from issuedAt, is capped by the policy.
  if (t.expiresAt - t.issuedAt > policy.tickets.maxTtlMs) {
    failures.push({
      code: 'TTL_TOO_LONG',
      rule: 'T11',
      message: `ticket lifetime ${formatDuration(t.expiresAt - t.issuedAt)} is over the policy's maxTtl ${formatDuration(policy.tickets.maxTtlMs)}`,
    });
  }
  return failures;
}

/**
 * T15: the ticket asks for no more uses than the policy's `tickets.maxUses`, which is both the
 * default a request gets and the ceiling (as `maxTtl` caps the lifetime). Checked on request,
 * approval, verify and use, so lowering the ceiling also caps tickets already signed.
 */
export function evaluateUses(ticket: VerifiedTicket, policy: Policy): Failure[] {
  const { maxUses } = ticket.payload;
  // Written as "not greater than" so that a value that is not a number fails closed.
  if (!(maxUses <= policy.tickets.maxUses)) {
    return [
      {
        code: 'USES_TOO_MANY',
        rule: 'T15',
        message: `ticket allows ${maxUses} uses, over the policy's maxUses of ${policy.tickets.maxUses}`,
      },
    ];
  }
  return [];
}

/**
 * Every rule a ticket must pass to authorise one use, collected rather than stopping at the
 * first, so the pusher sees all that is wrong at once.
 */
export function evaluateTicket(
  ticket: VerifiedTicket,
  policy: Policy,
  use: UseRequest,
  state: TicketState,
  now: number,
): Failure[] {
  const p = ticket.payload;
  const failures: Failure[] = [...evaluateSignatures(ticket, policy)];
  // T5: tickets are bound to one repository.
  if (p.repository !== policy.repository) {
    failures.push({
      code: 'REPOSITORY_MISMATCH',
      rule: 'T5',
      message: `ticket is for repository "${p.repository}", this is "${policy.repository}"`,
    });
  }
  // T6: the ref is in scope.
  if (!p.scope.refs.some((r) => refMatches(compileRefPattern(r), use.ref))) {
    failures.push({
      code: 'SCOPE_REF',
      rule: 'T6',
      message: `${use.ref} is not in the ticket's refs (${p.scope.refs.join(', ')})`,
    });
  }
  // T7: every action the update performs is in scope.
  const missing = use.actions.filter((a) => !p.scope.actions.includes(a));
  if (missing.length) {
    failures.push({
      code: 'SCOPE_ACTION',
      rule: 'T7',
      message: `action ${missing.join(', ')} is not in the ticket's actions (${p.scope.actions.join(', ')})`,
    });
  }
  // T8: pinned commits: the new tip must be one of them.
  if (p.scope.commits && use.newSha !== undefined && !p.scope.commits.includes(use.newSha)) {
    failures.push({
      code: 'SCOPE_COMMIT',
      rule: 'T8',
      message: `new tip ${use.newSha.slice(0, 12)} is not one of the ticket's pinned commits (${p.scope.commits.map((c) => c.slice(0, 12)).join(', ')})`,
    });
  }
  failures.push(...evaluateTime(ticket, policy, now));
  failures.push(...evaluateUses(ticket, policy));
  // T12: not revoked.
  if (state.revoked) {
    failures.push({
      code: 'TICKET_REVOKED',
      rule: 'T12',
      message: `ticket ${p.id} has been revoked`,
    });
  }
  // T13: uses left.
  // Written as "not less than" so that a count that is not a number (a failed read) fails closed.
  if (!(state.usesConsumed < p.maxUses)) {
    failures.push({
      code: 'TICKET_USED_UP',
      rule: 'T13',
      message: `ticket ${p.id} has been used ${state.usesConsumed} of ${p.maxUses} time(s)`,
    });
  }
  // T14: the holder is the pusher, where the edge knows who pushed.
  if (use.pusher.known && use.pusher.principal !== p.holder) {
    failures.push({
      code: 'HOLDER_MISMATCH',
      rule: 'T14',
      message: `ticket is held by ${p.holder}, but the pusher is ${use.pusher.login}${use.pusher.principal ? ` (${use.pusher.principal})` : ' (no principal in the policy)'}`,
    });
  }
  failures.push(...evaluateSignedPush(p, policy, use));
  return failures;
}
