import { BreakglassError, isBreakglassError, type ErrorCode } from '../errors.ts';
import type { Failure, Pusher } from '../engine/evaluate.ts';
import { ZERO_SHA } from '../engine/update.ts';
import { blockingRefPatterns, guardOf } from '../engine/guard.ts';
import { runGit, type CatFileBatch, type GitContext } from '../git/git.ts';
import { parseBreakglassRef, readEnvelopeAt, REFS } from '../git/store.ts';
import type { Policy } from '../policy/policy.ts';
import type { Envelope } from '../ticket/dsse.ts';
import { TICKET_ID } from '../ticket/payload.ts';
import { verifyRevocation } from '../ticket/revocation.ts';
import { verifySignatures, verifyTicketEnvelope, type VerifiedTicket } from '../ticket/verify.ts';
import { verifyReview } from '../audit/review.ts';
import type { UpdateLine } from './push-input.ts';

/*
 * The namespace rules (DESIGN §4), checked on every push whatever the pusher's role:
 *   N1  nothing under refs/breakglass/ (or refs/notes/breakglass) is ever deleted
 *   N2  only refs/breakglass/{tickets,revoked,reviews,consumed}/<ticket id>
 *   N3  refs/notes/breakglass and consumed/ only from a principal in `recorders`
 *   N4  a ticket ref points to a commit whose tree holds ticket.json (else TICKET_REF_INVALID)
 *   N5  a new ticket: valid payload, its id is the ref's id, signed by its requester, and every
 *       signature verifies under a policy key
 *   N6  a ticket update: fast-forward only, payload bytes unchanged, signatures only added, each
 *       added one verifies under a policy key
 *   N7  a revocation: created once, and verifies against the ticket it names
 *   N8  a review: created or fast-forwarded, and verifies (R1-R5) against its ticket
 *   N9  nothing is pushed to refs/replace/* (by name: engine/guard.ts, TM16)
 *   N10 nothing is created under or over the names the recorder writes (by name:
 *       engine/guard.ts; existing ones: refsBlockingRecording, E3)
 * (N0, in pre-receive: no break-glass refs in the bootstrap push.)
 */

// TM8, TM10 (docs/threat-model.md): tickets, revocations, reviews, use records and notes are
// evidence; this guard is what keeps a writer from rewriting, deleting or forging them (N1-N8).
// Which refs it judges is decided by name, once, in engine/guard.ts (guardOf: `evidence`).

/**
 * Existing refs that keep the recorder from creating refs/notes/breakglass or the use records of
 * `ids` (default: any ticket's), as guardOf calls them `blocks-recording` (N10, E3). One git
 * process; at most 20 names.
 */
export async function refsBlockingRecording(
  ctx: GitContext,
  ids?: readonly string[],
): Promise<string[]> {
  const r = await runGit(ctx, [
    'for-each-ref',
    '--count=20',
    '--format=%(refname)',
    ...blockingRefPatterns(ids),
  ]);
  return r.stdout
    .toString('utf8')
    .split('\n')
    .filter((ref) => ref !== '' && guardOf(ref) === 'blocks-recording');
}

export interface NamespaceInput {
  readonly policy: Policy;
  readonly pusher: Pusher;
  readonly reader: CatFileBatch;
  /** Every update in this push by ref, so a revocation can name a ticket pushed alongside. */
  readonly pushed: ReadonlyMap<string, UpdateLine>;
}

export interface NamespaceResult {
  readonly failures: Failure[];
  /** A ticket created or approved in this push, verified (candidate for this push's updates). */
  readonly ticket?: VerifiedTicket;
}

// Ticket chains are one commit per signature (at most 32); anything longer is not ours.
const MAX_CHAIN = 64;

function fail(code: ErrorCode, rule: string, message: string): NamespaceResult {
  return { failures: [{ code, rule, message }] };
}

/** Our coded errors become failures; anything else is a bug and fails the hook (closed). */
function fromError(e: unknown, rule: string): NamespaceResult {
  if (isBreakglassError(e)) return fail(e.code, rule, e.message);
  throw e;
}

function isRecorder(policy: Policy, pusher: Pusher): boolean {
  return pusher.known && !!pusher.principal && policy.recorders.includes(pusher.principal);
}

