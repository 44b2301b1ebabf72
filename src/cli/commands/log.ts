import { buildTimeline, formatTimeline } from '../../audit/timeline.ts';
import { readTicketHistory } from '../../git/audit-source.ts';
import {
  cliFor,
  defineCommand,
  jsonOption,
  parseTicketIdArg,
  policyOption,
  remoteOption,
} from '../options.ts';
import { openAuditRepo } from './audit.ts';

/** `bg-sign log ID`: the timeline of one ticket, from request to review. */
export default defineCommand({
  command: 'log <id>',
  describe: 'Show the timeline of a ticket: request, approvals, uses, revocation, expiry, review',
  builder: (y) =>
    y
      .positional('id', { type: 'string', describe: 'ticket id', demandOption: true })
      .option('git-dir', {
        type: 'string',
        requiresArg: true,
        describe: 'repository directory (e.g. a bare server repo); default: the clone you are in',
      })
      .options({ ...jsonOption, ...policyOption, ...remoteOption })
      .example('$0 log 20261129T031200Z-7f3a9c', 'what happened with this ticket?')
      .example('$0 log 20261129T031200Z-7f3a9c --json', 'the same as JSON'),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const now = Date.now();
    const id = parseTicketIdArg(argv.id);
    const repo = await openAuditRepo(cli, argv['git-dir'], {
      policy: argv.policy,
      remote: argv.remote,
    });
    const { input, problems } = await readTicketHistory(repo.ctx, id, repo.policy);
    const timeline = buildTimeline({ ...input, now });
    if (argv.json) {
      cli.output.json({ ...timeline, policySource: repo.policySource, problems });
      return;
    }
    for (const line of formatTimeline(timeline)) cli.output.out(line);
    for (const p of problems) {
      cli.output.err(cli.output.errStyle.yellow(`warning: ${p.kind} ${p.where}: ${p.message}`));
    }
  },
});
