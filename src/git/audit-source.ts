import { spawn } from 'node:child_process';
import { parseUseRecord, type UseRecord } from '../audit/consumed.ts';
import { parseNote, type AuditEvent } from '../audit/note.ts';
import type { ApprovalStep, ReviewStep, TimelineInput } from '../audit/timeline.ts';
import type {
  AuditData,
  AuditProblem,
  NotedEvent,
  ReviewFacts,
  RevocationFacts,
  TicketFacts,
} from '../audit/report.ts';
import { verifyReview } from '../audit/review.ts';
import { BreakglassError } from '../errors.ts';
import type { Policy } from '../policy/policy.ts';
import { parseEnvelope, type Envelope } from '../ticket/dsse.ts';
import { parsePayload, TICKET_PAYLOAD_TYPE, type TicketPayload } from '../ticket/payload.ts';
import { verifyRevocation } from '../ticket/revocation.ts';
import {
  payloadDigest,
  verifySignatures,
  verifyTicketEnvelope,
  type VerifiedTicket,
} from '../ticket/verify.ts';
import { CatFileBatch, runGit, type GitContext } from './git.ts';
import { ENVELOPE_FILE, parseBreakglassRef, REFS, type Namespace } from './store.ts';

/**
 * Reads everything `bg-sign audit` joins, with a fixed number of git processes however many
 * events there are (DESIGN §9: 100,000 events in < 3 s, < 200 MiB):
 * 1. `git for-each-ref refs/breakglass/ refs/notes/breakglass` (all evidence refs),
 * 2. `git ls-tree -r refs/notes/breakglass` (commit -> note blob),
 * 3. one `git cat-file --batch --buffer` for every distinct note blob (an event that annotated
 *    many commits has one blob text, parsed once), then ticket, revocation and review envelopes,
 * 4. one `git log -z` over all consumed/ refs (the use records).
 */

const MAX_NOTE_BYTES = 256 * 1024;
const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** Progress callback: phase name, items done, items in total (total 0 = unknown). */
export type Progress = (phase: string, done: number, total: number) => void;

export interface AuditSourceOptions {
  /** Verifies reviews and revocations (and ticket approvers); null = nothing verified. */
  readonly policy: Policy | null;
  readonly notesRef?: string;
  readonly progress?: Progress | undefined;
}

interface BatchItem {
  readonly spec: string;
  readonly type: string | null;
  readonly data: Buffer | null;
}

/**
 * One `git cat-file --batch --buffer` for a known list of object specs: all requests are written
 * at once and answers parsed as they stream in; `onObject` gets each (null data when missing).
 */
export function catFileStream(
  ctx: GitContext,
  specs: readonly string[],
  onObject: (item: BatchItem, index: number) => void,
): Promise<void> {
  if (specs.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const child = spawn(
      'git',
      [...(ctx.gitDir ? ['--git-dir', ctx.gitDir] : []), 'cat-file', '--batch', '--buffer'],
      { cwd: ctx.cwd, env: ctx.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let buf: Buffer = Buffer.alloc(0);
    let index = 0;
    let failed = false;
    let stderr = '';
    const fail = (e: Error) => {
      if (failed) return;
      failed = true;
      child.kill();
      reject(e);
    };
    child.stdout.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      try {
        for (;;) {
          const nl = buf.indexOf(10);
          if (nl < 0) break;
          const header = buf.toString('latin1', 0, nl);
          if (header.endsWith(' missing') || header.endsWith(' ambiguous')) {
            buf = buf.subarray(nl + 1);
            onObject({ spec: specs[index]!, type: null, data: null }, index);
            index++;
            continue;
          }
          const parts = header.split(' ');
          const size = Number(parts[2]);
          if (parts.length !== 3 || !Number.isSafeInteger(size)) {
            throw new BreakglassError(
              'GIT_FAILED',
              `git cat-file: unexpected output "${header.slice(0, 80)}"`,
            );
          }
          if (buf.length < nl + 1 + size + 1) break;
          const data = buf.subarray(nl + 1, nl + 1 + size);
          buf = buf.subarray(nl + 2 + size);
          onObject({ spec: specs[index]!, type: parts[1]!, data }, index);
          index++;
        }
      } catch (e) {
        fail(e as Error);
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString('utf8');
    });
    child.on('error', (e) => fail(new BreakglassError('GIT_FAILED', `git cat-file: ${e.message}`)));
    child.on('close', (code) => {
      if (failed) return;
      if (code !== 0 || index !== specs.length) {
        fail(
          new BreakglassError(
            'GIT_FAILED',
            `git cat-file ended after ${index} of ${specs.length} objects: ${stderr.trim() || `exit ${code}`}`,
          ),
        );
      } else resolve();
    });
    child.stdin.on('error', () => {});
    // A spec with a newline would desynchronise the answers; callers only pass ids and
    // `<id>:<file>`, but refuse anyway.
    const text = specs.map((s) => (/[\n\r]/.test(s) ? 'invalid-spec' : s)).join('\n') + '\n';
    child.stdin.end(text);
  });
}