/** True if `ancestor` is reachable from `tip` within a short walk (ticket chains are short). */
async function reachesWithin(
  reader: CatFileBatch,
  tip: string,
  ancestor: string,
  limit = MAX_CHAIN,
): Promise<boolean> {
  const queue = [tip];
  const seen = new Set<string>();
  while (queue.length && seen.size < limit) {
    const sha = queue.shift()!;
    if (sha === ancestor) return true;
    if (seen.has(sha)) continue;
    seen.add(sha);
    const obj = await reader.read(sha);
    if (!obj || obj.type !== 'commit') return false;
    const header = obj.data.subarray(0, Math.max(0, obj.data.indexOf('\n\n'))).toString('utf8');
    for (const m of header.matchAll(/^parent ([0-9a-f]{40,64})$/gm)) queue.push(m[1]!);
  }
  return false;
}

function sigKey(s: { keyid: string; sig: Buffer }): string {
  return s.sig.toString('base64');
}

/** N5: a new ticket parses, carries the id of its ref, is signed by its requester, and every
 * signature on it verifies under a policy key. */
function checkNewTicket(env: Envelope, id: string, policy: Policy): NamespaceResult {
  let ticket: VerifiedTicket;
  try {
    ticket = verifyTicketEnvelope(env, policy.keyOwners);
  } catch (e) {
    return fromError(e, 'N5');
  }
  if (ticket.payload.id !== id) {
    return fail(
      'TICKET_REF_INVALID',
      'N5',
      `ticket ref names ${id} but the signed ticket is ${ticket.payload.id}`,
    );
  }
  if (!ticket.signers.some((s) => s.principal === ticket.payload.requester)) {
    return fail(
      'REQUESTER_SIGNATURE_MISSING',
      'N5',
      `new ticket ${id} is not signed by its requester ${ticket.payload.requester}`,
    );
  }
  // S1-S4: an SSH signature refused for a stated reason says so (wrong namespace, ...).
  if (ticket.rejected[0]) return fromError(ticket.rejected[0].error, 'N5');
  if (ticket.unverified.length) {
    return fail(
      'SIGNATURE_INVALID',
      'N5',
      `ticket ${id}: signature(s) #${ticket.unverified.map((i) => i + 1).join(', #')} verify under no key in the policy`,
    );
  }
  return { failures: [], ticket };
}

/** N6: an approval: fast-forward only, payload bytes unchanged, signatures only added and
 * each added one verifies. */
async function checkTicketUpdate(
  input: NamespaceInput,
  u: UpdateLine,
  id: string,
  env: Envelope,
): Promise<NamespaceResult> {
  const { reader, policy } = input;
  if (!(await reachesWithin(reader, u.newSha, u.oldSha))) {
    return fail(
      'NAMESPACE_VIOLATION',
      'N6',
      `${u.ref} can only be fast-forwarded (an approval adds a commit); this push rewrites it`,
    );
  }
  let old: Envelope;
  try {
    old = await readEnvelopeAt(reader, 'tickets', u.oldSha, `ticket ${id} (current)`);
  } catch (e) {
    return fromError(e, 'N6');
  }
  if (old.payloadType !== env.payloadType || !old.payload.equals(env.payload)) {
    return fail(
      'NAMESPACE_VIOLATION',
      'N6',
      `ticket ${id}: the signed payload changed; a ticket's payload never changes (request a new ticket instead)`,
    );
  }
  const present = new Set(env.signatures.map(sigKey));
  const removed = old.signatures.filter((s) => !present.has(sigKey(s)));
  if (removed.length) {
    return fail(
      'NAMESPACE_VIOLATION',
      'N6',
      `ticket ${id}: ${removed.length} signature(s) removed; signatures can only be added`,
    );
  }
  const before = new Set(old.signatures.map(sigKey));
  const added = env.signatures.filter((s) => !before.has(sigKey(s)));
  if (added.length) {
    const { unverified, rejected } = verifySignatures(
      { ...env, signatures: added },
      policy.keyOwners,
    );
    if (rejected[0]) return fromError(rejected[0].error, 'N6');
    if (unverified.length) {
      return fail(
        'SIGNATURE_INVALID',
        'N6',
        `ticket ${id}: ${unverified.length} added signature(s) verify under no key in the policy`,
      );
    }
  }
  try {
    return { failures: [], ticket: verifyTicketEnvelope(env, policy.keyOwners) };
  } catch (e) {
    return fromError(e, 'N6');
  }
}

