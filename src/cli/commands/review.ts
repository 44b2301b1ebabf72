import { BreakglassError } from '../../errors.ts';
import {
  createReview,
  isReviewOutcome,
  MAX_REVIEW_NOTE,
  REVIEW_OUTCOMES,
  verifyReview,
} from '../../audit/review.ts';
import { refFor, writeEnvelope } from '../../git/store.ts';
import { commitAuthor, pushRefs } from '../repo.ts';
import { loadTicketToSign } from '../ticket-source.ts';
import {
  cliFor,
  defineCommand,
  jsonOption,
  keyOption,
  parseTicketIdArg,
  policyOption,
  pushOption,
  remoteOption,
} from '../options.ts';

/** `bg-sign review ID`: signs a post-incident review onto refs/breakglass/reviews/<id>. */
export default defineCommand({
  command: 'review <id>',
  describe:
    'Sign a post-incident review of a ticket (reviewer role; not its requester, holder or approvers)',
  builder: (y) =>
    y
      .positional('id', { type: 'string', describe: 'ticket id', demandOption: true })
      .options({
        outcome: {
          type: 'string',
          choices: REVIEW_OUTCOMES,
          demandOption: true,
          requiresArg: true,
          describe: 'was the emergency access justified?',
        },
        note: {
          type: 'string',
          demandOption: true,
          requiresArg: true,
          describe: `what was checked and found (at most ${MAX_REVIEW_NOTE} characters)`,
        },
        ...keyOption,
        ...policyOption,
        ...pushOption,
        ...remoteOption,
        ...jsonOption,
      })
      .example(
        '$0 review 20261129T031200Z-7f3a9c --outcome justified --note "INC-4711 outage; fix reviewed in PR 812" --push',
        'close the review duty for a ticket',
      )
      .example(
        '$0 review 20261129T031200Z-7f3a9c --outcome false-emergency --note "could have waited for the 09:00 review"',
        'record that the emergency was not one',
      ),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const now = Date.now();
    const id = parseTicketIdArg(argv.id);
    if (!isReviewOutcome(argv.outcome)) {
      throw new BreakglassError('USAGE', `--outcome must be one of ${REVIEW_OUTCOMES.join(', ')}`);
    }
    const note = argv.note.trim();
    if (!note) throw new BreakglassError('USAGE', '--note must say what the review found');
    const { ctx, policy, signer, ticket } = await loadTicketToSign(cli, argv, id, now);

    // R3-R5 are checked before signing: a review the hook would refuse is never written.
    const envelope = createReview(
      policy,
      ticket,
      signer.principal,
      argv.outcome,
      note,
      now,
      signer.key,
    );
    const review = verifyReview(envelope, ticket, policy);
    const author = await commitAuthor(ctx, signer.principal);
    const commit = await writeEnvelope(
      ctx,
      'reviews',
      id,
      envelope,
      `breakglass: review ${id}: ${review.outcome}\n\nReviewer: ${signer.principal} ${signer.key.publicKey.keyid}\n`,
      author,
    );
    const ref = refFor('reviews', id);
    if (argv.push) {
      await pushRefs(ctx, argv.remote, [`${ref}:${ref}`]);
      cli.note(`pushed ${ref} to ${argv.remote}`);
    }
    if (argv.json) {
      cli.output.json({
        ticket: id,
        ref,
        commit,
        reviewer: review.reviewer,
        keyid: review.keyid,
        outcome: review.outcome,
        note: review.note,
        reviewedAt: review.reviewedAt,
        pushed: argv.push,
      });
      return;
    }
    cli.output.out(`reviewed ticket ${id} as ${signer.principal}: ${review.outcome}`);
    if (!argv.push) {
      cli.output.err(
        cli.output.errStyle.dim(`publish it with: git push ${argv.remote} ${ref}:${ref}`),
      );
    }
  },
});
