import { BreakglassError } from '../errors.ts';
import type { GitContext } from '../git/git.ts';
import { refExists, refFor } from '../git/store.ts';
import type { Cli } from './options.ts';
import type { VerifiedTicket } from '../ticket/verify.ts';
import { gitFailure, porcelain } from './porcelain.ts';
import { checkRemoteName, fetchHint, remoteExists } from './repo.ts';
import type { SigningContext } from './signed-command.ts';
import { readTicketView, requireTicket, type TicketView } from './tickets.ts';

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
  if (!(await remoteExists(ctx, remote))) {
    throw new BreakglassError('TICKET_NOT_FOUND', `ticket ${id} not found (${ref})`, {
      hint: `check the id; ${await fetchHint(ctx, remote)}`,
    });
  }
  cli.note(`ticket ${id} is not here; fetching it from ${remote}`);
  const git = porcelain(ctx);
  try {
    await git.fetch(remote, `${ref}:${ref}`, ['--quiet', '--no-tags']);
  } catch (e) {
    cli.note(`fetch from ${remote} failed: ${gitFailure(e).split(' / ').pop() ?? ''}`);
    return;
  }
  // The revocation is optional; a missing one is not an error.
  const revoked = refFor('revoked', id);
  await git.fetch(remote, `${revoked}:${revoked}`, ['--quiet', '--no-tags']).catch(() => {});
}

/** The ticket a command signs something about, verified as of `now`. */
export interface TicketToSign {
  readonly view: TicketView;
  readonly ticket: VerifiedTicket;
}

/**
 * The ticket `approve`, `revoke` and `review` sign about: fetched if it isn't here yet, then read
 * and verified under the command's policy as of `now`.
 */
export async function readTicketToSign(
  cli: Cli,
  s: SigningContext,
  remote: string,
  id: string,
  now: number,
): Promise<TicketToSign> {
  await ensureTicketLocal(s.ctx, cli, remote, id);
  const view = await readTicketView(s.ctx, s.policy, id, now);
  return { view, ticket: requireTicket(view) };
}