/** Every evidence ref: namespace -> id -> tip, plus the notes tip. */
export interface EvidenceRefs {
  readonly notes: string | null;
  readonly byNs: ReadonlyMap<Namespace, ReadonlyMap<string, string>>;
}

/** Lists `refs/breakglass/*` and the notes ref with one for-each-ref. */
export async function listEvidenceRefs(
  ctx: GitContext,
  notesRef: string = REFS.notes,
): Promise<EvidenceRefs> {
  const r = await runGit(ctx, [
    'for-each-ref',
    '--format=%(objectname) %(refname)',
    'refs/breakglass/',
    notesRef,
  ]);
  let notes: string | null = null;
  const byNs = new Map<Namespace, Map<string, string>>();
  for (const line of r.stdout.toString('utf8').split('\n')) {
    const sp = line.indexOf(' ');
    if (sp < 0) continue;
    const sha = line.slice(0, sp);
    const ref = line.slice(sp + 1);
    if (ref === notesRef) {
      notes = sha;
      continue;
    }
    const parsed = parseBreakglassRef(ref);
    if (!parsed) continue;
    let ns = byNs.get(parsed.ns);
    if (!ns) byNs.set(parsed.ns, (ns = new Map()));
    ns.set(parsed.id, sha);
  }
  return { notes, byNs };
}

/** Commit -> note blob for every note under the notes commit (one `git ls-tree -r`). */
export async function listNotes(
  ctx: GitContext,
  notesCommit: string,
): Promise<{ commit: string; blob: string }[]> {
  const r = await runGit(ctx, ['ls-tree', '-r', '--full-tree', notesCommit]);
  const out: { commit: string; blob: string }[] = [];
  const text = r.stdout.toString('latin1');
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    // `<mode> SP <type> SP <oid> TAB <path>`; the path is the commit id split by fanout.
    const tab = text.indexOf('\t', start);
    if (tab > start && tab < end) {
      const head = text.slice(start, tab);
      const path = text.slice(tab + 1, end).replace(/\//g, '');
      const blob = head.slice(head.lastIndexOf(' ') + 1);
      if (head.includes(' blob ') && OID.test(path) && OID.test(blob))
        out.push({ commit: path, blob });
    }
    start = end + 1;
  }
  return out;
}

/**
 * Reads and parses every note, de-duplicating events across commits (one event annotates every
 * commit its push brought in). Malformed notes become problems, never a crash.
 */
export async function readNotedEvents(
  ctx: GitContext,
  notesCommit: string | null,
  problems: AuditProblem[],
  progress?: Progress,
): Promise<NotedEvent[]> {
  if (!notesCommit) return [];
  const notes = await listNotes(ctx, notesCommit);
  const commitsByBlob = new Map<string, string[]>();
  for (const n of notes) {
    const list = commitsByBlob.get(n.blob);
    if (list) list.push(n.commit);
    else commitsByBlob.set(n.blob, [n.commit]);
  }
  const blobs = [...commitsByBlob.keys()];
  const byKey = new Map<string, { event: AuditEvent; commits: string[] }>();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let done = 0;
  await catFileStream(ctx, blobs, ({ spec, data, type }) => {
    const commits = commitsByBlob.get(spec)!;
    if (++done % 5000 === 0) progress?.('notes', done, blobs.length);
    if (!data || type !== 'blob') {
      problems.push({ kind: 'note', where: commits[0]!, message: 'note object is missing' });
      return;
    }
    if (data.length > MAX_NOTE_BYTES) {
      problems.push({
        kind: 'note',
        where: commits[0]!,
        message: `note is ${data.length} bytes; skipped`,
      });
      return;
    }
    let text: string;
    try {
      text = decoder.decode(data);
    } catch {
      problems.push({ kind: 'note', where: commits[0]!, message: 'note is not UTF-8' });
      return;
    }
    if (!text.includes('Break-glass-')) return;
    const parsed = parseNote(text);
    for (const err of parsed.errors) {
      problems.push({ kind: 'note', where: commits.join(' ').slice(0, 200), message: err });
    }
    for (const event of parsed.events) {
      const key = `${event.kind} ${event.ticketId ?? '-'} ${event.ref} ${event.oldSha}..${event.newSha}`;
      const seen = byKey.get(key);
      if (seen) for (const c of commits) seen.commits.push(c);
      else byKey.set(key, { event, commits: [...commits] });
    }
  });
  progress?.('notes', blobs.length, blobs.length);
  // A commit can only be listed twice for one event if two blobs held it: not possible in one
  // notes tree, so the lists are already unique.
  return [...byKey.values()];
}

