import type { OutputSink } from './deps.ts';

/** `overdue`: review-check found events waiting for review longer than allowed. */
export type Decision = 'normal' | 'breakglass' | 'violation' | 'overdue';

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
  /** A table with other columns, shown instead of `rows` (only when it has rows). */
  readonly table?: { readonly head: readonly string[]; readonly rows: readonly string[][] };
  /** Lines under the table (e.g. how many rows were left out). */
  readonly notes?: readonly string[];
  /** Sentences explaining a failure; empty when the step passes. */
  readonly problems: readonly string[];
  readonly title: string;
}

/** A Markdown table cell (or inline text): no pipes, newlines or HTML from untrusted text, bounded length. */
export function cell(s: string, max = 200): string {
  const flat = s
    .replace(/[\r\n]+/g, ' ')
    .replace(/\|/g, '\\|')
    .replace(/</g, '&lt;');
  return flat.length > max ? flat.slice(0, max - 3) + '...' : flat || '-';
}

/** Renders the job summary (markdown). */
export function summaryMarkdown(o: Outcome): string {
  const lines = [`### git-breakglass: ${cell(o.title)}`, ''];
  if (o.table) {
    if (o.table.rows.length) {
      lines.push(
        `| ${o.table.head.join(' | ')} |`,
        `| ${o.table.head.map(() => '---').join(' | ')} |`,
        ...o.table.rows.map((r) => `| ${r.map((c) => cell(c)).join(' | ')} |`),
      );
    }
  } else {
    lines.push(
      '| ref | commits | actor | ticket | approvers | reason | expiry | outcome |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of o.rows) {
      lines.push(
        `| ${[r.ref, r.commits, r.actor, r.ticket, r.approvers, r.reason, r.expiry, r.outcome].map((c) => cell(c)).join(' | ')} |`,
      );
    }
  }
  if (o.notes?.length) lines.push('', ...o.notes.map((n) => cell(n, 4000)));
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
