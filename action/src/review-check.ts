import { BreakglassError } from '../../src/errors.ts';
import { buildReport, type AuditRow } from '../../src/audit/report.ts';
import { readAuditData } from '../../src/git/audit-source.ts';
import { gitText } from '../../src/git/git.ts';
import { formatDuration, parseDurationAllowZero } from '../../src/policy/duration.ts';
import type { Deps } from './deps.ts';
import { loadPolicyAt } from './policy.ts';
import { fetchAudit, fetchTip } from './remote.ts';
import { cell, type Outcome } from './report.ts';

// Bounds on what one run writes: GitHub caps a step output at 1 MiB and the job summary at
// 1 MiB, and shows only the first annotations anyway. The full list is `bg-sign audit`'s job.
const MAX_EVENTS_OUTPUT_BYTES = 900_000;
const MAX_SUMMARY_ROWS = 1000;
const MAX_ANNOTATIONS = 50;
const MAX_ISSUE_ROWS = 100;

const REVIEW_HINT = '--outcome justified|unjustified|false-emergency --note TEXT';

/**
 * The default branch's ref: from the event payload when it carries the repository (workflow
 * dispatch does), else the remote's HEAD. The policy is read there, never from the branch a
 * workflow_dispatch was started on (that branch could carry a policy naming other reviewers).
 */
async function defaultBranch(deps: Deps): Promise<string> {
  const repo = deps.event.payload.repository as { default_branch?: unknown } | undefined;
  if (typeof repo?.default_branch === 'string' && repo.default_branch) {
    return `refs/heads/${repo.default_branch}`;
  }
  const out = await gitText(deps.git, ['ls-remote', '--symref', deps.inputs.remote, 'HEAD']);
  const m = /^ref: (refs\/heads\/\S+)\tHEAD$/m.exec(out);
  if (!m) {
    throw new BreakglassError(
      'POLICY_MISSING',
      `cannot tell the default branch of ${deps.inputs.remote}`,
      { hint: 'the remote must have a HEAD pointing at the default branch' },
    );
  }
  return m[1]!;
}

/** How long an event has waited, to the minute (seconds are noise at these scales). */
function waited(r: AuditRow): string {
  const ms = r.review.waitingMs ?? 0;
  return formatDuration(ms < 60_000 ? ms : ms - (ms % 60_000));
}

function waiting(r: AuditRow): string {
  const w = waited(r);
  // An invalid or unverifiable review does not count; say why it is still listed.
  return r.review.status === 'unreviewed' ? w : `${w} (${r.review.status} review)`;
}

function describe(r: AuditRow): string {
  const why =
    r.review.status === 'unreviewed'
      ? 'no review'
      : `${r.review.status} review${r.review.error ? `: ${r.review.error}` : ''}`;
  return `break-glass event on ${r.ref} at ${r.time} (ticket ${r.ticket ?? '-'}, pushed by ${r.pusher}) has waited ${waited(r)} for a post-incident review (${why}); run bg-sign review ${r.ticket ?? r.id} ${REVIEW_HINT}`;
}

/** The overdue rows as the `events` output: the audit JSON rows, cut to fit a step output. */
function eventsOutput(rows: readonly AuditRow[]): { events: AuditRow[]; cut: number } {
  const events: AuditRow[] = [];
  let bytes = 2;
  for (const r of rows) {
    bytes += JSON.stringify(r).length + 1;
    if (bytes > MAX_EVENTS_OUTPUT_BYTES) break;
    events.push(r);
  }
  return { events, cut: rows.length - events.length };
}

/**
 * Scheduled review duty (DESIGN §1 step 6, issue 5): the same check as `bg-sign audit
 * --unreviewed --older-than <review-older-than>`, on the same code (readAuditData + buildReport
 * over the fetched refs and notes, reviews verified under the default branch's policy). Every
 * event waiting longer than allowed goes to the summary, a warning and optionally one issue, and
 * the job fails; violations have no ticket to review and are not listed.
 */
