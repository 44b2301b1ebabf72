import { BreakglassError } from '../../src/errors.ts';
import { runGit } from '../../src/git/git.ts';
import { policyFromBytes } from '../../src/policy/load.ts';
import type { Policy } from '../../src/policy/policy.ts';
import type { Deps } from './deps.ts';
import { fetchTip, readPolicyBytes } from './remote.ts';

/**
 * Loads the policy at a commit of the protected branch. A policy naming another repository is
 * suspicious (copied from elsewhere: tickets signed for that repository would count here), so
 * the job says so. The bytes go through the same loader as the server's and the CLI's; no
 * branch is named for L5 (TM6) because the policy is read at the base of the branch being
 * judged, so a policy that does not protect that branch simply leaves it unprotected.
 */
export async function loadPolicyAt(deps: Deps, commit: string): Promise<Policy> {
  const { policyPath } = deps.inputs;
  const policy = policyFromBytes(await readPolicyBytes(deps.git, commit, policyPath), policyPath);
  const here = `${deps.event.owner}/${deps.event.repo}`;
  if (policy.repository.toLowerCase() !== here.toLowerCase()) {
    deps.out.warning(
      `${policyPath} names repository "${policy.repository}", but this is ${here}; tickets must name "${policy.repository}"`,
      { title: 'git-breakglass policy' },
    );
  }
  return policy;
}

/** The policy that governs a branch now, and which commit's bytes it was read from. */
export interface BranchPolicy {
  readonly policy: Policy;
  /** The commit the policy file was read at. */
  readonly sha: string;
  /** The branch tip the judged change is based on (the same as `sha` unless it fell back). */
  readonly tip: string;
  /** Where it came from, for messages: `<path> at <ref> (<sha>)`. */
  readonly source: string;
}

/**
 * The policy at the **current tip** of a branch (like policy-bot: a policy change on the branch
 * applies to pull requests opened before it), fetched from the remote. A branch without the file
 * (a topic branch cut before the policy existed) is governed by the default branch's policy; a
 * broken file is an error (fail closed), never a fallback.
 */
export async function policyForBranch(deps: Deps, ref: string): Promise<BranchPolicy> {
  const { remote, policyPath } = deps.inputs;
  const tip = await fetchTip(deps.git, remote, ref);
  if (!tip) {
    throw new BreakglassError('GIT_FAILED', `cannot fetch ${ref} from ${remote}`);
  }
  const def = defaultBranchOf(deps);
  const at = async (sha: string, where: string): Promise<BranchPolicy> => ({
    policy: await loadPolicyAt(deps, sha),
    sha,
    tip,
    source: `${policyPath} at ${where} (${sha.slice(0, 12)})`,
  });
  if (!def || def === ref || (await hasFile(deps, tip, policyPath))) return at(tip, ref);
  const defTip = await fetchTip(deps.git, remote, def);
  if (!defTip) return at(tip, ref);
  return at(defTip, def);
}

/** `refs/heads/<default branch>` from the event's repository, when it says. */
export function defaultBranchOf(deps: Deps): string | null {
  const repo = deps.event.payload.repository as { default_branch?: unknown } | undefined;
  return typeof repo?.default_branch === 'string' && repo.default_branch
    ? `refs/heads/${repo.default_branch}`
    : null;
}

async function hasFile(deps: Deps, commit: string, file: string): Promise<boolean> {
  const r = await runGit(deps.git, ['cat-file', '-e', `${commit}:${file.replace(/^\.\//, '')}`], {
    allowFail: true,
  });
  return r.code === 0;
}
