import type { Candidate } from '../../src/engine/decide.ts';
import { countedApprovers, evaluateTicket, type Pusher } from '../../src/engine/evaluate.ts';
import { actionsOf } from '../../src/engine/update.ts';
import { BreakglassError } from '../../src/errors.ts';
import { principalForLogin, protectionFor, type Policy } from '../../src/policy/policy.ts';
import type { Deps } from './deps.ts';
import { toPullInfo, type PullInfo } from './github.ts';
import { changedControlFiles, nameFiles } from './control.ts';
import { closestTickets, requestCommand, type Rejected } from './explain.ts';
import { policyForBranch } from './policy.ts';
import { ensureCommit, fetchAudit } from './remote.ts';
import type { Outcome, SummaryRow } from './report.ts';
import { countApprovals } from './reviews.ts';
import { loadCandidates, namedTicketIds } from './tickets.ts';

/** The gate's verdict on one pull request. */
export interface PullVerdict {
  readonly pull: number;
  readonly head: string;
  readonly author: string;
  readonly pass: boolean;
  readonly via: 'reviews' | 'ticket' | 'none';
  readonly approvals: readonly string[];
  readonly required: number;
  readonly actions: readonly string[];
  readonly ticket?: string;
  readonly failures: readonly string[];
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (!v || typeof v !== 'object') {
    throw new BreakglassError('USAGE', `the event payload has no ${what}`);
  }
  return v as Record<string, unknown>;
}

/**
 * The pull request a merge group adds, from the queue branch GitHub names after it
 * (`gh-readonly-queue/<base>/pr-<n>-<sha>`). Pull requests ahead of it in the queue were checked
 * in their own groups; text in commit messages (a squash body listing `(#98)`) is never read as
 * membership. Null when the branch name is not GitHub's queue format.
 */
export function mergeGroupPull(group: Record<string, unknown>): number | null {
  const headRef = typeof group.head_ref === 'string' ? group.head_ref : '';
  const m = /^refs\/heads\/gh-readonly-queue\/.+\/pr-(\d{1,9})-[0-9a-f]{40,64}$/.exec(headRef);
  return m ? Number(m[1]) : null;
}

