import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { BreakglassError } from '../errors.ts';
import { hasRole, type Policy } from '../policy/policy.ts';
import { pae, type Envelope } from '../ticket/dsse.ts';
import { SSH_ED25519, type PublicKey, type DocumentKey } from '../ticket/keys.ts';
import { describeZodError, PRINCIPAL_NAME, TICKET_ID } from '../ticket/payload.ts';
import { createEnvelope } from '../ticket/sign.ts';
import { formatTime, parseTime } from '../ticket/time.ts';
import {
  payloadDigest,
  verifySignatures,
  type Signer,
  type TrustedKeys,
  type VerifiedTicket,
} from '../ticket/verify.ts';

/**
 * Post-incident reviews (DESIGN §1 step 6, §4): a DSSE envelope on
 * `refs/breakglass/reviews/<id>`, one review per commit; a later review fast-forwards the ref and
 * the tip is the current verdict. Pure: the clock and the key come from the edge.
 *
 * Rules (docs/review-process.md):
 * - R1 payload type is REVIEW_PAYLOAD_TYPE (signed via PAE, so a ticket or revocation signature
 *   can't be replayed as a review);
 * - R2 the payload is strict (unknown fields, bad outcome, bad time rejected) and names this exact
 *   ticket by id and payload digest;
 * - R3 the named reviewer signed it under a key the policy trusts;
 * - R4 the reviewer holds one of `tickets.reviewerRoles`;
 * - R5 the reviewer is neither the ticket's requester, nor its holder, nor one of its approvers
 *   (anyone who signed it): nobody reviews an emergency they took part in.
 * - R6 the review that stands is the newest valid one on the ref: an invalid review on top (an
 *   involved person's, a forgery where no hook guards the namespace) never overrules it.
 * Every failure is REVIEW_INVALID.
 *
 * For the hook (namespace guard): a push to `refs/breakglass/reviews/<id>` must be a create or a
 * fast-forward, and the envelope in every new commit must pass `verifyReview` against the
 * ticket `refs/breakglass/tickets/<id>` and the policy in force; anything else is rejected.
 */

export const REVIEW_PAYLOAD_TYPE = 'application/vnd.git-breakglass.review.v1+json';

export const REVIEW_OUTCOMES = ['justified', 'unjustified', 'false-emergency'] as const;
export type ReviewOutcome = (typeof REVIEW_OUTCOMES)[number];

/** Longest review note; longer notes belong in the incident tracker, linked from here. */
export const MAX_REVIEW_NOTE = 4000;

const ReviewSchema = z.strictObject({
  type: z.literal('git-breakglass/review'),
  version: z.literal(1),
  ticket: z.string().regex(TICKET_ID),
  ticketDigest: z.string().regex(/^[0-9a-f]{64}$/),
  reviewer: z.string().regex(PRINCIPAL_NAME),
  outcome: z.enum(REVIEW_OUTCOMES),
  note: z
    .string()
    .min(1)
    .max(MAX_REVIEW_NOTE)
    // eslint-disable-next-line no-control-regex
    .refine((s) => !/[\x00-\x08\x0b-\x1f\x7f]/.test(s), 'must not contain control characters'),
  reviewedAt: z.string().max(40),
});

export type ReviewPayload = z.infer<typeof ReviewSchema>;

/** A review whose signature and rules were checked, with its time in epoch ms. */
export interface VerifiedReview extends ReviewPayload {
  readonly reviewedAtMs: number;
  readonly keyid: string;
  readonly digest: string;
}

function invalid(message: string, hint?: string): BreakglassError {
  return new BreakglassError('REVIEW_INVALID', message, hint ? { hint } : {});
}

/** True if `outcome` is one of REVIEW_OUTCOMES. */
export function isReviewOutcome(outcome: unknown): outcome is ReviewOutcome {
  return (REVIEW_OUTCOMES as readonly unknown[]).includes(outcome);
}

