import type { Candidate } from '../../src/engine/decide.ts';
import {
  countedApprovers,
  evaluateTicket,
  type Failure,
  type Pusher,
} from '../../src/engine/evaluate.ts';
import { actionsOf } from '../../src/engine/update.ts';
import { BreakglassError } from '../../src/errors.ts';
import { gitText } from '../../src/git/git.ts';
import { principalForLogin, protectionFor, type Policy } from '../../src/policy/policy.ts';
import type { Deps } from './deps.ts';
import { toPullInfo, type PullInfo } from './github.ts';
import { loadPolicyAt } from './policy.ts';
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
 * Pull requests in a merge group. GitHub names the group's head branch after the pull request at
 * its tip (`gh-readonly-queue/<base>/pr-<n>-<sha>`); the head commit's message names merged pull
 * requests (`Merge pull request #n`, squash subjects ending `(#n)`). PRs ahead of it in the queue
 * were checked in their own group.
 */
export function mergeGroupPulls(group: Record<string, unknown>): number[] {
  const found = new Set<number>();
  const headRef = typeof group.head_ref === 'string' ? group.head_ref : '';
  const m = /\/pr-(\d{1,9})-[0-9a-f]{7,64}$/.exec(headRef);
  if (m) found.add(Number(m[1]));
  const commit = group.head_commit as { message?: unknown } | undefined;
  const message = typeof commit?.message === 'string' ? commit.message.slice(0, 65_536) : '';
  for (const x of message.matchAll(/Merge pull request #(\d{1,9})\b/g)) found.add(Number(x[1]));
  for (const x of message.matchAll(/\(#(\d{1,9})\)\s*$/gm)) found.add(Number(x[1]));
  return [...found].slice(0, 20);
}

function describe(id: string | null, f: readonly Failure[]): string {
  return `${id ? `ticket ${id}` : 'no ticket'}: ${f.map((x) => `${x.message} [${x.code}, ${x.rule}]`).join('; ')}`;
}

/** True when the pull request changes the policy directory (needs `change-policy`). */
async function touchesPolicy(
  deps: Deps,
  base: string,
  head: string,
  policyPath: string,
): Promise<boolean> {
  const dir = policyPath.includes('/')
    ? policyPath.slice(0, policyPath.lastIndexOf('/') + 1)
    : policyPath;
  const out = await gitText(deps.git, [
    'diff',
    '--name-only',
    `${base}...${head}`,
    '--',
    dir,
    '.breakglass/',
  ]);
  return out.trim() !== '';
}

async function judgePull(
  deps: Deps,
  policy: Policy,
  pull: PullInfo,
  baseRef: string,
  baseSha: string,
  required: number,
  now: number,
): Promise<PullVerdict> {
  const reviews = await deps.github.listReviews(pull.number);
  const count = countApprovals(reviews, pull.author, policy);
  const approved = count.approvers.length >= required;
  const { remote, policyPath } = deps.inputs;
  if (!(await ensureCommit(deps.git, remote, pull.headSha, `refs/pull/${pull.number}/head`))) {
    throw new BreakglassError(
      'GIT_FAILED',
      `cannot fetch the head ${pull.headSha.slice(0, 12)} of pull request #${pull.number} from ${remote}`,
    );
  }
  const policyChange = await touchesPolicy(deps, baseSha, pull.headSha, policyPath);
  // The same actions the engine derives for the merge once it lands (so the detector agrees).
  const actions = actionsOf({
    ref: baseRef,
    oldSha: baseSha,
    newSha: pull.headSha,
    fastForward: true,
    touchesPolicy: policyChange,
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
  if (approved && !policyChange) {
    return { ...base, pass: true, via: 'reviews', failures: [] };
  }
  const candidates: Candidate[] = await loadCandidates(deps.git, policy, now, {
    ref: baseRef,
    action: actions.includes('merge-unreviewed') ? 'merge-unreviewed' : 'change-policy',
    named: namedTicketIds(pull.body),
  });
  // T14 on GitHub: the ticket holder is the pull request's author (mapped via policy logins).
  const pusher: Pusher = {
    known: true,
    login: pull.author,
    principal: principalForLogin(policy, pull.author)?.name,
  };
  const failures: string[] = [];
  for (const c of candidates) {
    if ('error' in c) {
      failures.push(describe(c.id, [c.error]));
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
    failures.push(describe(c.id, f));
  }
  const why = [
    approved
      ? `changes ${policyPath}`
      : `has ${count.approvers.length} of ${required} required approval(s)` +
        (count.changesRequested.length
          ? `, changes requested by ${count.changesRequested.join(', ')}`
          : ''),
  ];
  if (candidates.length === 0) {
    failures.push(
      `no ticket covers ${actions.join(' + ')} on ${baseRef} for ${pull.author}; ` +
        `request one (bg-sign request --ref ${baseRef} --action ${actions.join(' --action ')} --commit ${pull.headSha}) ` +
        'and name it in the pull request body as "breakglass: <id>"',
    );
  }
  return {
    ...base,
    pass: false,
    via: 'none',
    failures: [`#${pull.number} ${why[0]}`, ...failures],
  };
}

/** The required check on pull requests and merge queues: approved, or covered by a valid ticket. */
export async function runGate(deps: Deps): Promise<Outcome> {
  const { payload, name } = deps.event;
  let baseRef: string;
  let baseSha: string;
  let pulls: PullInfo[];
  if (name === 'merge_group') {
    const group = obj(payload.merge_group, 'merge_group');
    baseRef = String(group.base_ref ?? '');
    baseSha = String(group.base_sha ?? '');
    const numbers = mergeGroupPulls(group);
    if (numbers.length === 0) {
      throw new BreakglassError(
        'USAGE',
        `cannot tell which pull requests merge group ${String(group.head_ref ?? '')} contains`,
      );
    }
    pulls = [];
    for (const n of numbers) pulls.push(await deps.github.getPull(n));
  } else {
    const pr = obj(payload.pull_request, 'pull_request');
    const info = toPullInfo(pr);
    baseRef = `refs/heads/${info.baseRef}`;
    baseSha = String((pr.base as Record<string, unknown>).sha ?? '');
    pulls = [info];
  }
  if (!/^[0-9a-f]{40,64}$/.test(baseSha) || !baseRef.startsWith('refs/heads/')) {
    throw new BreakglassError('USAGE', 'the event payload has no base branch and commit');
  }
  const { remote } = deps.inputs;
  await fetchAudit(deps.git, remote);
  // DESIGN §5: the policy comes from the base branch, never from the pull request's head.
  if (!(await ensureCommit(deps.git, remote, baseSha, baseRef))) {
    throw new BreakglassError('GIT_FAILED', `cannot fetch base commit ${baseSha} from ${remote}`);
  }
  const policy = await loadPolicyAt(deps, baseSha);
  const rule = protectionFor(policy, baseRef);
  if (!rule) {
    return {
      decision: 'normal',
      ticket: '',
      events: [],
      rows: [],
      problems: [],
      title: `${baseRef} is not protected by the policy`,
    };
  }
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
      await judgePull(deps, policy, pull, baseRef, baseSha, rule.requiredApprovals, now),
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
