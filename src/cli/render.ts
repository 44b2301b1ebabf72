import type { Policy } from '../policy/policy.ts';
import { formatDuration } from '../policy/duration.ts';
import { hasRole } from '../policy/policy.ts';
import { formatTime } from '../ticket/time.ts';
import type { Style } from './output.ts';
import type { TicketStatus, TicketView } from './tickets.ts';

/** The JSON shape of a ticket (show --json, list --json, request --json). */
export function ticketJson(view: TicketView, policy: Policy): Record<string, unknown> {
  const t = view.ticket;
  return {
    id: view.id,
    ref: view.ref,
    commit: view.sha,
    status: view.status,
    ...(view.error ? { error: { code: view.error.code, message: view.error.message } } : {}),
    ...(t
      ? {
          payload: stripTimes(t.payload),
          payloadDigest: t.payloadDigest,
          signers: signerRows(view).map(({ principal, keyid, role }) => ({
            principal,
            keyid,
            role,
          })),
          unverifiedSignatures: t.unverified.map((i) => ({
            index: i,
            keyid: view.envelope?.signatures[i]?.keyid ?? '',
          })),
          approvers: view.approvers,
          approvalsRequired: policy.tickets.approvals,
          uses: view.uses,
          maxUses: t.payload.maxUses,
          revocation: view.revocation,
          ...(view.revocationError ? { revocationError: view.revocationError } : {}),
          problems: view.signatureFailures,
        }
      : {}),
  };
}

function stripTimes<P extends { times: unknown }>(p: P): Omit<P, 'times'> {
  const { times: _times, ...rest } = p;
  return rest;
}

export type SignerRole = 'requester' | 'approver' | 'not an approver';

/** Each verified signer with the part its signature plays. */
export function signerRows(
  view: TicketView,
): { principal: string; keyid: string; role: SignerRole }[] {
  const t = view.ticket;
  if (!t) return [];
  return t.signers.map((s) => ({
    principal: s.principal,
    keyid: s.keyid,
    role:
      s.principal === t.payload.requester
        ? 'requester'
        : view.approvers.includes(s.principal)
          ? 'approver'
          : 'not an approver',
  }));
}

/** Colours a status word. */
export function statusText(status: TicketStatus, s: Style): string {
  switch (status) {
    case 'active':
      return s.green(status);
    case 'pending approval':
    case 'not yet valid':
      return s.yellow(status);
    case 'invalid':
      return s.red(status);
    default:
      return s.dim(status);
  }
}

/** "in 12m" / "3h ago". */
export function relative(at: number, now: number): string {
  const d = at - now;
  if (Math.abs(d) < 1000) return 'now';
  return d > 0 ? `in ${formatDuration(d)}` : `${formatDuration(-d)} ago`;
}

/** The multi-line human description used by `show` (and after request/approve). */
export function describeTicket(view: TicketView, policy: Policy, now: number, s: Style): string[] {
  const lines: string[] = [];
  lines.push(`${s.bold('ticket')}   ${view.id}  ${statusText(view.status, s)}`);
  lines.push(`ref      ${view.ref} @ ${view.sha.slice(0, 12)}`);
  if (!view.ticket) {
    if (view.error) lines.push(`${s.red(view.error.code)}: ${view.error.message}`);
    return lines;
  }
  const p = view.ticket.payload;
  lines.push(`repo     ${p.repository}`);
  lines.push(`scope    refs: ${p.scope.refs.join(', ')}`);
  lines.push(`         actions: ${p.scope.actions.join(', ')}`);
  lines.push(
    `         commits: ${p.scope.commits ? p.scope.commits.join(', ') : s.dim('any (not pinned)')}`,
  );
  lines.push(`reason   ${p.reason}`);
  if (p.incident) lines.push(`incident ${p.incident}`);
  lines.push(`holder   ${p.holder}   requester ${p.requester}`);
  lines.push(`issued   ${p.issuedAt}`);
  if (p.notBefore !== p.issuedAt)
    lines.push(`from     ${p.notBefore} (${relative(p.times.notBefore, now)})`);
  lines.push(`expires  ${p.expiresAt} (${relative(p.times.expiresAt, now)})`);
  lines.push(`uses     ${view.uses} of ${p.maxUses}`);
  lines.push(`signers:`);
  for (const r of signerRows(view)) {
    const why =
      r.role === 'requester'
        ? 'requester'
        : r.role === 'approver'
          ? s.green('approver (counts)')
          : s.yellow(
              hasRole(policy, r.principal, policy.tickets.approverRoles)
                ? 'does not count'
                : 'no approver role (does not count)',
            );
    lines.push(`  ${r.principal.padEnd(12)} ${r.keyid}  ${why}`);
  }
  for (const i of view.ticket.unverified) {
    lines.push(
      `  ${s.red('?'.padEnd(12))} ${view.envelope?.signatures[i]?.keyid || '(no keyid)'}  ${s.red('signature verifies under no key in the policy')}`,
    );
  }
  lines.push(
    `approvals ${view.approvers.length} of ${policy.tickets.approvals} required` +
      (view.approvers.length ? ` (${view.approvers.join(', ')})` : ''),
  );
  if (view.revocation) {
    const r = view.revocation;
    lines.push(`${s.red('revoked')}  ${r.revokedAt} by ${r.revoker}: ${r.reason}`);
  }
  if (view.revocationError)
    lines.push(`${s.yellow('ignored revocation')}: ${view.revocationError}`);
  for (const f of view.signatureFailures) {
    if (f.code !== 'APPROVALS_MISSING') lines.push(`${s.red(f.code)} [${f.rule}] ${f.message}`);
  }
  if (view.status === 'used up' && view.lastUseAt !== undefined) {
    lines.push(`last use ${formatTime(view.lastUseAt)}`);
  }
  return lines;
}
