import { REFS, refFor } from '../../git/store.ts';
import { openRepo, pushRefs } from '../repo.ts';
import { scanBreakglassRefs } from '../tickets.ts';
import {
  cliFor,
  defineCommand,
  jsonOption,
  list,
  parseTicketIdArg,
  remoteOption,
} from '../options.ts';

/** `bg-sign push [ID...]`: publishes ticket, revocation and review refs (never forced). */
export default defineCommand({
  command: 'push [ids..]',
  describe: 'Push tickets, revocations and reviews to the remote',
  builder: (y) =>
    y
      .positional('ids', { type: 'string', array: true, describe: 'ticket ids (default: all)' })
      .options({ ...remoteOption, ...jsonOption })
      .example('$0 push 20261129T031200Z-7f3a9c', 'publish one ticket (and its revocation/review)')
      .example('$0 push --remote upstream', 'publish everything under refs/breakglass/'),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const ids = list(argv.ids).map(parseTicketIdArg);
    const ctx = await openRepo(cli.cwd, cli.env);
    const refs = await scanBreakglassRefs(ctx);
    const pushed: string[] = [];
    for (const ns of ['tickets', 'revoked', 'reviews'] as const) {
      const have = refs.get(ns);
      for (const id of ids.length ? ids : [...(have?.keys() ?? [])].sort()) {
        if (have?.has(id)) pushed.push(refFor(ns, id));
      }
    }
    const missing = ids.filter((id) => !refs.get('tickets')?.has(id));
    for (const id of missing)
      cli.output.err(
        cli.output.errStyle.yellow(`warning: no ticket ${id} here (${REFS.tickets}${id})`),
      );
    if (pushed.length === 0) {
      if (missing.length) process.exitCode = 1;
      cli.output.err('nothing to push');
      if (argv.json) cli.output.json({ remote: argv.remote, pushed: [] });
      return;
    }
    const updated = await pushRefs(
      ctx,
      argv.remote,
      pushed.map((r) => `${r}:${r}`),
    );
    if (missing.length) process.exitCode = 1;
    if (argv.json) {
      cli.output.json({ remote: argv.remote, pushed, updated });
      return;
    }
    cli.output.out(
      `pushed ${pushed.length} ref(s) to ${argv.remote}: ${updated.length} updated, ${pushed.length - updated.length} already up to date`,
    );
    for (const r of updated) cli.note(`  ${r}`);
  },
});
