import { ZERO_SHA } from '../engine/update.ts';
import { gitText, type GitContext } from '../git/git.ts';
import type { PendingEvent } from './journal.ts';

/**
 * Commits one break-glass push may bring into protected refs (E5). pre-receive refuses a larger
 * push up front with this limit in its message, so every accepted push can be recorded whole.
 */
export const MAX_NOTED_COMMITS = 250_000;

/**
 * The commits an update brought into its ref, newest first (E1): `old..new`; for a created ref,
 * those on no other protected ref as it was at push time. Bounded by MAX_NOTED_COMMITS.
 */
export async function broughtIn(
  ctx: GitContext,
  e: Pick<PendingEvent, 'oldSha' | 'newSha' | 'base'>,
  limit = MAX_NOTED_COMMITS,
): Promise<string[]> {
  if (ZERO_SHA.test(e.newSha)) return [];
  const not = ZERO_SHA.test(e.oldSha) ? (e.base ?? []) : [e.oldSha];
  const out = await gitText(ctx, [
    'rev-list',
    `--max-count=${limit + 1}`,
    e.newSha,
    ...(not.length ? ['--not', ...not] : []),
  ]);
  return out ? out.split('\n') : [];
}