/** R4, R5: throws REVIEW_INVALID unless `reviewer` may review this ticket under `policy`. */
export function checkReviewer(policy: Policy, ticket: VerifiedTicket, reviewer: string): void {
  // R5: separation of duties; whoever asked for or used the emergency access can't judge it.
  if (reviewer === ticket.payload.requester) {
    throw invalid(
      `${reviewer} requested ticket ${ticket.payload.id} and can't review it`,
      'ask someone with a reviewer role who was not involved',
    );
  }
  if (reviewer === ticket.payload.holder) {
    throw invalid(
      `${reviewer} held ticket ${ticket.payload.id} and can't review it`,
      'ask someone with a reviewer role who was not involved',
    );
  }
  // The approvers let the access happen: judging it is judging themselves. Every verified
  // signer counts, whether or not their approval was needed.
  if (ticket.signers.some((s) => s.principal === reviewer)) {
    throw invalid(
      `${reviewer} approved ticket ${ticket.payload.id} and can't review it`,
      'ask someone with a reviewer role who was not involved',
    );
  }
  // R4: the policy names who may review.
  if (!hasRole(policy, reviewer, policy.tickets.reviewerRoles)) {
    throw invalid(
      `${reviewer} has no reviewer role (tickets.reviewerRoles: ${policy.tickets.reviewerRoles.join(', ')})`,
      'a principal with one of those roles must sign the review',
    );
  }
}

/** Builds the review payload bytes (compact JSON, fixed field order). */
export function encodeReview(p: ReviewPayload): Buffer {
  const ordered: ReviewPayload = {
    type: p.type,
    version: p.version,
    ticket: p.ticket,
    ticketDigest: p.ticketDigest,
    reviewer: p.reviewer,
    outcome: p.outcome,
    note: p.note,
    reviewedAt: p.reviewedAt,
  };
  return Buffer.from(JSON.stringify(ordered), 'utf8');
}

/**
 * Checks the rules, then signs a review of `ticket` as `reviewer` with `key`. The key must be
 * one of the reviewer's policy keys (otherwise the review would not verify later).
 */
export function createReview(
  policy: Policy,
  ticket: VerifiedTicket,
  reviewer: string,
  outcome: ReviewOutcome,
  note: string,
  now: number,
  key: DocumentKey,
): Envelope {
  const owner = policy.keyOwners.get(key.publicKey.keyid);
  if (!owner || owner.principal !== reviewer) {
    throw invalid(
      `key ${key.publicKey.keyid} is not a key of ${reviewer} in the policy`,
      'use your own key (--key) listed under your principal in .breakglass/policy.yml',
    );
  }
  checkReviewer(policy, ticket, reviewer);
  const payload: ReviewPayload = {
    type: 'git-breakglass/review',
    version: 1,
    ticket: ticket.payload.id,
    ticketDigest: ticket.payloadDigest,
    reviewer,
    outcome,
    note,
    reviewedAt: formatTime(now),
  };
  const parsed = ReviewSchema.safeParse(payload);
  if (!parsed.success) throw invalid(`review ${describeZodError(parsed.error)}`);
  return createEnvelope(REVIEW_PAYLOAD_TYPE, encodeReview(payload), key);
}

const keyObjects = new WeakMap<PublicKey, KeyObject>();

function keyObjectOf(key: PublicKey): KeyObject {
  let ko = keyObjects.get(key);
  if (!ko) {
    const x = Buffer.from(key.raw).toString('base64url');
    ko = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    keyObjects.set(key, ko);
  }
  return ko;
}

