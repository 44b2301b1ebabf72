import { principalForLogin, type Policy } from '../../src/policy/policy.ts';
import type { ReviewInfo } from './github.ts';

/** The outcome of counting a pull request's reviews. */
export interface ApprovalCount {
  /** Distinct approving people (policy principal where the login maps to one, else the login). */
  readonly approvers: readonly string[];
  /** Logins whose latest review asks for changes. */
  readonly changesRequested: readonly string[];
  /** People whose approval was given on an older head commit (not counted when `head` is set). */
  readonly stale: readonly string[];
}

// Reviews that change a reviewer's standing; COMMENTED (and PENDING drafts) leave it as it was.
const DECISIVE = new Set(['APPROVED', 'CHANGES_REQUESTED', 'DISMISSED']);
// Associations that imply the reviewer belongs to the repository (GitHub counts only reviews from
// people with write access; a drive-by account's approval must not open the gate).
const MEMBER = new Set(['OWNER', 'MEMBER', 'COLLABORATOR']);

/**
 * Counts approvals the way GitHub's review rule does (pure): the latest decisive review per
 * reviewer wins (a later CHANGES_REQUESTED cancels an approval; a dismissed approval is
 * DISMISSED), the author's own reviews and non-members' reviews don't count, and two logins of
 * one policy principal count once. With `head` (the ruleset's "dismiss stale pull request
 * approvals when new commits are pushed"), an approval counts only for the commit it was given on.
 */
export function countApprovals(
  reviews: readonly ReviewInfo[],
  author: string,
  policy: Policy,
  head?: string,
): ApprovalCount {
  const latest = new Map<string, ReviewInfo>();
  // The API lists reviews oldest first; sort by submission time and id to be sure.
  const ordered = [...reviews].sort(
    (a, b) => (a.submittedAt ?? '').localeCompare(b.submittedAt ?? '') || a.id - b.id,
  );
  for (const r of ordered) {
    if (!r.login || r.login === author || !DECISIVE.has(r.state)) continue;
    latest.set(r.login, r);
  }
  const approvers = new Set<string>();
  const stale = new Set<string>();
  const changesRequested: string[] = [];
  const authorPrincipal = principalForLogin(policy, author)?.name;
  for (const [login, r] of latest) {
    if (r.state === 'CHANGES_REQUESTED') changesRequested.push(login);
    if (r.state !== 'APPROVED' || !MEMBER.has(r.authorAssociation)) continue;
    const person = principalForLogin(policy, login)?.name ?? `@${login}`;
    // The author's second account is still the author.
    if (authorPrincipal !== undefined && person === authorPrincipal) continue;
    if (head !== undefined && r.commitId !== head) stale.add(person);
    else approvers.add(person);
  }
  for (const p of approvers) stale.delete(p);
  return {
    approvers: [...approvers].sort(),
    changesRequested: changesRequested.sort(),
    stale: [...stale].sort(),
  };
}
