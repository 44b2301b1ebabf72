import { policyFromBytes } from '../../src/policy/load.ts';
import type { Policy } from '../../src/policy/policy.ts';
import type { Deps } from './deps.ts';
import { readPolicyBytes } from './remote.ts';

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
