import { BreakglassError } from '../../errors.ts';
import { CatFileBatch, gitText, runGit, type GitContext } from '../../git/git.ts';
import { parseBreakglassRef, readEnvelopeAt, REFS, writeEnvelope } from '../../git/store.ts';
import { MAX_SIGNATURES, type Envelope, type EnvelopeSignature } from '../../ticket/dsse.ts';
import { checkRemoteName, commitAuthor, fetchHint, openRepo, remoteExists } from '../repo.ts';
import { gitFailure, porcelain, porcelainRun } from '../porcelain.ts';
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
    if (!(await remoteExists(ctx, remote))) {
      throw new BreakglassError('USAGE', `there is no remote "${remote}" to fetch from`, {
        hint: await fetchHint(ctx, remote),
      });
    }
    const before = await snapshot(ctx);
    const git = porcelain(ctx);
    await porcelainRun(`fetch from ${remote}`, () =>
      git.fetch(remote, '+refs/breakglass/*:refs/breakglass/*', ['--no-tags']),
    );
    // Notes only fast-forward: local notes are never overwritten by the remote's history.
    let notes: 'updated' | 'unchanged' | 'absent' | 'diverged' = 'unchanged';
    try {
      await git.fetch(remote, `${REFS.notes}:${REFS.notes}`, ['--no-tags']);
    } catch (e) {
      const why = gitFailure(e);
      if (/couldn't find remote ref/i.test(why)) notes = 'absent';
      else if (/rejected|non-fast-forward/i.test(why)) {
        await porcelainRun(`fetch of ${REFS.notes} from ${remote}`, () =>
          git.fetch(remote, `+${REFS.notes}:${NOTES_REMOTE}`, ['--no-tags']),
        );
        notes = 'diverged';
      } else
        throw new BreakglassError(
          'GIT_FAILED',
          `fetching ${REFS.notes} from ${remote} failed: ${why}`,
        );
    }
    const kept = await keepLocalWork(ctx, before);
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
    // On stderr in every mode: nothing was lost, but there is something to publish or look at.
    for (const m of kept.merged) {
      cli.output.err(
        cli.output.errStyle.yellow(
          `kept ${m.signatures} local signature(s) of ticket ${m.id} that ${remote} did not have, on top of its version; publish them with: bg-sign push ${m.id}`,
        ),
      );
    }
    for (const b of kept.backedUp) {
      cli.output.err(
        cli.output.errStyle.yellow(
          `warning: your unpublished ${b.ref} differed from ${remote}'s and was replaced; your version is kept at ${b.backup}`,
        ),
      );
    }
    if (argv.json) {
      cli.output.json({ ...summary, changed, merged: kept.merged, backedUp: kept.backedUp });
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

interface Kept {
  /** Tickets whose local-only signatures were added on top of the remote's version. */
  readonly merged: { id: string; signatures: number }[];
  /** Other diverged refs, kept under refs/breakglass-local/ (never pushed by bg-sign push). */
  readonly backedUp: { ref: string; backup: string }[];
}

/**
 * The fetch above takes the remote's version of every break-glass ref (the server only ever
 * fast-forwards them, N6-N8). A local ref that had commits the remote's lacks, e.g. an approval
 * made here and not yet pushed while someone else's approval was, would be lost: a ticket's
 * signatures are merged onto the remote's version (same payload; the server verifies each
 * added one when it is pushed), anything else is kept under refs/breakglass-local/.
 */
async function keepLocalWork(ctx: GitContext, before: Map<string, string>): Promise<Kept> {
  const kept: Kept = { merged: [], backedUp: [] };
  const diverged: { ref: string; local: string; remote: string }[] = [];
  for (const [ref, local] of before) {
    if (!ref.startsWith('refs/breakglass/') || ref.startsWith(REFS.consumed)) continue;
    const remote = (
      await runGit(ctx, ['rev-parse', '--verify', '--quiet', ref], { allowFail: true })
    ).stdout
      .toString()
      .trim();
    if (!remote || remote === local) continue;
    const ff = await runGit(ctx, ['merge-base', '--is-ancestor', local, remote], {
      allowFail: true,
    });
    if (ff.code !== 0) diverged.push({ ref, local, remote });
  }
  if (diverged.length === 0) return kept;
  const reader = new CatFileBatch(ctx);
  try {
    for (const d of diverged) {
      const parsed = parseBreakglassRef(d.ref);
      if (parsed?.ns === 'tickets') {
        const what = `ticket ${parsed.id}`;
        const [mine, theirs] = await Promise.all([
          readEnvelopeAt(reader, 'tickets', d.local, what).catch(() => null),
          readEnvelopeAt(reader, 'tickets', d.remote, what).catch(() => null),
        ]);
        if (
          mine &&
          theirs &&
          samePayload(mine, theirs) &&
          mine.signatures.length + theirs.signatures.length <= MAX_SIGNATURES
        ) {
          const key = (x: EnvelopeSignature) => `${x.keyid} ${x.sig.toString('base64')}`;
          const have = new Set(theirs.signatures.map(key));
          const extra = mine.signatures.filter((x) => !have.has(key(x)));
          if (extra.length === 0) continue;
          const merged = { ...theirs, signatures: [...theirs.signatures, ...extra] };
          await writeEnvelope(
            ctx,
            'tickets',
            parsed.id,
            merged,
            `breakglass: keep ${extra.length} local signature(s) of ${parsed.id}\n\nMerged onto the remote's version after a fetch.\n`,
            await commitAuthor(ctx, 'git-breakglass'),
          );
          kept.merged.push({ id: parsed.id, signatures: extra.length });
          continue;
        }
      }
      const backup = `refs/breakglass-local/${d.ref.slice('refs/breakglass/'.length)}`;
      await runGit(ctx, ['update-ref', backup, d.local]);
      kept.backedUp.push({ ref: d.ref, backup });
    }
  } finally {
    reader.close();
  }
  return kept;
}

function samePayload(a: Envelope, b: Envelope): boolean {
  return a.payloadType === b.payloadType && a.payload.equals(b.payload);
}

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
