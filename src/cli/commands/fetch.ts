import { BreakglassError } from '../../errors.ts';
import { gitText, runGit, type GitContext } from '../../git/git.ts';
import { REFS } from '../../git/store.ts';
import { checkRemoteName, openRepo } from '../repo.ts';
import { cliFor, defineCommand, jsonOption, remoteOption } from '../options.ts';

const NOTES_REMOTE = 'refs/notes/breakglass-remote';

/** `bg-sign fetch`: tickets, revocations, reviews, use records and audit notes from the remote. */
export default defineCommand({
  command: 'fetch',
  describe: 'Fetch refs/breakglass/* and the audit notes from the remote',
  builder: (y) =>
    y
      .options({ ...remoteOption, ...jsonOption })
      .example('$0 fetch', 'before approve/list/verify on a fresh clone')
      .example('$0 fetch --remote upstream', 'from another remote'),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const remote = checkRemoteName(argv.remote);
    const ctx = await openRepo(cli.cwd, cli.env);
    const before = await snapshot(ctx);
    const r = await runGit(
      ctx,
      ['fetch', '--no-tags', remote, '+refs/breakglass/*:refs/breakglass/*'],
      {
        allowFail: true,
      },
    );
    if (r.code !== 0) {
      throw new BreakglassError('GIT_FAILED', `fetch from ${remote} failed: ${lastLine(r.stderr)}`);
    }
    // Notes only fast-forward: local notes are never overwritten by the remote's history.
    let notes: 'updated' | 'unchanged' | 'absent' | 'diverged' = 'unchanged';
    const n = await runGit(ctx, ['fetch', '--no-tags', remote, `${REFS.notes}:${REFS.notes}`], {
      allowFail: true,
    });
    if (n.code !== 0) {
      if (/couldn't find remote ref/i.test(n.stderr)) notes = 'absent';
      else if (/rejected|non-fast-forward/i.test(n.stderr)) {
        await runGit(ctx, ['fetch', '--no-tags', remote, `+${REFS.notes}:${NOTES_REMOTE}`]);
        notes = 'diverged';
      } else
        throw new BreakglassError(
          'GIT_FAILED',
          `fetching ${REFS.notes} from ${remote} failed: ${lastLine(n.stderr)}`,
        );
    }
    const after = await snapshot(ctx);
    const changed = [...after].filter(([ref, sha]) => before.get(ref) !== sha).map(([ref]) => ref);
    if (notes === 'unchanged' && changed.includes(REFS.notes)) notes = 'updated';
    const count = (prefix: string) => changed.filter((ref) => ref.startsWith(prefix)).length;
    const summary = {
      remote,
      tickets: count(REFS.tickets),
      revocations: count(REFS.revoked),
      reviews: count(REFS.reviews),
      uses: count(REFS.consumed),
      notes,
    };
    if (argv.json) {
      cli.output.json({ ...summary, changed });
      return;
    }
    cli.output.out(
      `fetched from ${remote}: ${summary.tickets} ticket(s), ${summary.revocations} revocation(s), ` +
        `${summary.reviews} review(s), ${summary.uses} use record(s) new or updated; notes ${notes}`,
    );
    if (notes === 'diverged') {
      cli.output.err(
        cli.output.errStyle.yellow(
          `warning: ${remote}'s ${REFS.notes} does not fast-forward from yours; fetched it into ${NOTES_REMOTE}` +
            ` (compare with: git log --notes=breakglass-remote)`,
        ),
      );
    }
    for (const ref of changed) cli.note(`  ${ref}`);
  },
});

async function snapshot(ctx: GitContext): Promise<Map<string, string>> {
  const out = await gitText(ctx, [
    'for-each-ref',
    '--format=%(objectname) %(refname)',
    'refs/breakglass/',
    REFS.notes,
    NOTES_REMOTE,
  ]);
  return new Map(
    (out ? out.split('\n') : []).map((l) => {
      const [sha, ref] = l.split(' ') as [string, string];
      return [ref, sha];
    }),
  );
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}
