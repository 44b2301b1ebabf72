import { listRefs } from '../../src/git/store.ts';
import type { Deps } from './deps.ts';
import { fetchAudit } from './remote.ts';
import type { Outcome } from './report.ts';

/**
 * Scheduled follow-up (DESIGN §1 step 6): tickets that were used but have no signed review yet.
 * It reports them (warnings, summary, optionally one issue) and never fails the job.
 */
export async function runReviewCheck(deps: Deps): Promise<Outcome> {
  await fetchAudit(deps.git, deps.inputs.remote);
  const used = await listRefs(deps.git, 'consumed');
  const reviewed = new Set((await listRefs(deps.git, 'reviews')).map((e) => e.id));
  const open = used.filter((e) => !reviewed.has(e.id)).map((e) => e.id);
  for (const id of open) {
    deps.out.warning(
      `ticket ${id} was used and has no post-incident review (bg-sign review ${id})`,
      {
        title: 'Break-glass review pending',
      },
    );
  }
  if (open.length && deps.inputs.openIssue) {
    const issue = await deps.github.createIssue(
      `Break-glass: ${open.length} used ticket(s) awaiting review`,
      [
        'These break-glass tickets were used and have no signed post-incident review:',
        '',
        ...open.map(
          (id) =>
            `- \`${id}\`: \`bg-sign show ${id}\`, then \`bg-sign review ${id} --outcome justified|unjustified\``,
        ),
        '',
        `Run: ${deps.event.runUrl}`,
      ].join('\n'),
    );
    deps.out.info(`opened issue #${issue.number}`);
  }
  return {
    decision: 'normal',
    ticket: open.join(','),
    events: open.map((id) => ({ ticket: id, reviewed: false })),
    rows: open.map((id) => ({
      ref: '',
      commits: '',
      actor: '',
      ticket: id,
      approvers: '',
      reason: '',
      expiry: '',
      outcome: 'review pending',
    })),
    problems: [],
    title: open.length
      ? `${open.length} used ticket(s) awaiting review`
      : 'every used ticket has a review',
  };
}