/** Every use record on `refs/breakglass/consumed/*`, with one `git log -z`. */
export async function readUseRecords(
  ctx: GitContext,
  hasConsumed: boolean,
  problems: AuditProblem[],
  ref?: string,
): Promise<UseRecord[]> {
  if (!hasConsumed) return [];
  const r = await runGit(ctx, [
    'log',
    '-z',
    '--format=%H%n%B',
    ref ?? `--glob=${REFS.consumed}*`,
    '--',
  ]);
  const uses: UseRecord[] = [];
  const text = r.stdout.toString('utf8');
  for (const entry of text.split('\0')) {
    if (!entry) continue;
    const nl = entry.indexOf('\n');
    const sha = entry.slice(0, nl);
    // git log appends a newline after %B; the record's own trailing newline stays.
    const message = entry.slice(nl + 1).replace(/\n$/, '');
    try {
      uses.push(parseUseRecord(message));
    } catch (e) {
      problems.push({ kind: 'use', where: sha, message: (e as Error).message });
    }
  }
  return uses;
}

function envelopeOf(data: Buffer | null, what: string): Envelope {
  if (!data)
    throw new BreakglassError('TICKET_REF_INVALID', `${what}: no envelope file in its tree`);
  return parseEnvelope(data);
}

/** A ticket read for the report: verified when a policy is given, else only parsed. */
interface TicketRead {
  readonly payload: TicketPayload;
  /**
   * The ticket bound to its payload digest, for checking reviews and revocations against it.
   * Its own signatures are not re-verified here: what makes a review valid is the reviewer's
   * signature over this exact payload digest (R2-R5); the ticket's authenticity was checked by
   * the hook when it was pushed and is checked by `bg-sign verify`/`show`.
   */
  readonly bound: VerifiedTicket | null;
}

/**
 * Reads the envelopes the report needs with one cat-file process: tickets named by `ticketIds`
 * and those with a review or revocation to check, every revocation and every review tip.
 * Reviews and revocations are verified under the policy (one signature check each).
 */