async function judgePull(
  deps: Deps,
  policy: Policy,
  pull: PullInfo,
  baseRef: string,
  baseTip: string,
  required: number,
  now: number,
): Promise<PullVerdict> {
  const reviews = await deps.github.listReviews(pull.number);
  const { remote, policyPath, dismissStaleApprovals } = deps.inputs;
  const count = countApprovals(
    reviews,
    pull.author,
    policy,
    dismissStaleApprovals ? pull.headSha : undefined,
  );
  const approved = count.approvers.length >= required;
  if (!(await ensureCommit(deps.git, remote, pull.headSha, `refs/pull/${pull.number}/head`))) {
    throw new BreakglassError(
      'GIT_FAILED',
      `cannot fetch the head ${pull.headSha.slice(0, 12)} of pull request #${pull.number} from ${remote}`,
    );
  }
  // Workflows, local actions and CODEOWNERS decide how changes are judged: like the policy, a
  // pull request changing them needs a change-policy ticket, so no PR can rewrite its own check.
  const control = await changedControlFiles(deps.git, baseTip, pull.headSha, policyPath, true);
  // The same actions the engine derives for the merge once it lands (so the detector agrees).
  const actions = actionsOf({
    ref: baseRef,
    oldSha: baseTip,
    newSha: pull.headSha,
    fastForward: true,
    touchesPolicy: control.length > 0,
    unreviewedMerge: !approved,
  });
  const base = {
    pull: pull.number,
    head: pull.headSha,
    author: pull.author,
    approvals: count.approvers,
    required,
    actions,
  };
  if (approved && control.length === 0) {
    return { ...base, pass: true, via: 'reviews', failures: [] };
  }
  const named = namedTicketIds(pull.body);
  const candidates: Candidate[] = await loadCandidates(deps.git, policy, now, {
    ref: baseRef,
    action: actions.includes('merge-unreviewed') ? 'merge-unreviewed' : 'change-policy',
    named,
  });
  // T14 on GitHub: the ticket holder is the pull request's author (mapped via policy logins).
  const pusher: Pusher = {
    known: true,
    login: pull.author,
    principal: principalForLogin(policy, pull.author)?.name,
  };
  const rejected: Rejected[] = [];
  for (const c of candidates) {
    if ('error' in c) {
      rejected.push({ id: c.id, failures: [c.error], named: named.includes(c.id) });
      continue;
    }
    const f = evaluateTicket(
      c.ticket,
      policy,
      { ref: baseRef, actions, newSha: pull.headSha, pusher },
      c.state,
      now,
    );
    if (f.length === 0) {
      return { ...base, pass: true, via: 'ticket', ticket: c.id, failures: [] };
    }
    rejected.push({ id: c.id, failures: f, named: named.includes(c.id) });
  }
  const short: string[] = [];
  if (!approved) {
    short.push(
      `has ${count.approvers.length} of ${required} required approval(s)` +
        (count.stale.length
          ? ` (approval by ${count.stale.join(', ')} is for an older head commit)`
          : '') +
        (count.changesRequested.length
          ? `, changes requested by ${count.changesRequested.join(', ')}`
          : ''),
    );
  }
  if (control.length) {
    short.push(`changes control files (${nameFiles(control)}), which needs a change-policy ticket`);
  }
  return {
    ...base,
    pass: false,
    via: 'none',
    failures: [
      `#${pull.number} ${short.join(' and ')}`,
      ...(rejected.length
        ? closestTickets(rejected)
        : [`no ticket covers ${actions.join(' + ')} on ${baseRef} for ${pull.author}`]),
      `to merge without ${approved ? 'that' : 'the reviews'}, get a ticket: ${requestCommand(
        policy,
        baseRef,
        actions,
        pull.headSha,
        `emergency merge of pull request #${pull.number}`,
      )}, have it approved (bg-sign approve ID --push) and name it in the pull request body as "breakglass: ID"`,
    ],
  };
}

/** The gate on an unprotected base branch: nothing to check, said as a notice. */
function unprotected(deps: Deps, baseRef: string, source: string): Outcome {
  const title = `${baseRef} is not protected by ${source}: nothing to check`;
  deps.out.notice(title, { title: 'git-breakglass' });
  return { decision: 'normal', ticket: '', events: [], rows: [], problems: [], title };
}

/** The required check on pull requests and merge queues: approved, or covered by a valid ticket. */
export async function runGate(deps: Deps): Promise<Outcome> {
  const { payload, name } = deps.event;
  let baseRef: string;
  let pulls: PullInfo[];
  if (name === 'merge_group') {
    const group = obj(payload.merge_group, 'merge_group');
    baseRef = String(group.base_ref ?? '');
    const n = mergeGroupPull(group);
    const queue = `refs/heads/gh-readonly-queue/${baseRef.replace(/^refs\/heads\//, '')}/pr-`;
    if (n === null || !String(group.head_ref).startsWith(queue)) {
      throw new BreakglassError(
        'USAGE',
        `cannot tell which pull request merge group ${String(group.head_ref ?? '').slice(0, 200)} adds (expected ${queue}<n>-<sha>)`,
      );
    }
    pulls = [await deps.github.getPull(n)];
  } else {
    const pr = obj(payload.pull_request, 'pull_request');
    const info = toPullInfo(pr);
    baseRef = `refs/heads/${info.baseRef}`;
    pulls = [info];
  }
  if (!baseRef.startsWith('refs/heads/') || baseRef === 'refs/heads/') {
    throw new BreakglassError('USAGE', 'the event payload has no base branch');
  }
  const { remote } = deps.inputs;
  const bp = await deps.out.group('git-breakglass: policy and tickets', async () => {
    await fetchAudit(deps.git, remote);
    // DESIGN §5: the policy comes from the base branch, never from the pull request's head, and
    // from its current tip (not the event's base.sha): a policy change applies to open PRs.
    return policyForBranch(deps, baseRef);
  });
  const { policy } = bp;
  deps.out.info(`policy: ${bp.source}`);
  const rule = protectionFor(policy, baseRef);
  if (!rule) return unprotected(deps, baseRef, bp.source);
  const now = deps.now();
  const verdicts: PullVerdict[] = [];
  for (const pull of pulls) {
    if (pull.baseRef && `refs/heads/${pull.baseRef}` !== baseRef) {
      throw new BreakglassError(
        'USAGE',
        `pull request #${pull.number} targets ${pull.baseRef}, not ${baseRef}`,
      );
    }
    verdicts.push(
      await deps.out.group(`git-breakglass: pull request #${pull.number}`, () =>
        judgePull(deps, policy, pull, baseRef, bp.tip, rule.requiredApprovals, now),
      ),
    );
  }
  const pass = verdicts.every((v) => v.pass);
  const ticketIds = [...new Set(verdicts.flatMap((v) => (v.ticket ? [v.ticket] : [])))];
  const rows: SummaryRow[] = [];
  for (const v of verdicts) {
    let reason = '';
    let expiry = '';
    let approvers = v.approvals.join(', ');
    if (v.ticket) {
      const tickets = await loadCandidates(deps.git, policy, now, {
        ref: baseRef,
        named: [v.ticket],
      });
      const t = tickets.find((c) => c.id === v.ticket);
      if (t && 'ticket' in t) {
        reason = t.ticket.payload.reason;
        expiry = t.ticket.payload.expiresAt;
        approvers = countedApprovers(t.ticket, policy).join(', ');
      }
    }
    rows.push({
      ref: baseRef,
      commits: `#${v.pull} ${v.head.slice(0, 12)}`,
      actor: v.author,
      ticket: v.ticket ?? '',
      approvers,
      reason,
      expiry,
      outcome: v.pass
        ? v.via === 'ticket'
          ? 'pass (break-glass ticket)'
          : 'pass (reviewed)'
        : 'blocked',
    });
  }
  return {
    decision: !pass ? 'violation' : ticketIds.length ? 'breakglass' : 'normal',
    ticket: ticketIds.join(','),
    events: verdicts,
    rows,
    problems: verdicts.flatMap((v) => v.failures),
    title: pass
      ? `pull request check passed on ${baseRef}`
      : `pull request check failed on ${baseRef}`,
  };
}
