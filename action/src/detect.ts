import { parseUseRecord } from '../../src/audit/consumed.ts';
import type { AuditEvent } from '../../src/audit/note.ts';
import { REFS } from '../../src/git/store.ts';
import {
  decidePush,
  type Candidate,
  type PushDecision,
  type UpdateDecision,
} from '../../src/engine/decide.ts';
import { countedApprovers, type Pusher } from '../../src/engine/evaluate.ts';
import { ZERO_SHA, type RefUpdate } from '../../src/engine/update.ts';
import { BreakglassError, isBreakglassError } from '../../src/errors.ts';
import type { RecordItem } from '../../src/git/record.ts';
import { gitText, runGit } from '../../src/git/git.ts';
import { principalForLogin, protectionFor, type Policy } from '../../src/policy/policy.ts';
import { formatTime } from '../../src/ticket/time.ts';
import type { VerifiedTicket } from '../../src/ticket/verify.ts';
import type { Deps } from './deps.ts';
import type { PullInfo } from './github.ts';
import { changedControlFiles } from './control.ts';
import { closestTickets, requestCommand } from './explain.ts';
import { loadPolicyAt } from './policy.ts';
import { recordAndPush } from './record.ts';
import { ensureCommit, fetchAudit, fetchTip, isAncestor, revList } from './remote.ts';
import type { Outcome } from './report.ts';
import { countApprovals } from './reviews.ts';
import { loadCandidates, namedTicketIds } from './tickets.ts';

const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
// A pull request with more commits than this is not matched by patch id (its commits are then
// looked up one by one): a bound on git work, never a verdict.
const MAX_PR_COMMITS = 10_000;
// A push time more than this ahead of the job's clock is not believed (the job's clock is used).
const MAX_FUTURE_MS = 5 * 60_000;
// Commits annotated per event; a bigger push is noted on its newest commits and says so.
const MAX_ANNOTATED = 10_000;
const MAX_DROPPED = 50;

/** How the update came about, as far as GitHub tells. */
export interface Classification {
  readonly how: 'create' | 'delete' | 'force-push' | 'pr-merge' | 'direct-push';
  /** How many API look-ups found the pull requests (one per PR for rebase merges). */
  readonly lookups?: number;
  readonly pulls: readonly { pull: PullInfo; approvers: readonly string[] }[];
  readonly allReviewed: boolean;
}

function short(sha: string): string {
  return sha.slice(0, 12);
}

/** Who pushed: the event's sender, else the activity API's actor, else `github.actor`. */
function pusherLogin(deps: Deps, activityActor: string | null): string {
  const sender = deps.event.payload.sender as { login?: unknown } | undefined;
  if (typeof sender?.login === 'string' && sender.login) return sender.login;
  return activityActor ?? deps.event.actor;
}

/**
 * The commit-pulls API may list only open pull requests for commits off the default branch: fall
 * back to the pull request the commit message names ("Merge pull request #n", "... (#n)"), and
 * believe it only if GitHub says that pull request was merged into this branch as this commit.
 */