/** One Ed25519 check on libuv's thread pool; false on any error. */
function verifyOffThread(key: PublicKey, message: Buffer, sig: Uint8Array): Promise<boolean> {
  if (sig.length !== 64) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      nodeVerify(null, message, keyObjectOf(key), sig, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}

/**
 * What `verifySignatures(envelope, trusted).signers` gives, checked on libuv's thread pool, when
 * every signature verifies under the trusted key its keyid names (the usual case); null when one
 * does not or names no trusted key, and the caller then runs verifySignatures, which also tries
 * the other trusted keys. The audit checks 1,000 reviews this way while it reads on (~0.1 s of
 * signature checks off the main thread).
 */
export async function hintedSigners(
  envelope: Envelope,
  trusted: TrustedKeys,
): Promise<Signer[] | null> {
  const hints = envelope.signatures.map((s) => trusted.get(s.keyid));
  // Raw Ed25519 signatures under plain Ed25519 keys only; SSHSIG entries take verifySignatures.
  if (hints.length === 0 || hints.some((h) => !h || h.key.type !== SSH_ED25519)) return null;
  if (envelope.signatures.some((s) => s.sig.length !== 64)) return null;
  const message = pae(envelope.payloadType, envelope.payload);
  const ok = await Promise.all(
    envelope.signatures.map((s, i) => verifyOffThread(hints[i]!.key, message, s.sig)),
  );
  if (!ok.every(Boolean)) return null;
  // verifySignatures' result when every hint verifies: each principal once, at its first index.
  const signers: Signer[] = [];
  hints.forEach((h, index) => {
    if (!signers.some((x) => x.principal === h!.principal)) {
      signers.push({
        principal: h!.principal,
        keyid: h!.key.keyid,
        index,
        userPresent: false,
        userVerified: false,
      });
    }
  });
  return signers;
}

/**
 * Verifies a stored review against its ticket and the policy (R1-R5); throws REVIEW_INVALID.
 * `signed`: hintedSigners' answer for this envelope under `policy.keyOwners`, when it had one.
 */
export function verifyReview(
  envelope: Envelope,
  ticket: VerifiedTicket,
  policy: Policy,
  signed?: readonly Signer[] | null,
): VerifiedReview {
  // R1: the type is part of what was signed.
  if (envelope.payloadType !== REVIEW_PAYLOAD_TYPE) {
    throw invalid(`review payloadType is "${envelope.payloadType.slice(0, 80)}"`);
  }
  const signers = signed ?? verifySignatures(envelope, policy.keyOwners).signers;
  // R2: parse only the signed bytes, strictly.
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(envelope.payload));
  } catch {
    throw invalid('review payload is not valid UTF-8 JSON');
  }
  const parsed = ReviewSchema.safeParse(json);
  if (!parsed.success) throw invalid(`review ${describeZodError(parsed.error)}`);
  const r = parsed.data;
  let reviewedAtMs: number;
  try {
    reviewedAtMs = parseTime(r.reviewedAt, 'reviewedAt');
  } catch (e) {
    throw invalid(`review ${(e as Error).message}`);
  }
  if (r.ticket !== ticket.payload.id || r.ticketDigest !== ticket.payloadDigest) {
    throw invalid(`review names ticket ${r.ticket}, not ticket ${ticket.payload.id}`);
  }
  // R3: the reviewer named in the payload is the one who signed.
  const signer = signers.find((s) => s.principal === r.reviewer);
  if (!signer) {
    throw invalid(`review is not signed by its reviewer ${r.reviewer} under a policy key`);
  }
  checkReviewer(policy, ticket, r.reviewer);
  return { ...r, reviewedAtMs, keyid: signer.keyid, digest: payloadDigest(envelope.payload) };
}

/** One review on `refs/breakglass/reviews/<id>`: its envelope, or why it could not be read. */
export type ReviewEntry =
  | { readonly where: string; readonly envelope: Envelope }
  | { readonly where: string; readonly error: string };

/** The review that stands for a ticket, and the reviews passed over on the way to it. */
export interface StandingReview {
  readonly review: VerifiedReview | null;
  readonly rejected: readonly { readonly where: string; readonly error: string }[];
}

/**
 * R6: the standing review of a ticket is the newest entry (newest first, as the ref's first-parent
 * history lists them) that passes R1-R5. A later valid review by someone else corrects an
 * earlier one; an invalid review (an approver's, the holder's, a forgery) never overrules a
 * valid one: it is passed over and returned in `rejected` for the audit to report.
 */
export function standingReview(
  entries: readonly ReviewEntry[],
  ticket: VerifiedTicket,
  policy: Policy,
): StandingReview {
  const rejected: { where: string; error: string }[] = [];
  for (const e of entries) {
    if ('error' in e) {
      rejected.push({ where: e.where, error: e.error });
      continue;
    }
    try {
      return { review: verifyReview(e.envelope, ticket, policy), rejected };
    } catch (err) {
      rejected.push({ where: e.where, error: (err as Error).message });
    }
  }
  return { review: null, rejected };
}
