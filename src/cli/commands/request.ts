import { randomBytes } from 'node:crypto';
import { BreakglassError } from '../../errors.ts';
import { refFor, writeEnvelope } from '../../git/store.ts';
import { formatDuration } from '../../policy/duration.ts';
import { hasRole, protectionFor } from '../../policy/policy.ts';
import { ACTIONS, parsePayload } from '../../ticket/payload.ts';
import { createTicketEnvelope, formatTicketId } from '../../ticket/sign.ts';
import { formatTime } from '../../ticket/time.ts';
import { fromArg, fromArgAsync } from '../exit.ts';
import { describeTicket, ticketJson } from '../render.ts';
import { commitAuthor, resolveCommit } from '../repo.ts';
import { runSignedCommand, signedOptions } from '../signed-command.ts';
import { readTicketView } from '../tickets.ts';
import {
  cliFor,
  defineCommand,
  list,
  parseActionsArg,
  parseDurationArg,
  parseRefPatternArg,
  parseTimeArg,
} from '../options.ts';

/** `bg-sign request`: a new ticket signed by the requester, stored on refs/breakglass/tickets/<id>. */
export default defineCommand({
  command: 'request',
  describe: 'Request a break-glass ticket (signed by you as requester)',
  builder: (y) =>
    y
      .options({
        ref: {
          type: 'string',
          array: true,
          demandOption: true,
          requiresArg: true,
          describe: 'ref or pattern the ticket covers (bare names mean refs/heads/<name>)',
        },
        action: {
          type: 'string',
          array: true,
          demandOption: true,
          requiresArg: true,
          choices: ACTIONS,
          describe: 'what the ticket allows',
        },
        ttl: {
          type: 'string',
          demandOption: true,
          requiresArg: true,
          describe: 'lifetime, e.g. 15m or 1h (at most the policy maxTtl)',
        },
        reason: {
          type: 'string',
          demandOption: true,
          requiresArg: true,
          describe: 'why (shown to approvers and auditors)',
        },
        commit: {
          type: 'string',
          array: true,
          requiresArg: true,
          describe: 'pin the allowed new tip(s): any revision, stored as the full commit id',
        },
        holder: {
          type: 'string',
          requiresArg: true,
          describe: 'principal who will push (default: you)',
        },
        'max-uses': {
          type: 'number',
          requiresArg: true,
          describe: 'how many pushes (default and maximum: the policy maxUses)',
        },
        incident: { type: 'string', requiresArg: true, describe: 'incident id, e.g. INC-4711' },
        'not-before': {
          type: 'string',
          requiresArg: true,
          describe: 'start of validity (RFC 3339 UTC); default now',
        },
        ...signedOptions,
      })
      .example(
        '$0 request --ref main --action push --commit HEAD --ttl 15m --reason "INC-4711 hotfix" --push',
        'a 15-minute ticket to push the current commit to main',
      )
      .example(
        '$0 request --ref "release/*" --action force-push --ttl 30m --reason "revert bad tag" --json',
        'print the whole ticket as JSON',
      ),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const now = Date.now();
    const refs = list(argv.ref).map((r) => parseRefPatternArg('--ref', r));
    const actions = [...new Set(parseActionsArg('--action', list(argv.action)))];
    const ttlMs = parseDurationArg('--ttl', argv.ttl);
    const notBeforeArg =
      argv.notBefore === undefined ? undefined : parseTimeArg('--not-before', argv.notBefore);
    if (notBeforeArg !== undefined && notBeforeArg < now - 60_000) {
      throw fromArg('--not-before', () => {
        throw new BreakglassError('TIME_INVALID', `${formatTime(notBeforeArg)} is in the past`);
      });
    }
    // A start a few seconds ago (clock drift, slow typing) just means "now".
    const notBefore = notBeforeArg === undefined ? undefined : Math.max(notBeforeArg, now);
    const maxUses = argv.maxUses;
    if (maxUses !== undefined && (!Number.isInteger(maxUses) || maxUses < 1 || maxUses > 1000)) {
      throw new BreakglassError('USAGE', '--max-uses: expected a whole number from 1 to 1000');
    }

    await runSignedCommand(cli, argv, async ({ ctx, policy, signer }) => {
      // T2: only requester roles may ask; say so before signing anything.
      if (!hasRole(policy, signer.principal, policy.tickets.requesterRoles)) {
        throw new BreakglassError(
          'REQUESTER_ROLE',
          `${signer.principal} has none of the requester roles (${policy.tickets.requesterRoles.join(', ')})`,
          { hint: 'ask someone on call to request the ticket, with --holder you' },
        );
      }
      const holder = argv.holder ?? signer.principal;
      if (!policy.principals.has(holder)) {
        throw new BreakglassError(
          'PRINCIPAL_UNKNOWN',
          `--holder ${holder} is not a principal in the policy`,
        );
      }
      // T11: the whole lifetime from issue to expiry counts, including a delayed start.
      const lifetime = (notBefore !== undefined ? Math.max(0, notBefore - now) : 0) + ttlMs;
      if (lifetime > policy.tickets.maxTtlMs) {
        throw new BreakglassError(
          'TTL_TOO_LONG',
          `a ${formatDuration(lifetime)} ticket is over the policy's maxTtl of ${formatDuration(policy.tickets.maxTtlMs)}`,
          { hint: `use --ttl ${formatDuration(policy.tickets.maxTtlMs)} or less` },
        );
      }
      // T15: the policy's maxUses is the default and the ceiling.
      if (maxUses !== undefined && maxUses > policy.tickets.maxUses) {
        throw new BreakglassError(
          'USES_TOO_MANY',
          `--max-uses ${maxUses} is over the policy's maxUses of ${policy.tickets.maxUses}`,
          { hint: `use --max-uses ${policy.tickets.maxUses} or less (or leave it out)` },
        );
      }
      const commits: string[] = [];
      for (const rev of list(argv.commit)) {
        const sha = await fromArgAsync('--commit', () => resolveCommit(ctx, rev));
        if (!commits.includes(sha)) commits.push(sha);
      }
      for (const ref of refs) {
        if (!ref.includes('*') && !protectionFor(policy, ref)) {
          cli.output.err(
            cli.output.errStyle.yellow(
              `warning: ${ref} is not protected by the policy; pushes to it need no ticket`,
            ),
          );
        }
      }

      const request = {
        now,
        repository: policy.repository,
        requester: signer.principal,
        holder,
        refs,
        actions,
        commits,
        reason: argv.reason,
        ...(argv.incident ? { incident: argv.incident } : {}),
        ttlMs,
        ...(notBefore !== undefined ? { notBefore } : {}),
        maxUses: maxUses ?? policy.tickets.maxUses,
      };
      const author = await commitAuthor(ctx, signer.principal);
      // Ids carry 24 random bits; on the rare clash with an existing ref, draw again.
      const id = await (async () => {
        for (let attempt = 0; ; attempt++) {
          const candidate = formatTicketId(now, randomBytes(3).toString('hex'));
          const envelope = createTicketEnvelope(
            { ...request, id: candidate, nonce: randomBytes(16).toString('base64') },
            signer.key,
          );
          // Reject what the verifier would reject (reason too long, control characters...) now.
          fromArg('request', () => parsePayload(envelope.payload));
          try {
            await writeEnvelope(
              ctx,
              'tickets',
              candidate,
              envelope,
              `breakglass: request ${candidate}\n\nRequester: ${signer.principal}\nRefs: ${refs.join(' ')}\nActions: ${actions.join(' ')}\nReason: ${argv.reason.replace(/\s+/g, ' ')}\n`,
              author,
              { createOnly: true },
            );
            return candidate;
          } catch (e) {
            if (attempt < 3 && e instanceof BreakglassError && /already exists/.test(e.message))
              continue;
            throw e;
          }
        }
      })();
      return {
        id,
        ref: refFor('tickets', id),
        what: 'ticket',
        report: async () => {
          const view = await readTicketView(ctx, policy, id, now);
          const need = policy.tickets.approvals;
          const expires = (request.notBefore ?? now) + ttlMs;
          return {
            json: ticketJson(view, policy),
            // The id alone on stdout, for scripts: id=$(bg-sign request ...).
            out: [id],
            err: [
              ...(cli.verbose ? describeTicket(view, policy, now, cli.output.errStyle) : []),
              cli.output.errStyle.dim(
                `ticket ${id} requested; expires ${formatTime(expires)}.` +
                  (need > 0
                    ? ` It needs ${need} approval(s): ask an approver to run "bg-sign approve ${id}".`
                    : ''),
              ),
            ],
          };
        },
      };
    });
  },
});
