import { BreakglassError } from '../errors.ts';
import { pae, type Envelope, type EnvelopeSignature } from './dsse.ts';
import { signEd25519, type DocumentKey } from './keys.ts';
import { SSHSIG_NAMESPACE } from './sshsig.ts';
import {
  encodePayload,
  TICKET_PAYLOAD_TYPE,
  type Action,
  type TicketPayloadJson,
} from './payload.ts';
import { formatTime } from './time.ts';

/** Everything a new ticket needs; ids, nonces and the clock come from the edge. */
export interface TicketRequest {
  readonly id: string;
  readonly nonce: string;
  readonly now: number;
  readonly repository: string;
  readonly requester: string;
  readonly holder: string;
  readonly refs: readonly string[];
  readonly actions: readonly Action[];
  readonly commits?: readonly string[];
  readonly reason: string;
  readonly incident?: string;
  readonly ttlMs: number;
  readonly notBefore?: number;
  readonly maxUses: number;
}

/** Ticket id: creation time (sorts) plus random hex, e.g. `20261129T031200Z-7f3a9c`. */
export function formatTicketId(now: number, randomHex: string): string {
  return formatTime(now).replace(/[-:]/g, '') + '-' + randomHex;
}

/** Builds the v1 payload (pure). */
export function buildTicketPayload(r: TicketRequest): TicketPayloadJson {
  const notBefore = r.notBefore ?? r.now;
  return {
    type: 'git-breakglass/ticket',
    version: 1,
    id: r.id,
    repository: r.repository,
    requester: r.requester,
    holder: r.holder,
    scope: {
      refs: [...r.refs],
      actions: [...r.actions],
      ...(r.commits && r.commits.length > 0 ? { commits: [...r.commits] } : {}),
    },
    reason: r.reason,
    ...(r.incident ? { incident: r.incident } : {}),
    issuedAt: formatTime(r.now),
    notBefore: formatTime(notBefore),
    expiresAt: formatTime(notBefore + r.ttlMs),
    maxUses: r.maxUses,
    nonce: r.nonce,
  };
}

/** Signs PAE(payloadType, payload) with one key: raw Ed25519, or SSHSIG for OpenSSH keys. */
export function signPayload(
  payloadType: string,
  payload: Uint8Array,
  key: DocumentKey,
): EnvelopeSignature {
  const message = pae(payloadType, payload);
  const sig = 'signSsh' in key ? key.signSsh(SSHSIG_NAMESPACE, message) : signEd25519(key, message);
  return { keyid: key.publicKey.keyid, sig };
}

/** A new envelope with the first (requester's) signature. */
export function createEnvelope(
  payloadType: string,
  payload: Uint8Array,
  key: DocumentKey,
): Envelope {
  return {
    payloadType,
    payload: Buffer.from(payload),
    signatures: [signPayload(payloadType, payload, key)],
  };
}

/** A new signed ticket envelope. */
export function createTicketEnvelope(r: TicketRequest, key: DocumentKey): Envelope {
  return createEnvelope(TICKET_PAYLOAD_TYPE, encodePayload(buildTicketPayload(r)), key);
}

/** Adds one signature (an approval); the payload bytes are never touched. */
export function addSignature(envelope: Envelope, key: DocumentKey): Envelope {
  if (envelope.signatures.some((s) => s.keyid === key.publicKey.keyid)) {
    throw new BreakglassError(
      'USAGE',
      `key ${key.publicKey.keyid} has already signed this envelope`,
    );
  }
  return {
    ...envelope,
    signatures: [...envelope.signatures, signPayload(envelope.payloadType, envelope.payload, key)],
  };
}
