import { isBreakglassError } from '../errors.ts';
import { runGit, type GitContext } from '../git/git.ts';
import { refExists, refFor } from '../git/store.ts';
import type { Cli } from './options.ts';
import { checkRemoteName, remoteExists } from './repo.ts';

/**
 * Makes sure a ticket is present locally: when it is missing, fetches it (and its revocation,
 * if any) from the remote so `approve <id>` works right after the requester pushed.
 */
export async function ensureTicketLocal(
  ctx: GitContext,
  cli: Cli,
  remote: string,
  id: string,
): Promise<void> {
  const ref = refFor('tickets', id);
  if (await refExists(ctx, ref)) return;
  checkRemoteName(remote);
  if (!(await remoteExists(ctx, remote))) return;
  cli.note(`ticket ${id} is not here; fetching it from ${remote}`);
  const r = await runGit(ctx, ['fetch', '--quiet', '--no-tags', remote, `${ref}:${ref}`], {
    allowFail: true,
  });
  if (r.code !== 0) {
    cli.note(`fetch from ${remote} failed: ${r.stderr.trim().split('\n').pop() ?? ''}`);
    return;
  }
  // The revocation is optional; a missing one is not an error.
  const revoked = refFor('revoked', id);
  await runGit(ctx, ['fetch', '--quiet', '--no-tags', remote, `${revoked}:${revoked}`], {
    allowFail: true,
  }).catch((e: unknown) => {
    if (!isBreakglassError(e)) throw e;
  });
}
