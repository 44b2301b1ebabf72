import { BreakglassError, isBreakglassError } from '../errors.ts';
import { parsePolicy, protectionFor, type Policy } from './policy.ts';
import { MAX_POLICY_BYTES } from './yaml.ts';

/** Where a repository keeps its policy (DESIGN §5). */
export const POLICY_PATH = '.breakglass/policy.yml';

export interface PolicyOrigin {
  /**
   * The branch the policy was read from (`refs/heads/main`), when it governs that branch: the
   * policy must then protect it (L5, TM6). Absent for a pinned file or `--policy FILE`.
   */
  readonly branch?: string | undefined;
}

/**
 * The one policy loader (docs/rules.md L1-L5): every edge (hook, CLI, Action, the hook's cache)
 * finds the bytes its own way and hands them here, so all of them accept and refuse the same
 * policies. Pure: no disk, no git. Every failure is `POLICY_INVALID` naming `source`.
 */
export function policyFromBytes(
  bytes: Uint8Array,
  source: string,
  origin: PolicyOrigin = {},
): Policy {
  // L1: bounded before anything is interpreted.
  if (bytes.length > MAX_POLICY_BYTES) {
    throw new BreakglassError('POLICY_INVALID', `${source}: larger than ${MAX_POLICY_BYTES} bytes`);
  }
  // L2: strict UTF-8; a lenient decoder would turn a stray Latin-1 byte into U+FFFD and one
  // reader would accept what another refuses.
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new BreakglassError('POLICY_INVALID', `${source}: not valid UTF-8`);
  }
  // L3 (YAML) and L4 (schema).
  let policy: Policy;
  try {
    policy = parsePolicy(text, source);
  } catch (e) {
    if (isBreakglassError(e) && e.code === 'POLICY_INVALID') throw e;
    throw new BreakglassError(
      'POLICY_INVALID',
      `${source}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  // L5 (TM6): a policy read from a branch governs that branch. If it does not protect it, anyone
  // who may push there rewrites the policy (drops every protection) and then pushes at will.
  if (origin.branch !== undefined && !protectionFor(policy, origin.branch)) {
    throw new BreakglassError(
      'POLICY_INVALID',
      `${source}: the policy is read from ${origin.branch}, which it does not protect; anyone who can push ${origin.branch} could rewrite it`,
      {
        hint: `add ${origin.branch} to a protected[].refs entry, or pin the policy: git config breakglass.policy FILE`,
      },
    );
  }
  return policy;
}

/**
 * Why no ticket could ever be valid under `policy` (docs/rules.md S9), or null when one can:
 * some principal with a key and a requester role, and besides them at least `approvals`
 * principals with a key and an approver role. A pushed policy failing this would leave the
 * repository with no way to authorise the next `change-policy` push: only a server admin could
 * recover.
 */
export function policyLockout(policy: Policy): string | null {
  const { requesterRoles, approverRoles, approvals } = policy.tickets;
  const signers = [...policy.principals.values()].filter((p) => p.keys.length > 0);
  const requesters = signers.filter((p) => p.roles.some((r) => requesterRoles.includes(r)));
  const approvers = signers.filter((p) => p.roles.some((r) => approverRoles.includes(r)));
  if (requesters.length === 0) {
    return `no principal with a key holds a requester role (${requesterRoles.join(', ')}): nobody could request a ticket`;
  }
  // T3: the requester's own signature never counts as an approval.
  const best = Math.max(
    ...requesters.map((r) => approvers.filter((a) => a.name !== r.name).length),
  );
  if (best < approvals) {
    return `tickets need ${approvals} approval(s) from principals with a key and an approver role (${approverRoles.join(', ')}) other than the requester, but at most ${best} exist`;
  }
  return null;
}
