import { createHash } from 'node:crypto';
import { BreakglassError } from '../errors.ts';
import { pae, type Envelope } from './dsse.ts';
import { verifyEd25519, type PublicKey } from './keys.ts';
import {
  signatureForm,
  SSHSIG_HASH,
  SSHSIG_NAMESPACE,
  verifySshSig,
  type SshSig,
} from './sshsig.ts';
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
  /** An `sk-` key's authenticator asserted user presence (touch) for this signature (S5). */
  readonly userPresent: boolean;
  /** ... and user verification (PIN or biometric). */
  readonly userVerified: boolean;
}

/** Why a signature did not count, when it was more than "verifies under no trusted key". */
export interface RejectedSignature {
  readonly index: number;
  readonly error: BreakglassError;
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
  /** Of those, the SSHSIG entries refused for a stated reason (S1-S4), in envelope order. */
  readonly rejected: readonly RejectedSignature[];
}

type Trusted = { readonly principal: string; readonly key: PublicKey };

export type VerifiedTicket = VerifiedEnvelope<TicketPayload>;

// Bound the work a hostile envelope can cause: signatures x keys tried without a matching hint.
const MAX_FALLBACK_ATTEMPTS = 512;

/** sha256 hex of payload bytes. */
export function payloadDigest(payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('hex');
}

/**
 * Checks every signature over PAE(payloadType, payload) against the trusted keys and returns the
 * distinct signing principals. A signature is raw Ed25519 or an SSHSIG blob (S1). For raw ones
 * `keyid` is only a hint: a signature whose hint is unknown or wrong is tried against the other
 * trusted keys (bounded). An SSHSIG blob names its key: it counts when that key is a policy key
 * (S4) and the namespace (S2), hash (S3) and signature check. Duplicate signatures and second keys
 * of one person count once (T4). Signatures that don't count are listed in `unverified`, with a
 * reason in `rejected` when an SSHSIG check failed.
 */
export function verifySignatures(
  envelope: Envelope,
  trusted: TrustedKeys,
): { signers: Signer[]; unverified: number[]; rejected: RejectedSignature[] } {
  // A2: signatures cover PAE over the exact payload bytes, never re-serialised JSON.
  const message = pae(envelope.payloadType, envelope.payload);
  const signers: Signer[] = [];
  const unverified: number[] = [];
  const rejected: RejectedSignature[] = [];
  let fallbackBudget = MAX_FALLBACK_ATTEMPTS;
  envelope.signatures.forEach((s, index) => {
    let match: Trusted | undefined;
    let flags = { userPresent: false, userVerified: false };
    try {
      const form = signatureForm(s.sig);
      if (form.kind === 'sshsig') {
        const r = verifySshSigEntry(form.sig, s.keyid, trusted, message);
        if (r) ({ match, flags } = r);
      } else {
        match = verifyRawEntry(s.sig, s.keyid, trusted, message, () => fallbackBudget-- > 0);
      }
    } catch (e) {
      if (!(e instanceof BreakglassError)) throw e;
      rejected.push({ index, error: e });
    }
    if (!match) unverified.push(index);
    // T4: distinct principals; a duplicate signature or a person's second key counts once.
    else if (!signers.some((x) => x.principal === match.principal)) {
      signers.push({ principal: match.principal, keyid: match.key.keyid, index, ...flags });
    }
  });
  return { signers, unverified, rejected };
}

function verifyRawEntry(
  sig: Buffer,
  keyid: string,
  trusted: TrustedKeys,
  message: Buffer,
  budget: () => boolean,
): Trusted | undefined {
  // A3: only a policy-trusted key makes a signature count; keyid just says which to try first.
  const hinted = trusted.get(keyid);
  if (hinted && verifyEd25519(hinted.key, message, sig)) return hinted;
  // A wrong hint may name another trusted key: still try the rest (DESIGN §3: a signature
  // counts when it verifies under any key the policy trusts).
  for (const candidate of trusted.values()) {
    if (candidate === hinted) continue;
    if (!budget()) break;
    if (verifyEd25519(candidate.key, message, sig)) return candidate;
  }
  return undefined;
}

function verifySshSigEntry(
  sig: SshSig,
  keyid: string,
  trusted: TrustedKeys,
  message: Buffer,
): { match: Trusted; flags: { userPresent: boolean; userVerified: boolean } } | undefined {
  // S2: a signature made for another purpose (git commits sign in "git") is not an approval.
  if (sig.namespace !== SSHSIG_NAMESPACE) {
    throw new BreakglassError(
      'SSHSIG_NAMESPACE',
      `SSH signature is for namespace "${sig.namespace.slice(0, 40)}", not "${SSHSIG_NAMESPACE}"`,
      { hint: `sign with: ssh-keygen -Y sign -n ${SSHSIG_NAMESPACE} -f KEY` },
    );
  }
  // S3: one hash, so there is one signed-data encoding to check.
  if (sig.hashAlgorithm !== SSHSIG_HASH) {
    throw new BreakglassError(
      'SSHSIG_HASH',
      `SSH signature uses hash "${sig.hashAlgorithm.slice(0, 20)}"; only ${SSHSIG_HASH} is accepted`,
    );
  }
  // S4: the blob carries its key; a hint naming another key is a forgery attempt or a bug.
  if (keyid !== '' && keyid !== sig.publicKey.keyid) {
    throw new BreakglassError(
      'SSHSIG_KEY_MISMATCH',
      `SSH signature is made with key ${sig.publicKey.keyid}, but its keyid says ${keyid.slice(0, 60)}`,
    );
  }
  const owner = trusted.get(sig.publicKey.keyid);
  if (!owner) return undefined;
  const check = verifySshSig(sig, owner.key, message);
  return check ? { match: owner, flags: check } : undefined;
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
  const { signers, unverified, rejected } = verifySignatures(envelope, trusted);
  if (signers.length === 0) {
    // The first specific reason (S1-S4) says more than "nothing verified".
    if (rejected[0]) throw rejected[0].error;
    throw new BreakglassError(
      'SIGNATURE_INVALID',
      'no signature on this ticket verifies under a key the policy trusts',
      { hint: 'the payload was changed after signing, or the signer is not in the policy' },
    );
  }
  // A4: parse only after a trusted signature verified, and only the exact signed bytes.
  const payload = parsePayload(envelope.payload);
  return {
    envelope,
    payload,
    payloadDigest: payloadDigest(envelope.payload),
    signers,
    unverified,
    rejected,
  };
}