export async function readEnvelopes(
  ctx: GitContext,
  refs: EvidenceRefs,
  ticketIds: ReadonlySet<string>,
  policy: Policy | null,
  problems: AuditProblem[],
): Promise<{
  tickets: Map<string, TicketFacts>;
  revocations: Map<string, RevocationFacts>;
  reviews: Map<string, ReviewFacts>;
}> {
  const tickets = new Map<string, TicketFacts>();
  const revocations = new Map<string, RevocationFacts>();
  const reviews = new Map<string, ReviewFacts>();
  const revokedRefs = refs.byNs.get('revoked') ?? new Map<string, string>();
  const reviewRefs = refs.byNs.get('reviews') ?? new Map<string, string>();
  const ticketRefs = refs.byNs.get('tickets') ?? new Map<string, string>();
  const needVerified = new Set([...revokedRefs.keys(), ...reviewRefs.keys()]);
  const wanted = new Set([...ticketIds, ...needVerified]);

  const specs: { ns: Exclude<Namespace, 'consumed'>; id: string }[] = [];
  for (const id of wanted) if (ticketRefs.has(id)) specs.push({ ns: 'tickets', id });
  for (const id of revokedRefs.keys()) specs.push({ ns: 'revoked', id });
  for (const id of reviewRefs.keys()) specs.push({ ns: 'reviews', id });
  const tip = (ns: Namespace, id: string) => refs.byNs.get(ns)!.get(id)!;

  const raw = new Map<string, Buffer | null>();
  const read = new Map<string, TicketRead>();
  await catFileStream(
    ctx,
    specs.map((s) => `${tip(s.ns, s.id)}:${ENVELOPE_FILE[s.ns]}`),
    ({ data, type }, i) => {
      const s = specs[i]!;
      const bytes = data && type === 'blob' ? Buffer.from(data) : null;
      if (s.ns !== 'tickets') {
        raw.set(`${s.ns}/${s.id}`, bytes);
        return;
      }
      try {
        const env = envelopeOf(bytes, `ticket ${s.id}`);
        if (env.payloadType !== TICKET_PAYLOAD_TYPE) {
          throw new BreakglassError(
            'PAYLOAD_TYPE',
            `payloadType is "${env.payloadType.slice(0, 80)}"`,
          );
        }
        const payload = parsePayload(env.payload);
        const bound: VerifiedTicket | null = needVerified.has(s.id)
          ? {
              envelope: env,
              payload,
              payloadDigest: payloadDigest(env.payload),
              signers: [],
              unverified: [],
            }
          : null;
        if (payload.id !== s.id) {
          throw new BreakglassError(
            'TICKET_REF_INVALID',
            `ref names ${s.id} but holds ticket ${payload.id}`,
          );
        }
        read.set(s.id, { payload, bound });
        tickets.set(s.id, {
          id: s.id,
          requester: payload.requester,
          holder: payload.holder,
          reason: payload.reason,
          incident: payload.incident,
          notBefore: payload.notBefore,
          expiresAt: payload.expiresAt,
          maxUses: payload.maxUses,
        });
      } catch (e) {
        problems.push({
          kind: 'ticket',
          where: REFS.tickets + s.id,
          message: (e as Error).message,
        });
      }
    },
  );

  for (const id of revokedRefs.keys()) {
    try {
      const env = envelopeOf(raw.get(`revoked/${id}`) ?? null, `revocation ${id}`);
      const t = read.get(id);
      if (policy && t?.bound) {
        const r = verifyRevocation(env, t.bound, policy);
        revocations.set(id, {
          ticket: id,
          revoker: r.revoker,
          revokedAt: r.revokedAt,
          reason: r.reason,
          valid: true,
        });
      } else {
        // Unverifiable (no policy or no ticket): report what it claims, marked as such.
        const p = JSON.parse(env.payload.toString('utf8')) as Record<string, unknown>;
        revocations.set(id, {
          ticket: id,
          revoker: String(p.revoker ?? '?'),
          revokedAt: String(p.revokedAt ?? ''),
          reason: String(p.reason ?? ''),
          valid: policy && !t ? false : null,
          error: t ? undefined : 'ticket not found',
        });
      }
    } catch (e) {
      problems.push({
        kind: 'revocation',
        where: REFS.revoked + id,
        message: (e as Error).message,
      });
    }
  }

  for (const id of reviewRefs.keys()) {
    const where = REFS.reviews + id;
    let env: Envelope;
    let claimed: Record<string, unknown>;
    try {
      env = envelopeOf(raw.get(`reviews/${id}`) ?? null, `review ${id}`);
      claimed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(env.payload)) as Record<
        string,
        unknown
      >;
      if (!claimed || typeof claimed !== 'object') throw new Error('payload is not an object');
    } catch (e) {
      problems.push({ kind: 'review', where, message: (e as Error).message });
      continue;
    }
    const t = read.get(id);
    const base = {
      ticket: id,
      reviewer: String(claimed.reviewer ?? '?'),
      outcome: claimed.outcome as ReviewFacts['outcome'],
      note: String(claimed.note ?? ''),
      reviewedAt: String(claimed.reviewedAt ?? ''),
      reviewedAtMs: Date.parse(String(claimed.reviewedAt ?? '')) || 0,
    };
    if (!policy) {
      reviews.set(id, { ...base, valid: null, error: 'no policy to verify the review with' });
      continue;
    }
    if (!t?.bound) {
      reviews.set(id, { ...base, valid: false, error: 'the reviewed ticket could not be read' });
      problems.push({ kind: 'review', where, message: 'the reviewed ticket could not be read' });
      continue;
    }
    try {
      const r = verifyReview(env, t.bound, policy);
      reviews.set(id, {
        ...base,
        reviewer: r.reviewer,
        outcome: r.outcome,
        note: r.note,
        reviewedAt: r.reviewedAt,
        reviewedAtMs: r.reviewedAtMs,
        valid: true,
      });
    } catch (e) {
      reviews.set(id, { ...base, valid: false, error: (e as Error).message });
      problems.push({ kind: 'review', where, message: (e as Error).message });
    }
  }
  return { tickets, revocations, reviews };
}

