import type { AuditEvent } from '../../src/audit/note.ts';
import { BreakglassError } from '../../src/errors.ts';
import { gitText, runGit } from '../../src/git/git.ts';
import type { RecordItem } from '../../src/git/record.ts';
import { REFS } from '../../src/git/store.ts';
import {
  principalForLogin,
  protectionFor,
  type Policy,
  type ProtectedRule,
} from '../../src/policy/policy.ts';
import { formatTime } from '../../src/ticket/time.ts';
import type { Deps } from './deps.ts';
import { approversOf, pullsOf } from './detect.ts';
import { changedControlFiles } from './control.ts';
import type { ActivityInfo, PullInfo } from './github.ts';
import { defaultBranchOf, policyForBranch } from './policy.ts';
import { recordAndPush } from './record.ts';
import {
  ensureCommit,
  fetchAudit,
  isAncestor,
  pushWithLease,
  remoteRefs,
  revList,
} from './remote.ts';
import type { Outcome, SummaryRow } from './report.ts';

/**
 * Where the sweep keeps the last commit it checked per branch. Outside `refs/breakglass/` (that
 * namespace holds signed records a server hook guards); only this Action writes it.
 */
export const SWEEP_PREFIX = 'refs/breakglass-sweep/';

const MAX_ANNOTATIONS = 50;
const MAX_ISSUE_ROWS = 100;
// The summary table and the `events` output (GitHub caps a step output at 1 MiB): the first
// findings; the notes hold them all.
const MAX_LISTED = 1000;

/** One commit on a protected branch that nothing accounts for. */
export interface SweepFinding {
  readonly ref: string;
  readonly commit: string;
  readonly parent: string;
  readonly reason: string;
}

function short(sha: string): string {
  return sha.slice(0, 12);
}

/** Commits that carry a break-glass note (any event: a recorded use or an already-flagged violation). */
async function notedCommits(deps: Deps): Promise<Set<string>> {
  const r = await runGit(deps.git, ['notes', `--ref=${REFS.notes}`, 'list'], { allowFail: true });
  if (r.code !== 0) return new Set();
  return new Set(
    r.stdout
      .toString('utf8')
      .split('\n')
      .map((l) => l.split(' ')[1])
      .filter((x): x is string => !!x),
  );
}

/**
 * Where a first sweep of a branch starts: the commit that added the policy file on its
 * first-parent line (earlier commits were not governed by it). Null: no such commit, so the
 * sweep starts at the tip.
 */
