import { loadCommandPolicy } from '../policy-source.ts';
import { describeTicket, ticketJson } from '../render.ts';
import { openRepo } from '../repo.ts';
import { ensureTicketLocal } from '../ticket-source.ts';
import { readTicketView } from '../tickets.ts';
import {
  atOption,
  cliFor,
  defineCommand,
  jsonOption,
  parseTicketIdArg,
  policyOption,
  referenceTime,
  remoteOption,
} from '../options.ts';

/** `bg-sign show ID`: payload, signers (and which count as approvers), status. */
export default defineCommand({
  command: 'show <id>',
  describe: 'Show a ticket: scope, reason, signers, status',
  builder: (y) =>
    y
      .positional('id', { type: 'string', describe: 'ticket id', demandOption: true })
      .options({
        ...atOption,
        ...policyOption,
        ...remoteOption,
        ...jsonOption,
      })
      .example('$0 show 20261129T031200Z-7f3a9c', 'read a ticket before approving it')
      .example('$0 show 20261129T031200Z-7f3a9c --json', 'as JSON'),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const now = referenceTime(argv.at, Date.now());
    const id = parseTicketIdArg(argv.id);
    const ctx = await openRepo(cli.cwd, cli.env);
    const policy = await loadCommandPolicy(cli, ctx, argv);
    await ensureTicketLocal(ctx, cli, argv.remote, id);
    const view = await readTicketView(ctx, policy, id, now);
    if (view.status === 'invalid') process.exitCode = 1;
    if (argv.json) {
      cli.output.json(ticketJson(view, policy));
      return;
    }
    for (const line of describeTicket(view, policy, now, cli.output.style)) cli.output.out(line);
  },
});