export async function runReviewCheck(deps: Deps): Promise<Outcome> {
  const input = deps.inputs.reviewOlderThan;
  const olderThanMs = parseDurationAllowZero(input, 'input review-older-than');
  const now = deps.now();
  await deps.out.group('git-breakglass: fetch', () => fetchAudit(deps.git, deps.inputs.remote));
  const branch = await defaultBranch(deps);
  const tip = await fetchTip(deps.git, deps.inputs.remote, branch);
  if (!tip) {
    throw new BreakglassError(
      'POLICY_MISSING',
      `cannot fetch ${branch} from ${deps.inputs.remote}`,
      {
        hint: 'the default branch must carry .breakglass/policy.yml',
      },
    );
  }
  const policy = await loadPolicyAt(deps, tip);
  const data = await readAuditData(deps.git, { policy });
  const report = buildReport(data, {
    now,
    unreviewed: true,
    olderThanMs,
    repository: policy.repository,
    policySource: `${deps.inputs.policyPath} at ${branch} (${tip.slice(0, 12)})`,
  });
  const threshold = input;
  for (const p of report.problems.slice(0, MAX_ANNOTATIONS)) {
    deps.out.warning(`${p.kind} ${p.where}: ${p.message}`, { title: 'git-breakglass records' });
  }
  const rows = report.rows;
  for (const r of rows.slice(0, MAX_ANNOTATIONS)) {
    deps.out.warning(describe(r), { title: 'Break-glass review overdue' });
  }
  if (rows.length > MAX_ANNOTATIONS) {
    deps.out.warning(`... and ${rows.length - MAX_ANNOTATIONS} more (see the job summary)`, {
      title: 'Break-glass review overdue',
    });
  }
  const notes: string[] = [];
  if (rows.length > MAX_SUMMARY_ROWS) {
    notes.push(
      `... and ${rows.length - MAX_SUMMARY_ROWS} more: bg-sign audit --unreviewed --older-than ${threshold}`,
    );
  }
  const { events, cut } = eventsOutput(rows);
  if (cut) notes.push(`The events output lists the first ${events.length} (size limit).`);
  if (report.problems.length) {
    notes.push(`${report.problems.length} problem(s) found in the records (see the warnings).`);
  }

  if (rows.length && deps.inputs.openIssue) {
    const listed = rows
      .slice(0, MAX_ISSUE_ROWS)
      .map(
        (r) =>
          `- \`${r.ticket ?? r.id}\` on \`${cell(r.ref, 300).replace(/`/g, "'")}\` at ${r.time}, pushed by ${cell(r.pusher, 100)}, waiting ${waiting(r)}`,
      );
    if (rows.length > MAX_ISSUE_ROWS) listed.push(`- ... and ${rows.length - MAX_ISSUE_ROWS} more`);
    const issue = await deps.github.createIssue(
      `Break-glass: ${rows.length} event(s) awaiting review longer than ${threshold}`,
      [
        `These break-glass events have waited longer than ${threshold} for a signed post-incident review:`,
        '',
        ...listed,
        '',
        `Review each ticket: \`bg-sign show ID\`, then \`bg-sign review ID ${REVIEW_HINT}\`.`,
        '',
        `Run: ${deps.event.runUrl}`,
      ].join('\n'),
    );
    deps.out.info(`opened issue #${issue.number}`);
  }

  const tickets = [...new Set(rows.map((r) => r.ticket).filter((t): t is string => !!t))];
  return {
    decision: rows.length ? 'overdue' : 'normal',
    ticket: tickets.join(','),
    events,
    rows: [],
    table: {
      head: ['time', 'ref', 'ticket', 'pusher', 'requester', 'reason', 'waiting'],
      rows: rows
        .slice(0, MAX_SUMMARY_ROWS)
        .map((r) => [
          r.time,
          r.ref,
          r.ticket ?? '',
          r.pusher,
          r.requester?.principal ?? '',
          r.reason ?? '',
          waiting(r),
        ]),
    },
    notes,
    problems: rows.length
      ? [
          `${rows.length} break-glass event(s) waiting for review longer than ${threshold}: review each ticket with bg-sign review ID ${REVIEW_HINT}`,
        ]
      : [],
    title: rows.length
      ? `${rows.length} break-glass event(s) awaiting review longer than ${threshold}`
      : `no break-glass event awaits review longer than ${threshold}`,
  };
}