async function pullNamedBy(deps: Deps, sha: string, branch: string): Promise<PullInfo | undefined> {
  const message = await gitText(deps.git, ['log', '-1', '--format=%B', sha]);
  const numbers = new Set<number>();
  for (const m of message
    .slice(0, 65_536)
    .matchAll(/Merge pull request #(\d{1,9})\b|\(#(\d{1,9})\)\s*$/gm)) {
    numbers.add(Number(m[1] ?? m[2]));
  }
  for (const n of [...numbers].slice(0, 3)) {
    const pull = await deps.github.getPull(n).catch((e: unknown) => {
      // A number in a message that names no pull request here is not an error.
      if ((e as { code?: unknown }).code === 'GITHUB_PERMISSION') return undefined;
      throw e;
    });
    if (pull?.mergedAt && pull.mergeCommitSha === sha && pull.baseRef === branch) return pull;
  }
  return undefined;
}

/** `git patch-id --stable` of each commit (merges have none): commit -> patch id. */
async function patchIds(deps: Deps, shas: readonly string[]): Promise<Map<string, string>> {
  const log = await runGit(
    deps.git,
    ['log', '-p', '--no-color', '--format=commit %H', '--no-walk=unsorted', '--stdin'],
    { input: shas.join('\n') + '\n' },
  );
  const r = await runGit(deps.git, ['patch-id', '--stable'], { input: log.stdout });
  const map = new Map<string, string>();
  for (const line of r.stdout.toString('utf8').split('\n')) {
    const [pid, sha] = line.split(' ');
    if (pid && sha) map.set(sha, pid);
  }
  return map;
}

/**
 * The pushed commits that are a pull request's commits rebased (GitHub's "rebase and merge"
 * writes each PR commit anew): the same patch as one of the PR head's own commits, those the
 * branch tip does not contain (the PR's base is on the branch; its rebased originals are not).
 * One look-up then covers every commit of the PR.
 */
async function rebasedFrom(
  deps: Deps,
  pull: PullInfo,
  tip: string,
  pushed: ReadonlyMap<string, string>,
): Promise<string[]> {
  const { remote } = deps.inputs;
  if (!OID.test(pull.headSha)) return [];
  if (!(await ensureCommit(deps.git, remote, pull.headSha, `refs/pull/${pull.number}/head`))) {
    return [];
  }
  const own = await revList(deps.git, [pull.headSha, '--not', tip], MAX_PR_COMMITS + 1);
  if (own.total > MAX_PR_COMMITS) return [];
  const prIds = new Set((await patchIds(deps, own.ids)).values());
  return [...pushed].filter(([, pid]) => prIds.has(pid)).map(([sha]) => sha);
}

/**
 * Finds the merged pull request of each first-parent commit (newest first): a merge or squash
 * commit is one look-up; a rebase merge's commits are matched to the PR found for the first of
 * them (so a 300-commit rebase merge costs one look-up, not 300), and any commit still unmatched
 * is looked up on its own. No count turns into a verdict. With `stopAtMissing`, the walk ends at
 * the first commit no merged pull request explains.
 */
export async function pullsOf(
  deps: Deps,
  branch: string,
  tip: string,
  firstParents: readonly string[],
  stopAtMissing: boolean,
): Promise<{ owner: Map<string, PullInfo>; missing: string[]; lookups: number }> {
  const owner = new Map<string, PullInfo>();
  const seen = new Set<number>();
  const missing: string[] = [];
  let pushedIds: Map<string, string> | undefined;
  let lookups = 0;
  for (const sha of firstParents) {
    if (owner.has(sha)) continue;
    lookups++;
    const merged = (await deps.github.pullsForCommit(sha)).filter(
      (p) => p.mergedAt !== null && p.baseRef === branch,
    );
    // Prefer the pull request GitHub merged as exactly this commit.
    const pr =
      merged.find((p) => p.mergeCommitSha === sha) ??
      merged[0] ??
      (await pullNamedBy(deps, sha, branch));
    if (!pr) {
      missing.push(sha);
      if (stopAtMissing) break;
      continue;
    }
    owner.set(sha, pr);
    if (!seen.has(pr.number) && firstParents.length > 1) {
      seen.add(pr.number);
      pushedIds ??= await patchIds(deps, firstParents);
      for (const c of await rebasedFrom(deps, pr, tip, pushedIds)) {
        if (!owner.has(c)) owner.set(c, pr);
      }
    }
  }
  return { owner, missing, lookups };
}

/** Approvals of a pull request as the policy counts them (stale ones per the input). */
export async function approversOf(deps: Deps, policy: Policy, pull: PullInfo): Promise<string[]> {
  const count = countApprovals(
    await deps.github.listReviews(pull.number),
    pull.author,
    policy,
    deps.inputs.dismissStaleApprovals ? pull.headSha : undefined,
  );
  return [...count.approvers];
}

async function classifyMerge(
  deps: Deps,
  policy: Policy,
  branch: string,
  before: string,
  after: string,
  required: number,
): Promise<Classification> {
  const firstParents = (
    await revList(deps.git, ['--first-parent', after, '--not', before], Number.MAX_SAFE_INTEGER)
  ).ids;
  if (firstParents.length === 0) return { how: 'direct-push', pulls: [], allReviewed: false };
  const found = await pullsOf(deps, branch, after, firstParents, true);
  if (found.missing.length) {
    return { how: 'direct-push', pulls: [], allReviewed: false, lookups: found.lookups };
  }
  const pulls = new Map([...found.owner.values()].map((p) => [p.number, p]));
  const judged = [];
  for (const pull of pulls.values()) {
    judged.push({ pull, approvers: await approversOf(deps, policy, pull) });
  }
  return {
    how: 'pr-merge',
    pulls: judged,
    allReviewed: judged.every((j) => j.approvers.length >= required),
    lookups: found.lookups,
  };
}

/**
 * When GitHub received the change, which is when it is judged (a job may start minutes later):
 * a merge at its pull requests' `merged_at`, a push at the activity entry's timestamp, else the
 * event's `repository.pushed_at`; the job's clock only when GitHub says nothing usable.
 */
export function receivedAt(
  deps: Deps,
  cls: Classification,
  activityTime: string | null,
): { at: number; source: string } {
  const now = deps.now();
  const ok = (t: number) => Number.isFinite(t) && t > 0 && t <= now + MAX_FUTURE_MS;
  if (cls.how === 'pr-merge') {
    const times = cls.pulls.map((x) => Date.parse(x.pull.mergedAt ?? ''));
    if (times.length && times.every(ok)) return { at: Math.max(...times), source: 'merged_at' };
  }
  if (activityTime !== null && ok(Date.parse(activityTime))) {
    return { at: Date.parse(activityTime), source: 'activity timestamp' };
  }
  const repo = deps.event.payload.repository as { pushed_at?: unknown } | undefined;
  const pushed = repo?.pushed_at;
  const t =
    typeof pushed === 'number'
      ? pushed * 1000
      : typeof pushed === 'string'
        ? Date.parse(pushed)
        : NaN;
  if (ok(t)) return { at: t, source: 'repository.pushed_at' };
  deps.out.warning('the event says not when GitHub received the push; judging it at the job clock');
  return { at: now, source: 'job clock' };
}

function signerKey(t: VerifiedTicket, principal: string): { principal: string; keyid: string } {
  const s = t.signers.find((x) => x.principal === principal);
  return { principal, keyid: s?.keyid ?? 'unknown' };
}

function explain(d: UpdateDecision, named: readonly string[]): string {
  return closestTickets(
    d.rejections.map((r) => ({
      id: r.ticketId,
      failures: r.failures,
      named: r.ticketId !== null && named.includes(r.ticketId),
    })),
  ).join(' | ');
}

/**
 * True when the ticket's use records already hold this exact update: the job is a re-run, and
 * that use must not be counted against the ticket again. (A forged record only cancels itself.)
 */
async function alreadyUsedHere(
  deps: Deps,
  id: string,
  ref: string,
  before: string,
  after: string,
): Promise<boolean> {
  const r = await runGit(
    deps.git,
    ['log', '-z', '--format=%B', '-n', '1000', `${REFS.consumed}${id}`, '--'],
    { allowFail: true },
  );
  if (r.code !== 0) return false;
  return r.stdout
    .toString('utf8')
    .split('\0')
    .some((m) => {
      try {
        const u = parseUseRecord(m.replace(/\n+$/, '\n'));
        return u.ref === ref && u.oldSha === before && u.newSha === after;
      } catch {
        return false;
      }
    });
}

/** The bypass detector on pushes to protected branches. */
export async function runDetect(deps: Deps): Promise<Outcome> {
  const p = deps.event.payload;
  const ref = String(p.ref ?? '');
  const before = String(p.before ?? '');
  const after = String(p.after ?? '');
  if (!ref.startsWith('refs/') || !OID.test(before) || !OID.test(after)) {
    throw new BreakglassError('USAGE', 'the push event payload has no ref, before and after');
  }
  const created = p.created === true || ZERO_SHA.test(before);
  const deleted = p.deleted === true || ZERO_SHA.test(after);
  const { remote, policyPath } = deps.inputs;
  await deps.out.group('git-breakglass: fetch', () => fetchAudit(deps.git, remote));

  // DESIGN §5: the policy as it was on the branch before this push (never the pushed commits).
  let policySha: string | null = null;
  if (!created && (await ensureCommit(deps.git, remote, before, ref))) policySha = before;
  if (!policySha) {
    const repo = p.repository as { default_branch?: unknown } | undefined;
    const def =
      typeof repo?.default_branch === 'string' ? `refs/heads/${repo.default_branch}` : null;
    if (!created)
      deps.out.warning(`cannot fetch ${short(before)}; reading the policy from the default branch`);
    if (def && def !== ref) policySha = await fetchTip(deps.git, remote, def);
  }
  if (!policySha) {
    throw new BreakglassError(
      'POLICY_MISSING',
      `cannot find the policy that governed ${ref} before this push`,
      {
        hint: 'the default branch must carry .breakglass/policy.yml',
      },
    );
  }
  const policy = await loadPolicyAt(deps, policySha);
  const rule = protectionFor(policy, ref);
  const quiet = (title: string): Outcome => ({
    decision: 'normal',
    ticket: '',
    events: [],
    rows: [],
    problems: [],
    title,
  });
  if (!rule) return quiet(`${ref} is not protected by the policy`);
  if (!deleted && !(await ensureCommit(deps.git, remote, after, ref))) {
    throw new BreakglassError(
      'GIT_FAILED',
      `cannot fetch the pushed commit ${after} from ${remote}`,
    );
  }

  // Cross-check with the activity API where the token may read it (it knows force pushes and
  // the real actor); the event alone is enough when it can't.
  const activity = await deps.github.listActivity(ref);
  const entry = activity?.find((a) => a.after === after && a.before === before) ?? null;
  const login = pusherLogin(deps, entry?.actor ?? null);

  let fastForward = false;
  if (!created && !deleted) {
    fastForward =
      p.forced !== true &&
      entry?.type !== 'force_push' &&
      (await ensureCommit(deps.git, remote, before)) &&
      (await isAncestor(deps.git, before, after));
  }
  // Workflows, local actions and CODEOWNERS count as policy (see control.ts), as in the gate.
  const touchesPolicy =
    !deleted && (await changedControlFiles(deps.git, policySha, after, policyPath)).length > 0;

  const branch = ref.replace(/^refs\/heads\//, '');
  let cls: Classification = {
    how: created ? 'create' : deleted ? 'delete' : fastForward ? 'direct-push' : 'force-push',
    pulls: [],
    allReviewed: false,
  };
  if (cls.how === 'direct-push') {
    cls = await classifyMerge(deps, policy, branch, before, after, rule.requiredApprovals);
    deps.out.info(
      `${cls.how === 'pr-merge' ? `pull request(s) ${cls.pulls.map((x) => `#${x.pull.number}`).join(', ')}` : 'no merged pull request'} found in ${cls.lookups ?? 0} commit look-up(s)`,
    );
  }
  const update: RefUpdate = {
    ref,
    oldSha: before,
    newSha: after,
    fastForward,
    touchesPolicy,
    unreviewedMerge: cls.how === 'pr-merge' && !cls.allReviewed,
  };
  const prNote = cls.pulls
    .map((x) => `#${x.pull.number} (${x.approvers.length}/${rule.requiredApprovals} approvals)`)
    .join(', ');
  // A merged pull request with the required reviews is the normal path on GitHub.
  if (cls.how === 'pr-merge' && cls.allReviewed && !touchesPolicy) {
    const o = quiet(`reviewed merge of ${prNote} into ${ref}`);
    deps.out.info(o.title);
    return o;
  }

  // Judged when GitHub received it: a ticket valid at that moment counts however late the job ran.
  const received = receivedAt(deps, cls, entry?.timestamp ?? null);
  const now = received.at;
  deps.out.info(`judged at ${formatTime(now)} (${received.source})`);
  const headCommit = p.head_commit as { message?: unknown } | undefined;
  const named = [
    ...namedTicketIds(typeof headCommit?.message === 'string' ? headCommit.message : ''),
    ...cls.pulls.flatMap((x) => namedTicketIds(x.pull.body)),
  ];
  const candidates = await loadCandidates(deps.git, policy, now, { ref, named });
  for (const [i, c] of candidates.entries()) {
    if ('ticket' in c && (await alreadyUsedHere(deps, c.id, ref, before, after))) {
      candidates[i] = { ...c, state: { ...c.state, usesConsumed: c.state.usesConsumed - 1 } };
    }
  }
  // For a pull request merge the ticket may be held by the author or the merger, and may pin the
  // reviewed head commit rather than the merge commit GitHub made.
  const logins = [login, ...cls.pulls.map((x) => x.pull.author)].filter(
    (l, i, a) => a.indexOf(l) === i,
  );
  const pins = [after, ...(cls.pulls.length === 1 ? [cls.pulls[0]!.pull.headSha] : [])];
  const decideAt = (cands: Candidate[], at: number) => {
    let decision: PushDecision | null = null;
    const who = login;
    for (const l of logins) {
      const pusher: Pusher = {
        known: true,
        login: l,
        principal: principalForLogin(policy, l)?.name,
      };
      for (const pin of fastForward ? pins : [after]) {
        const d = decidePush({
          policy,
          updates: [{ ...update, newSha: pin }],
          pusher,
          candidates: cands,
          now: at,
        });
        if (!decision) decision = d;
        if (d.accepted) return { decision: d, who: l };
      }
    }
    return { decision: decision!, who };
  };
  const { decision, who: usedLogin } = decideAt(candidates, now);
  // A pull request that passed the gate on a ticket but was merged after that ticket expired or
  // was revoked is its own finding (the merge came too late), not an unticketed merge.
  let ended: { id: string; why: string } | null = null;
  if (!decision.accepted && cls.how === 'pr-merge') {
    for (const c of candidates) {
      if (!('ticket' in c)) continue;
      const expires = Date.parse(c.ticket.payload.expiresAt);
      const alive = { ...c, state: { ...c.state, revoked: false } };
      if (decideAt([alive], Math.min(now, expires - 1000)).decision.accepted) {
        ended = {
          id: c.id,
          why: c.state.revoked
            ? 'was revoked'
            : `expired at ${c.ticket.payload.expiresAt}, merged at ${formatTime(now)}`,
        };
        break;
      }
    }
  }
  const d = decision!.updates[0]!;
  const pusherName = principalForLogin(policy, usedLogin)?.name;
  const pusherText =
    pusherName && pusherName !== usedLogin ? `${usedLogin} (${pusherName})` : usedLogin;
  if (d.path === 'normal' || d.path === 'unprotected') {
    const o = quiet(`${d.kind} of ${ref} by ${pusherText} on the normal path`);
    deps.out.info(o.title);
    return o;
  }

  // The commits the event annotates: what the push brought in (or the old tip for a delete).
  let commits: string[] = [];
  if (!deleted) {
    const base = created ? policySha : before;
    const have = created || (await ensureCommit(deps.git, remote, before));
    commits = (
      await revList(deps.git, have ? [after, '--not', base] : [after, '-1'], MAX_ANNOTATED)
    ).ids;
    if (commits.length === 0) commits = [after];
  }
  let dropped: { ids: string[]; total: number } | undefined;
  if (d.kind === 'force' && (await ensureCommit(deps.git, remote, before))) {
    dropped = await revList(deps.git, [before, '--not', after], MAX_DROPPED);
  }
  const base: AuditEvent = {
    kind: 'violation',
    actions: [...d.actions],
    ref,
    oldSha: before,
    newSha: after,
    pusher: pusherText,
    approvers: [],
    recordedAt: formatTime(deps.now()),
    recordedBy: deps.recordedBy,
    ...(d.kind === 'force' ? { replacedTip: before } : {}),
    ...(dropped ? { dropped: dropped.ids, droppedCount: dropped.total } : {}),
  };
  const how = {
    create: 'created',
    delete: 'deleted',
    'force-push': 'force-pushed',
    'pr-merge': `merged ${prNote} without the required reviews`,
    'direct-push': 'pushed directly (no reviewed pull request)',
  }[cls.how];
  const kindText = ended ? 'merged-after-ticket-ended' : cls.how;
  const howText = ended ? `merged ${prNote} after ticket ${ended.id} ended (${ended.why})` : how;
  const why = ended
    ? `ticket ${ended.id} ${ended.why}`
    : `${explain(d, named)}; to cover such a change: ${requestCommand(policy, ref, d.actions, deleted ? null : after, `covers ${short(deleted ? before : after)} on ${branch}`)}`;

  let event: AuditEvent;
  let ticketInfo: VerifiedTicket | undefined;
  if (d.path === 'breakglass') {
    const c = candidates.find((x) => x.id === d.ticketId);
    ticketInfo = c && 'ticket' in c ? c.ticket : undefined;
    const t = ticketInfo!;
    event = {
      ...base,
      kind: 'breakglass',
      ticketId: d.ticketId!,
      requester: signerKey(t, t.payload.requester),
      approvers: countedApprovers(t, policy).map((a) => signerKey(t, a)),
      reason: t.payload.reason,
      ...(t.payload.incident ? { incident: t.payload.incident } : {}),
      window: { notBefore: t.payload.notBefore, expiresAt: t.payload.expiresAt },
    };
  } else {
    event = {
      ...base,
      violation: `${ref} ${howText} by ${pusherText} without a valid break-glass ticket (${d.actions.join(', ')}): ${ended ? why : explain(d, named)}`,
    };
  }
  const items: RecordItem[] = [{ event, commits }];
  // A note that cannot be pushed (a ruleset on refs/notes, a lost race six times) must not lose
  // the finding: it fails the job with an annotation naming the commit, in the summary and issue.
  const problems: string[] = [];
  if (deps.inputs.notes) {
    try {
      const r = await deps.out.group('git-breakglass: audit note', () =>
        recordAndPush(deps, items),
      );
      deps.out.info(
        r.written
          ? `audit note written on ${commits.length} commit(s) and pushed to ${deps.inputs.remote}`
          : 'audit note already recorded (re-run)',
      );
    } catch (e) {
      const msg = isBreakglassError(e) ? `${e.message} [${e.code}]` : (e as Error).message;
      problems.push(
        `The audit note for commit ${short(commits[0] ?? before)} on ${ref} (${event.kind === 'breakglass' ? `break-glass use of ticket ${event.ticketId ?? ''}` : 'violation'}) was NOT recorded: ${msg}`,
      );
    }
  }
  const row = {
    ref,
    commits: `${commits.length ? commits.map(short).slice(0, 5).join(' ') : short(before)}${commits.length > 5 ? ` (+${commits.length - 5})` : ''}`,
    actor: pusherText,
    ticket: event.ticketId ?? '',
    approvers: event.approvers.map((a) => a.principal).join(', '),
    reason: event.reason ?? '',
    expiry: event.window?.expiresAt ?? '',
    outcome:
      (d.path === 'breakglass' ? `${cls.how} under ticket` : `VIOLATION: ${kindText}`) +
      (problems.length ? ' (NOTE NOT RECORDED)' : ''),
  };
  if (d.path === 'breakglass') {
    return {
      decision: 'breakglass',
      ticket: event.ticketId!,
      events: [event],
      rows: [row],
      problems,
      title: `break-glass ${d.actions.join(' + ')} on ${ref} ${problems.length ? 'NOT recorded' : 'recorded'}`,
    };
  }
  const sentence =
    `${ended ? 'Merged after the ticket ended' : 'Unticketed'} ${d.actions.join(' + ')} on ${ref}: commit ${after === before ? short(after) : short(deleted ? before : after)} ` +
    `${howText} by ${pusherText}; ${ended ? '' : 'missing ticket: '}${why}`;
  if (deps.inputs.openIssue) {
    try {
      const issue = await deps.github.createIssue(
        `Break-glass violation: ${kindText} on ${ref} by ${usedLogin}`,
        [
          `The git-breakglass detector found a change to the protected ref \`${ref}\` that no valid ticket covers.`,
          '',
          `- update: \`${before}..${after}\``,
          `- how: ${howText}`,
          `- actor: ${pusherText}`,
          `- actions: ${d.actions.join(', ')}`,
          `- judged at: ${formatTime(now)} (${received.source})`,
          `- why no ticket counts: ${why}`,
          `- run: ${deps.event.runUrl}`,
          '',
          problems.length
            ? `**The audit note could not be pushed**: ${problems.join(' ')}`
            : 'The audit note (`git log --notes=breakglass`) records it. Review the change, then restore the branch or document the exception.',
        ].join('\n'),
      );
      deps.out.info(`opened issue #${issue.number}: ${issue.url}`);
    } catch (e) {
      deps.out.warning(`could not open an issue: ${(e as Error).message}`);
    }
  }
  return {
    decision: 'violation',
    ticket: '',
    events: [event],
    rows: [row],
    problems: [sentence, ...problems],
    title: `break-glass violation on ${ref}`,
  };
}
