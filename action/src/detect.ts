import { parseUseRecord } from '../../src/audit/consumed.ts';
import type { AuditEvent } from '../../src/audit/note.ts';
import { REFS } from '../../src/git/store.ts';
import { decidePush, type PushDecision, type UpdateDecision } from '../../src/engine/decide.ts';
import { countedApprovers, type Pusher } from '../../src/engine/evaluate.ts';
import { ZERO_SHA, type RefUpdate } from '../../src/engine/update.ts';
import { BreakglassError } from '../../src/errors.ts';
import type { RecordItem } from '../../src/git/record.ts';
import { gitText, runGit } from '../../src/git/git.ts';
import { principalForLogin, protectionFor, type Policy } from '../../src/policy/policy.ts';
import { formatTime } from '../../src/ticket/time.ts';
import type { VerifiedTicket } from '../../src/ticket/verify.ts';
import type { Deps } from './deps.ts';
import type { PullInfo } from './github.ts';
import { loadPolicyAt } from './policy.ts';
import { recordAndPush } from './record.ts';
import { ensureCommit, fetchAudit, fetchTip, isAncestor, revList } from './remote.ts';
import type { Outcome } from './report.ts';
import { countApprovals } from './reviews.ts';
import { loadCandidates, namedTicketIds } from './tickets.ts';

const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
// Each first-parent commit of a push costs one API call to find its pull request; a push with
// more than this many is treated as a direct push (it needs a ticket), never guessed at.
const MAX_PR_LOOKUPS = 20;
// Commits annotated per event; a bigger push is noted on its newest commits and says so.
const MAX_ANNOTATED = 10_000;
const MAX_DROPPED = 50;

/** How the update came about, as far as GitHub tells. */
export interface Classification {
  readonly how: 'create' | 'delete' | 'force-push' | 'pr-merge' | 'direct-push';
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

async function classifyMerge(
  deps: Deps,
  policy: Policy,
  branch: string,
  before: string,
  after: string,
  required: number,
): Promise<Classification> {
  const firstParents = await revList(
    deps.git,
    ['--first-parent', after, '--not', before],
    MAX_PR_LOOKUPS + 1,
  );
  if (firstParents.total === 0 || firstParents.total > MAX_PR_LOOKUPS) {
    return { how: 'direct-push', pulls: [], allReviewed: false };
  }
  const pulls = new Map<number, PullInfo>();
  for (const sha of firstParents.ids) {
    const merged = (await deps.github.pullsForCommit(sha)).filter(
      (p) => p.mergedAt !== null && p.baseRef === branch,
    );
    // Prefer the pull request GitHub merged as exactly this commit.
    const pr =
      merged.find((p) => p.mergeCommitSha === sha) ??
      merged[0] ??
      (await pullNamedBy(deps, sha, branch));
    if (!pr) return { how: 'direct-push', pulls: [], allReviewed: false };
    pulls.set(pr.number, pr);
  }
  const judged = [];
  for (const pull of pulls.values()) {
    const count = countApprovals(await deps.github.listReviews(pull.number), pull.author, policy);
    judged.push({ pull, approvers: count.approvers });
  }
  return {
    how: 'pr-merge',
    pulls: judged,
    allReviewed: judged.every((j) => j.approvers.length >= required),
  };
}

function signerKey(t: VerifiedTicket, principal: string): { principal: string; keyid: string } {
  const s = t.signers.find((x) => x.principal === principal);
  return { principal, keyid: s?.keyid ?? 'unknown' };
}

function explain(d: UpdateDecision): string {
  return d.rejections
    .map(
      (r) =>
        `${r.ticketId ? `ticket ${r.ticketId}` : 'no ticket'}: ${r.failures.map((f) => `${f.message} [${f.code}]`).join('; ')}`,
    )
    .join(' | ');
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
  await fetchAudit(deps.git, remote);

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
  const dir = policyPath.includes('/')
    ? policyPath.slice(0, policyPath.lastIndexOf('/') + 1)
    : policyPath;
  const touchesPolicy =
    !deleted &&
    (
      await gitText(deps.git, ['diff', '--name-only', policySha, after, '--', dir, '.breakglass/'])
    ).trim() !== '';

  const branch = ref.replace(/^refs\/heads\//, '');
  let cls: Classification = {
    how: created ? 'create' : deleted ? 'delete' : fastForward ? 'direct-push' : 'force-push',
    pulls: [],
    allReviewed: false,
  };
  if (cls.how === 'direct-push') {
    cls = await classifyMerge(deps, policy, branch, before, after, rule.requiredApprovals);
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

  const now = deps.now();
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
  let decision: PushDecision | null = null;
  let usedLogin = login;
  for (const l of logins) {
    const pusher: Pusher = { known: true, login: l, principal: principalForLogin(policy, l)?.name };
    for (const pin of fastForward ? pins : [after]) {
      const d = decidePush({
        policy,
        updates: [{ ...update, newSha: pin }],
        pusher,
        candidates,
        now,
      });
      if (!decision) decision = d;
      if (d.accepted) {
        decision = d;
        usedLogin = l;
        break;
      }
    }
    if (decision?.accepted) break;
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
    recordedAt: formatTime(now),
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
      violation: `${ref} ${how} by ${pusherText} without a valid break-glass ticket (${d.actions.join(', ')}): ${explain(d)}`,
    };
  }
  const items: RecordItem[] = [{ event, commits }];
  if (deps.inputs.notes) {
    const r = await recordAndPush(deps, items);
    deps.out.info(
      r.written
        ? `audit note written on ${commits.length} commit(s) and pushed to ${deps.inputs.remote}`
        : 'audit note already recorded (re-run)',
    );
  }
  const row = {
    ref,
    commits: `${commits.length ? commits.map(short).slice(0, 5).join(' ') : short(before)}${commits.length > 5 ? ` (+${commits.length - 5})` : ''}`,
    actor: pusherText,
    ticket: event.ticketId ?? '',
    approvers: event.approvers.map((a) => a.principal).join(', '),
    reason: event.reason ?? '',
    expiry: event.window?.expiresAt ?? '',
    outcome: d.path === 'breakglass' ? `${cls.how} under ticket` : `VIOLATION: ${cls.how}`,
  };
  if (d.path === 'breakglass') {
    return {
      decision: 'breakglass',
      ticket: event.ticketId!,
      events: [event],
      rows: [row],
      problems: [],
      title: `break-glass ${d.actions.join(' + ')} on ${ref} recorded`,
    };
  }
  const sentence =
    `Unticketed ${d.actions.join(' + ')} on ${ref}: commit ${after === before ? short(after) : short(deleted ? before : after)} ` +
    `${how} by ${pusherText}; missing ticket: ${explain(d)}`;
  if (deps.inputs.openIssue) {
    try {
      const issue = await deps.github.createIssue(
        `Break-glass violation: ${cls.how} on ${ref} by ${usedLogin}`,
        [
          `The git-breakglass detector found a change to the protected ref \`${ref}\` that no valid ticket covers.`,
          '',
          `- update: \`${before}..${after}\``,
          `- how: ${how}`,
          `- actor: ${pusherText}`,
          `- actions: ${d.actions.join(', ')}`,
          `- why no ticket counts: ${explain(d)}`,
          `- run: ${deps.event.runUrl}`,
          '',
          'The audit note (`git log --notes=breakglass`) records it. Review the change, then restore the branch or document the exception.',
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
    problems: [sentence],
    title: `break-glass violation on ${ref}`,
  };
}
