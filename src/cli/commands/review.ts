import { BreakglassError } from '../../errors.ts';
import {
  createReview,
  isReviewOutcome,
  MAX_REVIEW_NOTE,
  REVIEW_OUTCOMES,
  verifyReview,
} from '../../audit/review.ts';
import { refFor, writeEnvelope } from '../../git/store.ts';
import { commitAuthor } from '../repo.ts';
import { runSignedCommand, signedOptions } from '../signed-command.ts';
import { readTicketToSign } from '../ticket-source.ts';
import { cliFor, defineCommand, parseTicketIdArg } from '../options.ts';

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
        ...signedOptions,
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
    await runSignedCommand(cli, argv, async (s) => {
      const { ctx, policy, signer } = s;
      const { ticket } = await readTicketToSign(cli, s, argv.remote, id, now);

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
      return {
        id,
        ref,
        what: 'review',
        report: () => ({
          json: {
            ticket: id,
            ref,
            commit,
            reviewer: review.reviewer,
            keyid: review.keyid,
            outcome: review.outcome,
            note: review.note,
            reviewedAt: review.reviewedAt,
          },
          out: [`reviewed ticket ${id} as ${signer.principal}: ${review.outcome}`],
        }),
      };
    });
  },
});