/** Reads everything the audit report joins, with a fixed number of git processes. */
export async function readAuditData(ctx: GitContext, opts: AuditSourceOptions): Promise<AuditData> {
  const problems: AuditProblem[] = [];
  const refs = await listEvidenceRefs(ctx, opts.notesRef);
  opts.progress?.('refs', 1, 1);
  const [events, uses] = await Promise.all([
    readNotedEvents(ctx, refs.notes, problems, opts.progress),
    readUseRecords(ctx, (refs.byNs.get('consumed')?.size ?? 0) > 0, problems),
  ]);
  opts.progress?.('records', 1, 1);
  // Tickets are read only where the records leave something out: notes written by the recorder
  // carry requester, approvers, reason and window already.
  const ids = new Set<string>();
  const noted = new Set<string>();
  for (const { event: e } of events) {
    if (!e.ticketId) continue;
    noted.add(`${e.ticketId} ${e.ref} ${e.oldSha}..${e.newSha}`);
    if (!e.requester || e.reason === undefined || !e.window) ids.add(e.ticketId);
  }
  for (const u of uses) {
    if (!noted.has(`${u.ticket} ${u.ref} ${u.oldSha}..${u.newSha}`)) ids.add(u.ticket);
  }
  const { tickets, revocations, reviews } = await readEnvelopes(
    ctx,
    refs,
    ids,
    opts.policy,
    problems,
  );
  opts.progress?.('tickets', 1, 1);
  const ticketIds = new Set(refs.byNs.get('tickets')?.keys() ?? []);
  return { events, tickets, ticketIds, uses, revocations, reviews, problems };
}

// Ticket and review chains are one commit per signature or review; anything longer is not ours.
const MAX_CHAIN = 64;

async function chainOf(ctx: GitContext, tip: string): Promise<{ sha: string; at: number }[]> {
  const r = await runGit(ctx, [
    'log',
    '--first-parent',
    `--max-count=${MAX_CHAIN}`,
    '--format=%H %ct',
    tip,
    '--',
  ]);
  return r.stdout
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [sha, ct] = l.split(' ');
      return { sha: sha!, at: Number(ct) * 1000 };
    })
    .reverse();
}

/**
 * Everything `bg-sign log ID` shows about one ticket: the ticket chain (who added which
 * signature, when), its uses (notes and use records), revocation and every review on the chain.
 */
