import type { Failure } from '../engine/evaluate.ts';
import { isBreakglassError } from '../errors.ts';
import type { CatFileBatch } from '../git/git.ts';
import { policyFromBytes, policyLockout, POLICY_PATH } from '../policy/load.ts';
import type { ClassifiedUpdate } from './classify.ts';

/** A protected-ref update refused for the policy it carries. */
export interface PolicyRefusal {
  readonly ref: string;
  readonly failure: Failure;
}

/**
 * L6-L7 (docs/rules.md): each protected-ref update that changes `.breakglass/` must leave a
 * policy the one loader accepts and under which a ticket can still be made; otherwise the push
 * that lands it (even with a valid `change-policy` ticket) would turn every later push into
 * POLICY_INVALID, the fix included. `policyBranch` is the branch the server reads its policy
 * from (none when pinned): there the policy must also protect that branch (L5) and may not be
 * removed. Reads the pushed objects: `reader` must run in the hook's quarantine environment.
 */
export async function checkPushedPolicies(
  reader: CatFileBatch,
  updates: readonly ClassifiedUpdate[],
  policyBranch: string | undefined,
): Promise<PolicyRefusal[]> {
  const refusals: PolicyRefusal[] = [];
  for (const u of updates) {
    if (!u.touchesPolicy || u.kind === 'delete') continue;
    const governs = u.ref === policyBranch;
    const source = `${POLICY_PATH} (pushed ${u.ref} ${u.newSha.slice(0, 12)})`;
    const refuse = (code: Failure['code'], rule: string, message: string) =>
      refusals.push({ ref: u.ref, failure: { code, rule, message } });
    const blob = await reader.read(`${u.newSha}:${POLICY_PATH}`);
    if (!blob) {
      if (governs) {
        refuse(
          'PUSHED_POLICY_INVALID',
          'L6',
          `${source}: the push removes the policy the server reads from ${u.ref}; every later push would be refused`,
        );
      }
      continue;
    }
    if (blob.type !== 'blob') {
      refuse('PUSHED_POLICY_INVALID', 'L6', `${source} is a ${blob.type}, not a file`);
      continue;
    }
    try {
      const policy = policyFromBytes(blob.data, source, governs ? { branch: u.ref } : {});
      const lockout = policyLockout(policy);
      if (lockout) refuse('POLICY_LOCKOUT', 'L7', `${source}: ${lockout}`);
    } catch (e) {
      if (!isBreakglassError(e)) throw e;
      refuse('PUSHED_POLICY_INVALID', 'L6', e.message);
    }
  }
  return refusals;
}
