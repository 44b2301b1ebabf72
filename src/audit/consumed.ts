import { BreakglassError } from '../errors.ts';
import { isValidRefName } from '../policy/refs.ts';
import { ACTIONS, TICKET_ID, type Action } from '../ticket/payload.ts';
import { parseTime } from '../ticket/time.ts';
import type { AuditEvent } from './note.ts';

/**
 * Use records (DESIGN §4): `refs/breakglass/consumed/<id>` is a chain with one commit per use,
 * so `git rev-list --count refs/breakglass/consumed/<id>` is the number of uses. The commit
 * message is a readable subject, a blank line and the use record as one JSON line. Pure.
 */

export const CONSUMED_REF_PREFIX = 'refs/breakglass/consumed/';

/** One use of a ticket, as stored in a consumed/ commit message. */
export interface UseRecord {
  ticket: string;
  ref: string;
  oldSha: string;
  newSha: string;
  actions: Action[];
  pusher: string;
  recordedAt: string;
  recordedBy: string;
  /** How many commits the use annotated. */
  commits: number;
}

const KEYS = [
  'ticket',
  'ref',
  'oldSha',
  'newSha',
  'actions',
  'pusher',
  'recordedAt',
  'recordedBy',
  'commits',
] as const;
const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const MAX_MESSAGE = 64 * 1024;
const MAX_NAME = 256;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function invalid(message: string): BreakglassError {
  return new BreakglassError('AUDIT_RECORD_INVALID', `use record: ${message}`);
}

/** The consumed/ ref of a ticket id (the id must be a well-formed ticket id). */
export function consumedRefOf(ticketId: string): string {
  if (!TICKET_ID.test(ticketId)) throw invalid(`"${ticketId.slice(0, 80)}" is not a ticket id`);
  return CONSUMED_REF_PREFIX + ticketId;
}

/** The use record for a break-glass event that annotated `commits` commits. */
export function useRecordOf(e: AuditEvent, commits: number): UseRecord {
  if (e.kind !== 'breakglass' || e.ticketId === undefined) {
    throw invalid('only a break-glass event with a ticket consumes a use');
  }
  const r: UseRecord = {
    ticket: e.ticketId,
    ref: e.ref,
    oldSha: e.oldSha,
    newSha: e.newSha,
    actions: e.actions as Action[],
    pusher: e.pusher,
    recordedAt: e.recordedAt,
    recordedBy: e.recordedBy,
    commits,
  };
  validateUseRecord(r);
  return r;
}

function checkName(v: unknown, field: string): void {
  if (typeof v !== 'string' || v === '' || v.length > MAX_NAME || CONTROL.test(v)) {
    throw invalid(`${field} must be a non-empty single-line string of at most ${MAX_NAME} chars`);
  }
}

/** Throws AUDIT_RECORD_INVALID unless every field is well-formed. */
export function validateUseRecord(r: UseRecord): void {
  if (typeof r.ticket !== 'string' || !TICKET_ID.test(r.ticket)) throw invalid('ticket id');
  if (typeof r.ref !== 'string' || !isValidRefName(r.ref)) throw invalid('ref');
  if (typeof r.oldSha !== 'string' || !OID.test(r.oldSha)) throw invalid('oldSha');
  if (typeof r.newSha !== 'string' || !OID.test(r.newSha)) throw invalid('newSha');
  if (
    !Array.isArray(r.actions) ||
    r.actions.length === 0 ||
    !r.actions.every((a) => (ACTIONS as readonly string[]).includes(a))
  ) {
    throw invalid(`actions must be a non-empty list of ${ACTIONS.join(', ')}`);
  }
  checkName(r.pusher, 'pusher');
  checkName(r.recordedBy, 'recordedBy');
  try {
    parseTime(r.recordedAt, 'recordedAt');
  } catch (e) {
    throw invalid((e as Error).message);
  }
  if (!Number.isSafeInteger(r.commits) || r.commits < 0) throw invalid('commits');
}

function subjectOf(r: UseRecord): string {
  return `breakglass: ${r.ticket} used on ${r.ref} (${r.actions.join(', ')})`;
}

/** The commit message of a consumed/ commit: subject, blank line, the record as one JSON line. */
export function formatUseRecord(r: UseRecord): string {
  validateUseRecord(r);
  const ordered = Object.fromEntries(KEYS.map((k) => [k, r[k]]));
  return `${subjectOf(r)}\n\n${JSON.stringify(ordered)}\n`;
}

/** Parses a consumed/ commit message strictly (exact keys, exact subject); throws AUDIT_RECORD_INVALID. */
export function parseUseRecord(message: string): UseRecord {
  if (typeof message !== 'string' || message.length > MAX_MESSAGE) throw invalid('too large');
  const m = /^([^\n]*)\n\n(\{[^\n]*\})\n?$/.exec(message);
  if (!m) throw invalid('expected "<subject>\\n\\n<json>"');
  let json: unknown;
  try {
    json = JSON.parse(m[2]!);
  } catch {
    throw invalid('body is not JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw invalid('body is not an object');
  }
  const keys = Object.keys(json).sort();
  if (keys.join() !== [...KEYS].sort().join()) {
    throw invalid(`keys must be exactly ${KEYS.join(', ')}`);
  }
  const r = json as UseRecord;
  validateUseRecord(r);
  if (m[1] !== subjectOf(r)) throw invalid('subject does not match the record');
  return r;
}
