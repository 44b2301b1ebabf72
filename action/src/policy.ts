import { parsePolicy, type Policy } from '../../src/policy/policy.ts';
import type { Deps } from './deps.ts';
import { readPolicyText } from './remote.ts';

/**
 * Loads the policy at a commit of the protected branch. A policy naming another repository is
 * suspicious (copied from elsewhere: tickets signed for that repository would count here), so
 * the job says so.
 */
export async function loadPolicyAt(deps: Deps, commit: string): Promise<Policy> {
  const { policyPath } = deps.inputs;
  const policy = parsePolicy(await readPolicyText(deps.git, commit, policyPath), policyPath);
  const here = `${deps.event.owner}/${deps.event.repo}`;
  if (policy.repository.toLowerCase() !== here.toLowerCase()) {
    deps.out.warning(
      `${policyPath} names repository "${policy.repository}", but this is ${here}; tickets must name "${policy.repository}"`,
      { title: 'git-breakglass policy' },
    );
  }
  return policy;
}
