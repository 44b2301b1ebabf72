import { CatFileBatch } from '../../git/git.ts';
import { formatTime } from '../../ticket/time.ts';
import { loadCommandPolicy } from '../policy-source.ts';
import { table } from '../output.ts';
import { relative, statusText, ticketJson } from '../render.ts';
import { openRepo } from '../repo.ts';
import { loadTicketView, scanBreakglassRefs, ticketIds, type TicketView } from '../tickets.ts';
import {
  atOption,
  cliFor,
  defineCommand,
  jsonOption,
  policyOption,
  referenceTime,
  remoteOption,
} from '../options.ts';

const DAY_MS = 86_400_000;
const ENDED = new Set(['expired', 'revoked', 'used up']);

/** `bg-sign list`: one row per ticket with its status; old finished tickets hidden by default. */
export default defineCommand({
  command: 'list',
  describe: 'List tickets with their status (pending approval, active, expired, revoked, used up)',
  builder: (y) =>
    y
      .options({
        all: {
          type: 'boolean',
          default: false,
          describe: 'include tickets that ended over 24h ago',
        },
        ...atOption,
        ...policyOption,
        ...remoteOption,
        ...jsonOption,
      })
      .example('$0 list', 'open tickets and those that ended in the last 24h')
      .example('$0 fetch && $0 list --all --json', 'every ticket on the remote, as JSON'),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const now = referenceTime(argv.at, Date.now());
    const ctx = await openRepo(cli.cwd, cli.env);
    const policy = await loadCommandPolicy(cli, ctx, argv);
    const refs = await scanBreakglassRefs(ctx);
    const views: TicketView[] = [];
    // One cat-file process for every ticket, revocation and use record.
    const reader = new CatFileBatch(ctx);
    try {
      for (const id of ticketIds(refs))
        views.push(await loadTicketView(reader, refs, policy, id, now));
    } finally {
      reader.close();
    }
    const shown = argv.all
      ? views
      : views.filter(
          (v) => !(ENDED.has(v.status) && v.endedAt !== undefined && v.endedAt < now - DAY_MS),
        );
    const hidden = views.length - shown.length;
    const { output } = cli;
    if (argv.json) {
      output.json({ tickets: shown.map((v) => ticketJson(v, policy)), hidden });
      return;
    }
    if (shown.length === 0) {
      output.err(`no tickets${hidden ? ` (${hidden} older ones hidden; use --all)` : ''}`);
      return;
    }
    const s = output.style;
    const rows = [
      ['ID', 'STATUS', 'REFS', 'ACTIONS', 'REQUESTER', 'APPROVERS', 'EXPIRES', 'REASON'].map(
        s.bold,
      ),
    ];
    for (const v of shown) {
      const p = v.ticket?.payload;
      rows.push([
        v.id,
        statusText(v.status, s),
        p ? p.scope.refs.join(',') : '-',
        p ? p.scope.actions.join(',') : '-',
        p ? p.requester : '-',
        v.ticket
          ? `${v.approvers.join(',') || '-'} (${v.approvers.length}/${policy.tickets.approvals})`
          : '-',
        p ? `${formatTime(p.times.expiresAt)} (${relative(p.times.expiresAt, now)})` : '-',
        p
          ? truncate(p.reason, 40)
          : `${v.error?.code ?? ''}: ${truncate(v.error?.message ?? '', 60)}`,
      ]);
    }
    for (const line of table(rows)) output.out(line);
    if (hidden)
      output.err(
        output.errStyle.dim(`${hidden} ticket(s) that ended over 24h ago hidden; use --all`),
      );
  },
});

function truncate(text: string, max: number): string {
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}
