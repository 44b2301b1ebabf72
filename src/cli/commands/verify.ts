import { BreakglassError, isBreakglassError } from '../../errors.ts';
import { evaluateTicket, type Failure, type Pusher } from '../../engine/evaluate.ts';
import { countUses } from '../../git/store.ts';
import { principalForLogin } from '../../policy/policy.ts';
import { ACTIONS, COMMIT_SHA, type Action } from '../../ticket/payload.ts';
import { formatTime } from '../../ticket/time.ts';
import { fromArgAsync } from '../exit.ts';
import { loadCommandPolicy } from '../policy-source.ts';
import { relative } from '../render.ts';
import { openRepo, resolveCommit } from '../repo.ts';
import { readTicketView } from '../tickets.ts';
import {
  cliFor,
  defineCommand,
  jsonOption,
  list,
  parseActionsArg,
  parseRefArg,
  parseTicketIdArg,
  policyOption,
  referenceTime,
  remoteOption,
} from '../options.ts';

/** `bg-sign verify ID`: would this ticket authorise this use now? Every failed rule is listed. */
export default defineCommand({
  command: 'verify <id>',
  describe: 'Check a ticket for one use; exit 0 if valid, 1 listing every failed rule',
  builder: (y) =>
    y
      .positional('id', { type: 'string', describe: 'ticket id', demandOption: true })
      .options({
        ref: {
          type: 'string',
          requiresArg: true,
          describe: "ref to check (default: the ticket's first ref)",
        },
        action: {
          type: 'string',
          array: true,
          requiresArg: true,
          choices: ACTIONS,
          describe: "action(s) to check (default: all of the ticket's actions)",
        },
        commit: {
          type: 'string',
          requiresArg: true,
          describe: 'new tip to check against pinned commits',
        },
        at: {
          type: 'string',
          requiresArg: true,
          describe: 'check at this time (RFC 3339 UTC) instead of now',
        },
        pusher: {
          type: 'string',
          requiresArg: true,
          describe: 'check the holder against this login',
        },
        ...policyOption,
        ...remoteOption,
        ...jsonOption,
      })
      .example('$0 verify 20261129T031200Z-7f3a9c', 'is it valid now for its first ref?')
      .example(
        '$0 verify 20261129T031200Z-7f3a9c --ref main --action force-push --commit HEAD',
        'would it let this commit be force-pushed to main?',
      )
      .example(
        '$0 verify 20261129T031200Z-7f3a9c --at 2026-11-29T04:00:00Z',
        'still valid at 04:00?',
      ),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const clock = Date.now();
    const id = parseTicketIdArg(argv.id);
    const now = referenceTime(argv.at, clock);
    const refArg = argv.ref === undefined ? undefined : parseRefArg('--ref', argv.ref);
    const actionArg =
      argv.action === undefined ? undefined : parseActionsArg('--action', list(argv.action));
    const ctx = await openRepo(cli.cwd, cli.env);
    const commit =
      argv.commit === undefined
        ? undefined
        : // A full commit id is checked as given, even if this clone lacks the commit.
          COMMIT_SHA.test(argv.commit)
          ? argv.commit
          : await fromArgAsync('--commit', () => resolveCommit(ctx, argv.commit!));
    const policy = await loadCommandPolicy(cli, ctx, argv);

    const view = await readTicketView(ctx, policy, id, now);
    const { output } = cli;
    const s = output.style;
    let failures: Failure[];
    let ref = refArg ?? '';
    let actions: Action[] = actionArg ?? [];
    if (!view.ticket) {
      const e = view.error ?? new BreakglassError('TICKET_REF_INVALID', 'unreadable ticket');
      failures = [{ code: e.code, rule: authenticityRule(e.code), message: e.message }];
    } else {
      const p = view.ticket.payload;
      if (!refArg) {
        const first = p.scope.refs[0]!;
        if (first.includes('*')) {
          throw new BreakglassError(
            'USAGE',
            `the ticket's first ref is a pattern (${first}); pass --ref REF`,
          );
        }
        ref = first;
      }
      if (!actionArg) actions = [...p.scope.actions];
      const pusher: Pusher =
        argv.pusher === undefined
          ? { known: false }
          : {
              known: true,
              login: argv.pusher,
              principal: principalForLogin(policy, argv.pusher)?.name,
            };
      // countUses reads the consumed/ ref; the view's count comes from the same ref.
      const usesConsumed = await countUses(ctx, id).catch((e: unknown) => {
        if (isBreakglassError(e)) return Number.MAX_SAFE_INTEGER;
        throw e;
      });
      if (view.revocationError)
        output.err(
          output.errStyle.yellow(`warning: ignoring revocation ref: ${view.revocationError}`),
        );
      failures = evaluateTicket(
        view.ticket,
        policy,
        { ref, actions, newSha: commit, pusher },
        { revoked: view.revocation !== null, usesConsumed },
        now,
      );
    }
    const use = {
      ref,
      actions,
      ...(commit ? { commit } : {}),
      at: formatTime(now),
      ...(argv.pusher ? { pusher: argv.pusher } : {}),
    };
    if (failures.length) process.exitCode = 1;
    if (argv.json) {
      output.json({
        id,
        valid: failures.length === 0,
        use,
        failures,
        ...(view.ticket ? { approvers: view.approvers } : {}),
      });
      return;
    }
    const what = `${actions.join('+') || 'use'} to ${ref || '(unknown ref)'}${commit ? ` at ${commit.slice(0, 12)}` : ''}`;
    if (failures.length === 0) {
      const p = view.ticket!.payload;
      output.out(
        `${s.green('valid')}: ticket ${id} allows ${what}; approved by ${view.approvers.join(', ') || 'nobody (policy needs none)'}; ` +
          `expires ${p.expiresAt} (${relative(p.times.expiresAt, now)}); uses ${view.uses}/${p.maxUses}`,
      );
      return;
    }
    output.out(
      `${s.red('invalid')}: ticket ${id} does not allow ${what} (${failures.length} failed rule(s)):`,
    );
    for (const f of failures) output.out(`  ${s.red(f.code)} [${f.rule}] ${f.message}`);
  },
});

/** docs/rules.md: authenticity rules A1-A4; storage problems have no rule number of their own. */
function authenticityRule(code: string): string {
  switch (code) {
    case 'PAYLOAD_TYPE':
      return 'A1';
    case 'SIGNATURE_INVALID':
      return 'A3';
    case 'PAYLOAD_MALFORMED':
    case 'VERSION_UNSUPPORTED':
    case 'TIME_INVALID':
      return 'A4';
    default:
      return 'ticket';
  }
}
