import { createHash } from 'node:crypto';
import { BreakglassError } from '../errors.ts';
import { pae, type Envelope } from './dsse.ts';
import { verifyEd25519, type PublicKey } from './keys.ts';
import { parsePayload, TICKET_PAYLOAD_TYPE, type TicketPayload } from './payload.ts';

/** Keys the verifier trusts, by key id, with the principal that owns each. */
export type TrustedKeys = ReadonlyMap<
  string,
  { readonly principal: string; readonly key: PublicKey }
>;

export interface Signer {
  readonly principal: string;
  readonly keyid: string;
  /** Index of the first signature in the envelope that verified for this principal. */
  readonly index: number;
}

/** An envelope whose signatures were checked and whose payload was parsed from signed bytes. */
export interface VerifiedEnvelope<P> {
  readonly envelope: Envelope;
  readonly payload: P;
  /** sha256 hex of the exact payload bytes; revocations and reviews name it. */
  readonly payloadDigest: string;
  /** Distinct principals with a verifying signature, in envelope order. */
  readonly signers: readonly Signer[];
  /** Indexes of signatures that verify under no trusted key (ignored for counting). */
  readonly unverified: readonly number[];
}

export type VerifiedTicket = VerifiedEnvelope<TicketPayload>;

// Bound the work a hostile envelope can cause: signatures x keys tried without a matching hint.
const MAX_FALLBACK_ATTEMPTS = 512;

/** sha256 hex of payload bytes. */
export function payloadDigest(payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('hex');
}

/**
 * Checks every signature over PAE(payloadType, payload) against the trusted keys and returns the
 * distinct signing principals. `keyid` is only a hint: a signature whose hint is unknown or wrong is tried
 * against the other trusted keys (bounded). Duplicate signatures and second keys of one person count
 * once (T4). Throws SIGNATURE_INVALID when nothing verifies: an unauthenticated payload is not
 * even parsed.
 */
export function verifySignatures(
  envelope: Envelope,
  trusted: TrustedKeys,
): { signers: Signer[]; unverified: number[] } {
  // A2: signatures cover PAE over the exact payload bytes, never re-serialised JSON.
  const message = pae(envelope.payloadType, envelope.payload);
  const signers: Signer[] = [];
  const unverified: number[] = [];
  let fallbackBudget = MAX_FALLBACK_ATTEMPTS;
  envelope.signatures.forEach((s, index) => {
    // A3: only a policy-trusted key makes a signature count; keyid just says which to try first.
    let match: { principal: string; key: PublicKey } | undefined;
    const hinted = trusted.get(s.keyid);
    if (hinted && verifyEd25519(hinted.key, message, s.sig)) match = hinted;
    // A wrong hint may name another trusted key: still try the rest (DESIGN §3: a signature
    // counts when it verifies under any key the policy trusts).
    if (!match) {
      for (const candidate of trusted.values()) {
        if (candidate === hinted) continue;
        if (fallbackBudget-- <= 0) break;
        if (verifyEd25519(candidate.key, message, s.sig)) {
          match = candidate;
          break;
        }
      }
    }
    if (!match) unverified.push(index);
    // T4: distinct principals; a duplicate signature or a person's second key counts once.
    else if (!signers.some((x) => x.principal === match.principal)) {
      signers.push({ principal: match.principal, keyid: match.key.keyid, index });
    }
  });
  return { signers, unverified };
}

/** Authenticity of a ticket: payload type, at least one trusted signature, strict payload. */
export function verifyTicketEnvelope(envelope: Envelope, trusted: TrustedKeys): VerifiedTicket {
  // A1: the payload type is signed too (PAE), so another document kind can't pass as a ticket.
  if (envelope.payloadType !== TICKET_PAYLOAD_TYPE) {
    throw new BreakglassError(
      'PAYLOAD_TYPE',
      `envelope payloadType is "${envelope.payloadType.slice(0, 80)}", expected "${TICKET_PAYLOAD_TYPE}"`,
    );
  }
  const { signers, unverified } = verifySignatures(envelope, trusted);
  if (signers.length === 0) {
    throw new BreakglassError(
      'SIGNATURE_INVALID',
      'no signature on this ticket verifies under a key the policy trusts',
      { hint: 'the payload was changed after signing, or the signer is not in the policy' },
    );
  }
  // A4: parse only after a trusted signature verified, and only the exact signed bytes.
  const payload = parsePayload(envelope.payload);
  return { envelope, payload, payloadDigest: payloadDigest(envelope.payload), signers, unverified };
}
