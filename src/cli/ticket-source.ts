import type { GitContext } from '../git/git.ts';
import { refExists, refFor } from '../git/store.ts';
import type { Cli } from './options.ts';
import type { Policy } from '../policy/policy.ts';
import type { VerifiedTicket } from '../ticket/verify.ts';
import { loadCommandPolicy } from './policy-source.ts';
import { gitFailure, porcelain } from './porcelain.ts';
import { checkRemoteName, openRepo, remoteExists } from './repo.ts';
import { loadSigner, type Signer } from './signer.ts';
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
  if (!(await remoteExists(ctx, remote))) return;
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

/** What a command that signs something about an existing ticket starts from. */
export interface TicketToSign {
  readonly ctx: GitContext;
  readonly policy: Policy;
  readonly signer: Signer;
  readonly view: TicketView;
  readonly ticket: VerifiedTicket;
}

/**
 * The common start of `approve`, `revoke` and `review`: open the repository, load the policy and
 * the signer's key (whose principal must be in it), fetch the ticket if it isn't here yet, and
 * read and verify it as of `now`.
 */
export async function loadTicketToSign(
  cli: Cli,
  argv: { policy?: string | undefined; remote: string; key?: string | undefined },
  id: string,
  now: number,
): Promise<TicketToSign> {
  const ctx = await openRepo(cli.cwd, cli.env);
  const policy = await loadCommandPolicy(cli, ctx, argv);
  const signer = await loadSigner(cli, argv.key, policy);
  await ensureTicketLocal(ctx, cli, argv.remote, id);
  const view = await readTicketView(ctx, policy, id, now);
  return { ctx, policy, signer, view, ticket: requireTicket(view) };
}