/** N7: a revocation is created once and verifies against the ticket it names. */
async function checkRevocation(
  input: NamespaceInput,
  u: UpdateLine,
  id: string,
): Promise<NamespaceResult> {
  if (!ZERO_SHA.test(u.oldSha)) {
    return fail('NAMESPACE_VIOLATION', 'N7', `${u.ref} exists; a revocation is created once`);
  }
  try {
    const env = await readEnvelopeAt(input.reader, 'revoked', u.newSha, `revocation ${id}`);
    const ticket = await readPushedOrStoredTicket(input, id, 'REVOCATION_INVALID', 'revocation');
    verifyRevocation(env, ticket, input.policy);
    return { failures: [] };
  } catch (e) {
    return fromError(e, 'N7');
  }
}

/** N8: a review is created or fast-forwarded and verifies (R1-R5) against its ticket. */
async function checkReview(
  input: NamespaceInput,
  u: UpdateLine,
  id: string,
): Promise<NamespaceResult> {
  if (!ZERO_SHA.test(u.oldSha) && !(await reachesWithin(input.reader, u.newSha, u.oldSha))) {
    return fail('NAMESPACE_VIOLATION', 'N8', `${u.ref} can only be created or fast-forwarded`);
  }
  try {
    const env = await readEnvelopeAt(input.reader, 'reviews', u.newSha, `review ${id}`);
    const ticket = await readPushedOrStoredTicket(input, id, 'REVIEW_INVALID', 'review');
    verifyReview(env, ticket, input.policy);
    return { failures: [] };
  } catch (e) {
    return fromError(e, 'N8');
  }
}

/** The ticket a revocation or review names: as pushed alongside, else as stored. */
async function readPushedOrStoredTicket(
  input: NamespaceInput,
  id: string,
  code: ErrorCode,
  what: string,
): Promise<VerifiedTicket> {
  const ticketRef = REFS.tickets + id;
  const rev = input.pushed.get(ticketRef)?.newSha ?? ticketRef;
  try {
    const env = await readEnvelopeAt(input.reader, 'tickets', rev, `ticket ${id}`);
    return verifyTicketEnvelope(env, input.policy.keyOwners);
  } catch (e) {
    throw new BreakglassError(
      code,
      `${what} ${id} names a ticket that can't be read: ${(e as Error).message}`,
    );
  }
}

/**
 * Guards one update under `refs/breakglass/` or `refs/notes/breakglass` (DESIGN §4). Pure in
 * its decisions; reads objects (including quarantined ones) through the given reader.
 */
export async function checkNamespaceUpdate(
  input: NamespaceInput,
  u: UpdateLine,
): Promise<NamespaceResult> {
  // N1: evidence is never deleted, by anyone.
  if (ZERO_SHA.test(u.newSha)) {
    return fail(
      'NAMESPACE_VIOLATION',
      'N1',
      `${u.ref} can't be deleted: break-glass evidence is kept`,
    );
  }
  // N3: notes and use records are written by the server (or a configured recorder) only.
  if (u.ref === REFS.notes || u.ref.startsWith(REFS.consumed)) {
    if (isRecorder(input.policy, input.pusher)) {
      const obj = await input.reader.read(u.newSha);
      if (!obj || obj.type !== 'commit') {
        return fail('TICKET_REF_INVALID', 'N3', `${u.ref} must point to a commit`);
      }
      return { failures: [] };
    }
    return fail(
      'NAMESPACE_VIOLATION',
      'N3',
      `${u.ref} is written by the server only (or a principal in the policy's recorders)`,
    );
  }
  // N2: only the known namespaces, each with a well-formed ticket id.
  const parsed = parseBreakglassRef(u.ref);
  if (!parsed || !TICKET_ID.test(parsed.id)) {
    return fail(
      'NAMESPACE_VIOLATION',
      'N2',
      `${u.ref} is not a break-glass ref (refs/breakglass/{tickets,revoked,reviews}/<ticket id>)`,
    );
  }
  const { ns, id } = parsed;
  if (ns === 'revoked') return checkRevocation(input, u, id);
  if (ns === 'reviews') return checkReview(input, u, id);
  // N4: a ticket ref points to a commit whose tree holds ticket.json.
  let env: Envelope;
  try {
    env = await readEnvelopeAt(input.reader, 'tickets', u.newSha, `ticket ${id}`);
  } catch (e) {
    return fromError(e, 'N4');
  }
  if (ZERO_SHA.test(u.oldSha)) return checkNewTicket(env, id, input.policy);
  return checkTicketUpdate(input, u, id, env);
}