async function adoption(deps: Deps, tip: string): Promise<string | null> {
  const out = await gitText(deps.git, [
    'log',
    '--first-parent',
    '--diff-filter=A',
    '--format=%H',
    tip,
    '--',
    deps.inputs.policyPath.replace(/^\.\//, ''),
  ]);
  const all = out.split('\n').filter(Boolean);
  return all[all.length - 1] ?? null;
}

/**
 * True when the activity API shows the commit arrived in a plain fast-forward push by a principal
 * the rule lists as a normal pusher, changing no control file: the engine's normal path, for
 * which the detector writes no note. (The API keeps recent entries only; older such commits are
 * reported.)
 */
async function normalPush(
  deps: Deps,
  policy: Policy,
  rule: ProtectedRule,
  activity: readonly ActivityInfo[],
  commit: string,
): Promise<boolean> {
  for (const a of activity) {
    if (a.type !== 'push' || !a.actor) continue;
    const who = principalForLogin(policy, a.actor)?.name;
    if (!who || !rule.pushers.includes(who)) continue;
    if (!(await ensureCommit(deps.git, deps.inputs.remote, a.after))) continue;
    if (!(await ensureCommit(deps.git, deps.inputs.remote, a.before))) continue;
    if (!(await isAncestor(deps.git, a.before, a.after))) continue;
    if (!(await isAncestor(deps.git, commit, a.after))) continue;
    if (await isAncestor(deps.git, commit, a.before)) continue;
    const control = await changedControlFiles(deps.git, a.before, a.after, deps.inputs.policyPath);
    if (control.length === 0) return true;
  }
  return false;
}

/**
 * The scheduled sweep (`mode: sweep`): walks the first-parent history of every branch the policy
 * protects since the last swept commit (kept on `refs/breakglass-sweep/heads/<branch>`, so each
 * run only looks at what is new) and reports every commit that has neither a merged pull request
 * with the required approvals nor a break-glass note. That is what catches a detector run that
 * never happened (a workflow edited away, a run cancelled or never triggered). Each finding gets a
 * violation note (so later sweeps and `bg-sign audit` see it), an error annotation, a summary row
 * and optionally one issue, and the job fails.
 */
export async function runSweep(deps: Deps): Promise<Outcome> {
  const { remote } = deps.inputs;
  const def = defaultBranchOf(deps);
  const heads = await deps.out.group('git-breakglass: fetch', async () => {
    await fetchAudit(deps.git, remote);
    return remoteRefs(deps.git, remote, ['refs/heads/*', `${SWEEP_PREFIX}*`]);
  });
  const head =
    def ??
    /^ref: (refs\/heads\/\S+)\tHEAD$/m.exec(
      await gitText(deps.git, ['ls-remote', '--symref', remote, 'HEAD']),
    )?.[1];
  if (!head) {
    throw new BreakglassError('POLICY_MISSING', `cannot tell the default branch of ${remote}`);
  }
  const main = await policyForBranch(deps, head);
  const branches = [...heads.keys()]
    .filter((r) => r.startsWith('refs/heads/') && protectionFor(main.policy, r))
    .sort();
  const noted = await notedCommits(deps);
  const now = deps.now();
  const findings: SweepFinding[] = [];
  const advance = new Map<string, { from: string | null; to: string }>();
  const checked: string[] = [];
  for (const ref of branches) {
    await deps.out.group(`git-breakglass: sweep ${ref}`, async () => {
      const bp = await policyForBranch(deps, ref);
      const rule = protectionFor(bp.policy, ref);
      const tip = bp.tip;
      const mark = `${SWEEP_PREFIX}${ref.slice('refs/'.length)}`;
      const last = heads.get(mark) ?? null;
      advance.set(mark, { from: last, to: tip });
      if (!rule) return;
      let from: string | null;
      let rewritten = false;
      if (last && (await ensureCommit(deps.git, remote, last, mark))) {
        from = last;
        rewritten = !(await isAncestor(deps.git, last, tip));
      } else {
        from = await adoption(deps, tip);
        if (!from) {
          deps.out.info(`${ref}: no commit adds the policy file; first sweep starts at the tip`);
          return;
        }
      }
      const line = (
        await revList(deps.git, ['--first-parent', tip, '--not', from], Number.MAX_SAFE_INTEGER)
      ).ids;
      checked.push(`${ref}: ${line.length} commit(s) since ${short(from)}`);
      // A force push the detector recorded left notes on the commits it brought in.
      if (rewritten && !line.some((c) => noted.has(c))) {
        findings.push({
          ref,
          commit: tip,
          parent: from,
          reason: `history rewritten: ${ref} no longer contains ${short(from)}, the last swept commit, and no note records a force push`,
        });
      }
      const open = line.filter((c) => !noted.has(c));
      if (open.length === 0) return;
      const branch = ref.slice('refs/heads/'.length);
      const found = await pullsOf(deps, branch, tip, open, false);
      const approvals = new Map<number, string[]>();
      const approversFor = async (p: PullInfo) => {
        if (!approvals.has(p.number))
          approvals.set(p.number, await approversOf(deps, bp.policy, p));
        return approvals.get(p.number)!;
      };
      let activity: readonly ActivityInfo[] | null | undefined;
      // Oldest first, as people read history.
      for (const c of [...open].reverse()) {
        const parent = (await gitText(deps.git, ['rev-parse', `${c}^1`]).catch(() => '')) || c;
        const pr = found.owner.get(c);
        if (!pr) {
          activity ??= (await deps.github.listActivity(ref)) ?? [];
          if (rule.pushers.length && (await normalPush(deps, bp.policy, rule, activity, c))) {
            continue;
          }
          findings.push({
            ref,
            commit: c,
            parent,
            reason:
              'no merged pull request and no break-glass note (a direct push nobody recorded)',
          });
          continue;
        }
        const got = await approversFor(pr);
        if (got.length < rule.requiredApprovals) {
          findings.push({
            ref,
            commit: c,
            parent,
            reason: `pull request #${pr.number} was merged with ${got.length} of ${rule.requiredApprovals} required approval(s) and no break-glass note`,
          });
        }
      }
    });
  }

  const items: RecordItem[] = findings.map((f) => ({
    event: {
      kind: 'violation',
      actions: ['push'],
      ref: f.ref,
      oldSha: f.parent,
      newSha: f.commit,
      pusher: 'unknown (found by the sweep)',
      approvers: [],
      recordedAt: formatTime(now),
      recordedBy: deps.recordedBy,
      violation: `sweep: commit ${f.commit} on ${f.ref}: ${f.reason}`,
    } satisfies AuditEvent,
    commits: [f.commit],
  }));
  const problems = findings.map((f) => `Commit ${short(f.commit)} on ${f.ref}: ${f.reason}`);
  if (deps.inputs.notes) {
    try {
      if (items.length) await recordAndPush(deps, items);
      // Recorded (or nothing to record): the next sweep starts here.
      for (const [mark, { from, to }] of advance) {
        if (from === to) continue;
        await runGit(deps.git, ['update-ref', mark, to]);
        const r = await pushWithLease(deps.git, remote, new Map([[mark, from]]));
        // Another sweep moved it meanwhile: it checked the same commits; the next run goes on.
        if (!r.ok) deps.out.warning(`could not move ${mark}: ${r.detail.slice(0, 300)}`);
      }
    } catch (e) {
      problems.push(
        `The sweep's findings were NOT recorded as notes (the next sweep reports them again): ${(e as Error).message}`,
      );
    }
  }
  if (findings.length && deps.inputs.openIssue) {
    const listed = findings
      .slice(0, MAX_ISSUE_ROWS)
      .map((f) => `- \`${f.commit}\` on \`${f.ref}\`: ${f.reason}`);
    if (findings.length > MAX_ISSUE_ROWS) {
      listed.push(`- ... and ${findings.length - MAX_ISSUE_ROWS} more`);
    }
    try {
      const issue = await deps.github.createIssue(
        `Break-glass sweep: ${findings.length} commit(s) without review or record`,
        [
          'The scheduled sweep found commits on protected branches with neither a reviewed pull request nor a break-glass note:',
          '',
          ...listed,
          '',
          `Run: ${deps.event.runUrl}`,
        ].join('\n'),
      );
      deps.out.info(`opened issue #${issue.number}: ${issue.url}`);
    } catch (e) {
      deps.out.warning(`could not open an issue: ${(e as Error).message}`);
    }
  }
  if (findings.length > MAX_LISTED) {
    checked.push(
      `${findings.length - MAX_LISTED} more finding(s) are not listed here; each has its note (git log --notes=breakglass).`,
    );
  }
  const rows: SummaryRow[] = findings.slice(0, MAX_LISTED).map((f) => ({
    ref: f.ref,
    commits: short(f.commit),
    actor: '',
    ticket: '',
    approvers: '',
    reason: f.reason,
    expiry: '',
    outcome: 'VIOLATION: unaccounted commit',
  }));
  if (problems.length > MAX_ANNOTATIONS) {
    const rest = problems.length - MAX_ANNOTATIONS;
    problems.splice(MAX_ANNOTATIONS, rest, `... and ${rest} more (see the job summary)`);
  }
  return {
    decision: findings.length ? 'violation' : 'normal',
    ticket: '',
    events: findings.slice(0, MAX_LISTED),
    rows,
    notes: checked,
    problems,
    title: findings.length
      ? `sweep found ${findings.length} commit(s) with neither a reviewed pull request nor a break-glass note`
      : `sweep: every commit on ${branches.length} protected branch(es) is reviewed or recorded`,
  };
}