export async function readTicketHistory(
  ctx: GitContext,
  id: string,
  policy: Policy | null,
): Promise<{ input: Omit<TimelineInput, 'now'>; problems: AuditProblem[] }> {
  const problems: AuditProblem[] = [];
  const refs = await listEvidenceRefs(ctx);
  const tip = refs.byNs.get('tickets')?.get(id);
  if (!tip) {
    throw new BreakglassError('TICKET_NOT_FOUND', `ticket ${id} not found (${REFS.tickets}${id})`, {
      hint: 'fetch the break-glass refs first (bg-sign fetch)',
    });
  }
  const reader = new CatFileBatch(ctx);
  try {
    const chain = await chainOf(ctx, tip);
    const signatures: ApprovalStep[] = [];
    const seen = new Set<string>();
    let last: Envelope | null = null;
    for (const c of chain) {
      const obj = await reader.read(`${c.sha}:${ENVELOPE_FILE.tickets}`);
      let env: Envelope;
      try {
        env = envelopeOf(obj?.type === 'blob' ? obj.data : null, `ticket ${id} at ${c.sha}`);
      } catch (e) {
        problems.push({ kind: 'ticket', where: c.sha, message: (e as Error).message });
        continue;
      }
      last = env;
      for (const sig of env.signatures) {
        const k = sig.sig.toString('base64');
        if (seen.has(k)) continue;
        seen.add(k);
        const who = policy
          ? verifySignatures({ ...env, signatures: [sig] }, policy.keyOwners).signers[0]
          : undefined;
        signatures.push({
          at: c.at,
          principal: who?.principal ?? null,
          keyid: who?.keyid ?? sig.keyid,
        });
      }
    }
    if (!last)
      throw new BreakglassError('TICKET_REF_INVALID', `ticket ${id} holds no readable envelope`);
    const verified = policy ? verifyTicketEnvelope(last, policy.keyOwners) : null;
    const payload = verified?.payload ?? parsePayload(last.payload);
    if (payload.id !== id) {
      throw new BreakglassError(
        'TICKET_REF_INVALID',
        `${REFS.tickets}${id} holds ticket ${payload.id}`,
      );
    }

    const [events, uses] = await Promise.all([
      readNotedEvents(ctx, refs.notes, problems),
      readUseRecords(
        ctx,
        refs.byNs.get('consumed')?.has(id) ?? false,
        problems,
        REFS.consumed + id,
      ),
    ]);

    let revocation: RevocationFacts | null = null;
    const revTip = refs.byNs.get('revoked')?.get(id);
    if (revTip) {
      const obj = await reader.read(`${revTip}:${ENVELOPE_FILE.revoked}`);
      try {
        const env = envelopeOf(obj?.type === 'blob' ? obj.data : null, `revocation ${id}`);
        if (policy && verified) {
          try {
            const r = verifyRevocation(env, verified, policy);
            revocation = {
              ticket: id,
              revoker: r.revoker,
              revokedAt: r.revokedAt,
              reason: r.reason,
              valid: true,
            };
          } catch (e) {
            const p = JSON.parse(env.payload.toString('utf8')) as Record<string, unknown>;
            revocation = {
              ticket: id,
              revoker: String(p.revoker ?? '?'),
              revokedAt: String(p.revokedAt ?? ''),
              reason: String(p.reason ?? ''),
              valid: false,
              error: (e as Error).message,
            };
          }
        } else {
          const p = JSON.parse(env.payload.toString('utf8')) as Record<string, unknown>;
          revocation = {
            ticket: id,
            revoker: String(p.revoker ?? '?'),
            revokedAt: String(p.revokedAt ?? ''),
            reason: String(p.reason ?? ''),
            valid: null,
          };
        }
      } catch (e) {
        problems.push({
          kind: 'revocation',
          where: REFS.revoked + id,
          message: (e as Error).message,
        });
      }
    }

    const reviews: ReviewStep[] = [];
    const reviewTip = refs.byNs.get('reviews')?.get(id);
    if (reviewTip) {
      for (const c of await chainOf(ctx, reviewTip)) {
        const obj = await reader.read(`${c.sha}:${ENVELOPE_FILE.reviews}`);
        try {
          const env = envelopeOf(
            obj?.type === 'blob' ? obj.data : null,
            `review ${id} at ${c.sha}`,
          );
          const claimed = JSON.parse(env.payload.toString('utf8')) as Record<string, unknown>;
          const base = {
            reviewer: String(claimed.reviewer ?? '?'),
            keyid: null,
            outcome: String(claimed.outcome ?? '?'),
            note: String(claimed.note ?? ''),
            reviewedAt: String(claimed.reviewedAt ?? ''),
          };
          if (!policy || !verified) {
            reviews.push({
              ...base,
              valid: policy ? false : null,
              error: policy ? 'ticket not verified' : undefined,
            });
            continue;
          }
          try {
            const r = verifyReview(env, verified, policy);
            reviews.push({ ...base, keyid: r.keyid, valid: true });
          } catch (e) {
            reviews.push({ ...base, valid: false, error: (e as Error).message });
          }
        } catch (e) {
          problems.push({ kind: 'review', where: c.sha, message: (e as Error).message });
        }
      }
    }

    return {
      input: {
        id,
        requester: payload.requester,
        holder: payload.holder,
        reason: payload.reason,
        incident: payload.incident,
        refs: payload.scope.refs,
        actions: payload.scope.actions,
        issuedAt: payload.issuedAt,
        notBefore: payload.notBefore,
        expiresAt: payload.expiresAt,
        maxUses: payload.maxUses,
        signatures,
        events: events.filter((e) => e.event.kind === 'breakglass' && e.event.ticketId === id),
        uses: uses.filter((u) => u.ticket === id),
        revocation,
        reviews,
      },
      problems,
    };
  } finally {
    reader.close();
  }
}
