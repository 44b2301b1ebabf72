import { BreakglassError } from '../../errors.ts';
import { refExists, refFor, writeEnvelope } from '../../git/store.ts';
import { hasRole } from '../../policy/policy.ts';
import { createRevocation } from '../../ticket/revocation.ts';
import { commitAuthor } from '../repo.ts';
import { runSignedCommand, signedOptions } from '../signed-command.ts';
import { readTicketToSign } from '../ticket-source.ts';
import { cliFor, defineCommand, parseTicketIdArg } from '../options.ts';

/** `bg-sign revoke ID --reason TEXT`: a signed revocation on refs/breakglass/revoked/<id>. */
export default defineCommand({
  command: 'revoke <id>',
  describe: 'Revoke a ticket before it expires (requester, approvers, admins)',
  builder: (y) =>
    y
      .positional('id', { type: 'string', describe: 'ticket id', demandOption: true })
      .options({
        reason: {
          type: 'string',
          demandOption: true,
          requiresArg: true,
          describe: 'why it is revoked',
        },
        ...signedOptions,
      })
      .example(
        '$0 revoke 20261129T031200Z-7f3a9c --reason "fixed by rollback" --push',
        'close it early',
      ),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const now = Date.now();
    const id = parseTicketIdArg(argv.id);
    if (argv.reason.trim() === '' || argv.reason.length > 1000) {
      throw new BreakglassError('USAGE', '--reason: 1 to 1000 characters');
    }
    await runSignedCommand(cli, argv, async (s) => {
      const { ctx, policy, signer } = s;
      const { ticket } = await readTicketToSign(cli, s, argv.remote, id, now);
      // T12: requester, approver roles and admin roles may revoke.
      const p = ticket.payload;
      if (
        signer.principal !== p.requester &&
        !hasRole(policy, signer.principal, policy.tickets.approverRoles) &&
        !hasRole(policy, signer.principal, policy.adminRoles)
      ) {
        throw new BreakglassError(
          'REVOCATION_INVALID',
          `${signer.principal} may not revoke ticket ${id}: only its requester (${p.requester}), approvers and admins may`,
        );
      }
      const ref = refFor('revoked', id);
      if (await refExists(ctx, ref)) {
        throw new BreakglassError(
          'TICKET_REVOKED',
          `ticket ${id} is already revoked (${ref} exists)`,
        );
      }
      const envelope = createRevocation(ticket, signer.principal, argv.reason, now, signer.key);
      const author = await commitAuthor(ctx, signer.principal);
      const sha = await writeEnvelope(
        ctx,
        'revoked',
        id,
        envelope,
        `breakglass: revoke ${id}\n\nRevoker: ${signer.principal}\nReason: ${argv.reason.replace(/\s+/g, ' ')}\n`,
        author,
        { createOnly: true },
      );
      return {
        id,
        ref,
        what: 'revocation',
        report: () => ({
          json: { id, ref, commit: sha, revoker: signer.principal, reason: argv.reason },
          out: [`revoked ticket ${id} (${ref})`],
        }),
      };
    });
  },
});
