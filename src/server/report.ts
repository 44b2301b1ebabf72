import type { Candidate, UpdateDecision } from '../engine/decide.ts';
import { countedApprovers, type Failure } from '../engine/evaluate.ts';
import type { UpdateKind } from '../engine/update.ts';
import type { Policy } from '../policy/policy.ts';
import { formatDuration } from '../policy/duration.ts';
import type { Action } from '../ticket/payload.ts';

/** What the pusher reads (git shows it prefixed with `remote:`). Plain ASCII, no colour. */

const short = (sha: string) => sha.slice(0, 12);

// Ticket text is signed but still untrusted: one line, no terminal or bidi controls.
const UNSAFE =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]+/g;

/** Makes untrusted text safe to print on one line. */
export function oneLine(text: string, max = 200): string {
  const s = text.replace(UNSAFE, ' ');
  return s.length > max ? s.slice(0, max) + '...' : s;
}

/** `fast-forward 1a2b3c..4d5e6f`, `create at 4d5e6f`, `delete (was 1a2b3c)`. */
export function describeUpdate(kind: UpdateKind, oldSha: string, newSha: string): string {
  if (kind === 'create') return `create at ${short(newSha)}`;
  if (kind === 'delete') return `delete (was ${short(oldSha)})`;
  return `${kind} ${short(oldSha)}..${short(newSha)}`;
}

function failureLine(f: Failure): string {
  return `      - ${f.code} (${f.rule}): ${oneLine(f.message, 500)}`;
}

/** How to get a push like this one through. */
export function fixFor(ref: string, actions: readonly Action[], newSha?: string): string[] {
  const acts = actions.map((a) => `--action ${a}`).join(' ');
  const commit = newSha ? ` --commit ${newSha}` : '';
  const branch = ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : ref;
  return [
    `    fix: request a ticket and have it approved:`,
    `         bg-sign request --ref ${branch} ${acts}${commit} --ttl 15m --reason "<incident and why>" --push`,
    `         bg-sign approve <ticket id>          (an approver)`,
    `         git push -o breakglass=<ticket id> ...`,
  ];
}

/** One rejected protected-ref update, with every ticket examined and what would fix it. */
export function formatRejectedUpdate(d: UpdateDecision): string[] {
  const out = [
    `  ${d.update.ref}: ${describeUpdate(d.kind, d.update.oldSha, d.update.newSha)} needs a ticket for: ${d.actions.join(', ')}`,
  ];
  for (const r of d.rejections) {
    out.push(r.ticketId ? `    ticket ${r.ticketId} does not cover it:` : '    no ticket:');
    out.push(...r.failures.map(failureLine));
  }
  out.push(...fixFor(d.update.ref, d.actions, d.kind === 'delete' ? undefined : d.update.newSha));
  return out;
}

/** A guarded-namespace or input failure for one ref. */
export function formatRefFailures(
  ref: string,
  failures: readonly Failure[],
  hint?: string,
): string[] {
  return [`  ${ref}:`, ...failures.map(failureLine), ...(hint ? [`    fix: ${hint}`] : [])];
}

/** The banner for an accepted break-glass update. */
export function formatBanner(
  d: UpdateDecision,
  candidate: Extract<Candidate, { ticket: unknown }>,
  policy: Policy,
  now: number,
  commitCount: number,
  /** Where the forge says the push came from (forge.ts), e.g. a merge in its web UI. */
  via: string | null = null,
): string[] {
  const p = candidate.ticket.payload;
  const approvers = countedApprovers(candidate.ticket, policy);
  const left = Math.max(0, p.times.expiresAt - now);
  return [
    '  ================================================================',
    '  BREAK-GLASS PUSH ACCEPTED by git-breakglass (other server checks may still refuse it)',
    `  ref       ${d.update.ref}  ${describeUpdate(d.kind, d.update.oldSha, d.update.newSha)}  (${d.actions.join(', ')})`,
    ...(via ? [`  via       ${oneLine(via)}`] : []),
    `  ticket    ${p.id}  held by ${p.holder}, requested by ${p.requester}`,
    `  approved  ${approvers.length ? approvers.join(', ') : '(no approvals required)'}`,
    `  reason    ${oneLine(p.reason)}`,
    `  expires   ${p.expiresAt} (${left >= 60_000 ? formatDuration(Math.floor(left / 60_000) * 60_000) : `${Math.ceil(left / 1000)}s`} left); use ${candidate.state.usesConsumed + 1} of ${p.maxUses}`,
    `  this push is recorded once git applies it: an audit note on ${commitCount === 0 ? 'its tip' : `${commitCount} commit(s)`} (refs/notes/breakglass)`,
    '  ================================================================',
  ];
}
