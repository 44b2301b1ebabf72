import { BreakglassError } from '../../errors.ts';
import { evaluateTime, evaluateUses } from '../../engine/evaluate.ts';
import { refFor, writeEnvelope } from '../../git/store.ts';
import { hasRole } from '../../policy/policy.ts';
import { addSignature } from '../../ticket/sign.ts';
import { describeTicket, ticketJson } from '../render.ts';
import { commitAuthor } from '../repo.ts';
import { runSignedCommand, signedOptions } from '../signed-command.ts';
import { readTicketToSign } from '../ticket-source.ts';
import { readTicketView } from '../tickets.ts';
import { cliFor, defineCommand, parseTicketIdArg } from '../options.ts';

/** `bg-sign approve ID`: adds the approver's signature as a new commit on the ticket ref. */
export default defineCommand({
  command: 'approve <id>',
  describe: 'Approve a ticket: verify it and add your signature',
  builder: (y) =>
    y
      .positional('id', { type: 'string', describe: 'ticket id', demandOption: true })
      .options(signedOptions)
      .example('$0 approve 20261129T031200Z-7f3a9c --push', 'approve and publish the approval')
      .example(
        '$0 show 20261129T031200Z-7f3a9c && $0 approve 20261129T031200Z-7f3a9c',
        'read it first',
      ),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const now = Date.now();
    const id = parseTicketIdArg(argv.id);
    await runSignedCommand(cli, argv, async (s) => {
      const { ctx, policy, signer } = s;
      const { view, ticket } = await readTicketToSign(cli, s, argv.remote, id, now);
      const p = ticket.payload;
      // Separation of duties: the requester never approves their own ticket (T4).
      if (signer.principal === p.requester) {
        throw new BreakglassError(
          'SELF_APPROVAL',
          `${signer.principal} requested ticket ${id} and cannot approve it`,
          {
            hint: `ask someone with the role ${policy.tickets.approverRoles.join(' or ')} to run "bg-sign approve ${id}"`,
          },
        );
      }
      if (!hasRole(policy, signer.principal, policy.tickets.approverRoles)) {
        throw new BreakglassError(
          'APPROVER_ROLE',
          `${signer.principal} has none of the approver roles (${policy.tickets.approverRoles.join(', ')})`,
        );
      }
      if (ticket.signers.some((s) => s.principal === signer.principal)) {
        throw new BreakglassError(
          'ALREADY_APPROVED',
          `${signer.principal} has already approved ticket ${id}`,
        );
      }
      // Don't lend a signature to a ticket that is broken in a way an approval can't fix.
      const blocking = view.signatureFailures.filter((f) => f.code !== 'APPROVALS_MISSING');
      if (blocking[0])
        throw new BreakglassError(blocking[0].code, `ticket ${id}: ${blocking[0].message}`);
      if (p.repository !== policy.repository) {
        throw new BreakglassError(
          'REPOSITORY_MISMATCH',
          `ticket ${id} is for repository ${p.repository}, the policy is for ${policy.repository}`,
        );
      }
      if (view.revocation)
        throw new BreakglassError('TICKET_REVOKED', `ticket ${id} has been revoked`);
      const expired = evaluateTime(ticket, policy, now).find(
        (f) => f.code === 'TICKET_EXPIRED' || f.code === 'TTL_TOO_LONG',
      );
      if (expired) throw new BreakglassError(expired.code, expired.message);
      // T15: don't approve more uses than the policy allows.
      const tooMany = evaluateUses(ticket, policy)[0];
      if (tooMany) {
        throw new BreakglassError(tooMany.code, `ticket ${id}: ${tooMany.message}`, {
          hint: `ask ${p.requester} to request a new ticket with --max-uses ${policy.tickets.maxUses} or less`,
        });
      }

      const envelope = addSignature(ticket.envelope, signer.key);
      const author = await commitAuthor(ctx, signer.principal);
      await writeEnvelope(
        ctx,
        'tickets',
        id,
        envelope,
        `breakglass: approve ${id}\n\nApprover: ${signer.principal} ${signer.key.publicKey.keyid}\n`,
        author,
      );
      return {
        id,
        ref: refFor('tickets', id),
        what: 'approval',
        report: async () => {
          const after = await readTicketView(ctx, policy, id, now);
          const left = policy.tickets.approvals - after.approvers.length;
          return {
            json: ticketJson(after, policy),
            out: [
              `approved ticket ${id} as ${signer.principal}; ` +
                (left > 0 ? `${left} more approval(s) needed` : `status: ${after.status}`),
            ],
            err: cli.verbose ? describeTicket(after, policy, now, cli.output.errStyle) : [],
          };
        },
      };
    });
  },
});
