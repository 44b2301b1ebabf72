import { z } from 'zod';
import { BreakglassError } from '../errors.ts';
import { hasRole, type Policy } from '../policy/policy.ts';
import type { Envelope } from './dsse.ts';
import { describeZodError, PRINCIPAL_NAME, TICKET_ID } from './payload.ts';
import { createEnvelope } from './sign.ts';
import type { DocumentKey } from './keys.ts';
import { formatTime, parseTime } from './time.ts';
import { verifySignatures, type VerifiedTicket } from './verify.ts';

export const REVOCATION_PAYLOAD_TYPE = 'application/vnd.git-breakglass.revocation.v1+json';

const RevocationSchema = z.strictObject({
  type: z.literal('git-breakglass/revocation'),
  version: z.literal(1),
  ticket: z.string().regex(TICKET_ID),
  ticketDigest: z.string().regex(/^[0-9a-f]{64}$/),
  revokedAt: z.string().max(40),
  revoker: z.string().regex(PRINCIPAL_NAME),
  reason: z.string().min(1).max(1000),
});

export type RevocationPayload = z.infer<typeof RevocationSchema>;

/** Builds and signs a revocation naming the ticket by id and payload digest. */
export function createRevocation(
  ticket: VerifiedTicket,
  revoker: string,
  reason: string,
  now: number,
  key: DocumentKey,
): Envelope {
  const payload: RevocationPayload = {
    type: 'git-breakglass/revocation',
    version: 1,
    ticket: ticket.payload.id,
    ticketDigest: ticket.payloadDigest,
    revokedAt: formatTime(now),
    revoker,
    reason,
  };
  return createEnvelope(REVOCATION_PAYLOAD_TYPE, Buffer.from(JSON.stringify(payload)), key);
}

/**
 * A revocation counts when it is signed (under a trusted key) by the ticket's requester, a
 * principal with an approver role, or an admin (T12), and names this exact ticket.
 */
export function verifyRevocation(
  envelope: Envelope,
  ticket: VerifiedTicket,
  policy: Policy,
): RevocationPayload {
  if (envelope.payloadType !== REVOCATION_PAYLOAD_TYPE) {
    throw new BreakglassError(
      'REVOCATION_INVALID',
      `revocation payloadType is "${envelope.payloadType.slice(0, 80)}"`,
    );
  }
  const { signers } = verifySignatures(envelope, policy.keyOwners);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(envelope.payload));
  } catch {
    throw new BreakglassError('REVOCATION_INVALID', 'revocation payload is not valid UTF-8 JSON');
  }
  const parsed = RevocationSchema.safeParse(json);
  if (!parsed.success) {
    throw new BreakglassError('REVOCATION_INVALID', `revocation ${describeZodError(parsed.error)}`);
  }
  const r = parsed.data;
  parseTime(r.revokedAt, 'revokedAt');
  if (r.ticket !== ticket.payload.id || r.ticketDigest !== ticket.payloadDigest) {
    throw new BreakglassError(
      'REVOCATION_INVALID',
      `revocation names ticket ${r.ticket}, not this ticket`,
    );
  }
  const allowed = signers.some(
    (s) =>
      s.principal === r.revoker &&
      (s.principal === ticket.payload.requester ||
        hasRole(policy, s.principal, policy.tickets.approverRoles) ||
        hasRole(policy, s.principal, policy.adminRoles)),
  );
  if (!allowed) {
    throw new BreakglassError(
      'REVOCATION_INVALID',
      `revocation is not signed by its revoker ${r.revoker} as requester, approver or admin`,
    );
  }
  return r;
}
