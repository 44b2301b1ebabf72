import type { OutputSink } from './deps.ts';

export type Decision = 'normal' | 'breakglass' | 'violation';

/** One line of the job summary table. */
export interface SummaryRow {
  readonly ref: string;
  /** Commits (short ids), or a pull request reference. */
  readonly commits: string;
  readonly actor: string;
  readonly ticket: string;
  readonly approvers: string;
  readonly reason: string;
  readonly expiry: string;
  readonly outcome: string;
}

/** What a mode hands back to `run` for outputs and the summary. */
export interface Outcome {
  readonly decision: Decision;
  readonly ticket: string;
  /** Machine-readable events (the `events` output). */
  readonly events: readonly unknown[];
  readonly rows: readonly SummaryRow[];
  /** Sentences explaining a failure; empty when the step passes. */
  readonly problems: readonly string[];
  readonly title: string;
}

// Markdown table cells: no pipes or newlines from untrusted text, bounded length.
function cell(s: string, max = 200): string {
  const flat = s
    .replace(/[\r\n]+/g, ' ')
    .replace(/\|/g, '\\|')
    .replace(/</g, '&lt;');
  return flat.length > max ? flat.slice(0, max - 3) + '...' : flat || '-';
}

/** Renders the job summary (markdown). */
export function summaryMarkdown(o: Outcome): string {
  const head = '| ref | commits | actor | ticket | approvers | reason | expiry | outcome |';
  const sep = '| --- | --- | --- | --- | --- | --- | --- | --- |';
  const lines = [`### git-breakglass: ${cell(o.title)}`, '', head, sep];
  for (const r of o.rows) {
    lines.push(
      `| ${[r.ref, r.commits, r.actor, r.ticket, r.approvers, r.reason, r.expiry, r.outcome].map((c) => cell(c)).join(' | ')} |`,
    );
  }
  if (o.problems.length) {
    lines.push('', ...o.problems.map((p) => `- ${cell(p, 4000)}`));
  }
  return lines.join('\n') + '\n';
}

/** Writes outputs and the summary. */
export async function publish(out: OutputSink, o: Outcome): Promise<void> {
  out.setOutput('decision', o.decision);
  out.setOutput('ticket', o.ticket);
  out.setOutput('events', JSON.stringify(o.events));
  await out.summary(summaryMarkdown(o));
}
