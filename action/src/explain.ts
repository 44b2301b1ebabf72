import type { Failure } from '../../src/engine/evaluate.ts';
import { formatDuration } from '../../src/policy/duration.ts';
import type { Policy } from '../../src/policy/policy.ts';

// A failure names the few tickets nearest to passing; listing every live ticket (dozens in a busy
// repository) buries the one that matters and bloats annotations and notes.
const MAX_SHOWN = 3;
const DEFAULT_TTL_MS = 30 * 60_000;

/** A ticket that was considered and why it did not count. */
export interface Rejected {
  readonly id: string | null;
  readonly failures: readonly Failure[];
  /** Named in the pull request or commit message: what the author meant, so shown first. */
  readonly named?: boolean;
}

/**
 * The closest few rejected tickets, each with why it fails: named ones first, then fewest failed
 * rules (a ticket
 * that only lacks an approval is nearer than one for another branch), then newest. Then how many
 * others were considered. Empty when no ticket was considered.
 */
export function closestTickets(rejected: readonly Rejected[]): string[] {
  const ranked = [...rejected].sort(
    (a, b) =>
      Number(!a.named) - Number(!b.named) ||
      a.failures.length - b.failures.length ||
      Number(a.id === null) - Number(b.id === null) ||
      (b.id ?? '').localeCompare(a.id ?? ''),
  );
  const lines = ranked
    .slice(0, MAX_SHOWN)
    .map(
      (r) =>
        `${r.id ? `ticket ${r.id}` : 'no ticket'}: ${r.failures.map((f) => `${f.message} [${f.code}, ${f.rule}]`).join('; ')}`,
    );
  if (ranked.length > MAX_SHOWN) {
    lines.push(`${ranked.length - MAX_SHOWN} other ticket(s) considered fail on more rules`);
  }
  return lines;
}

/** A shell-quoted argument. */
function q(s: string): string {
  return /^[\w./:@-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * A complete `bg-sign request` command for a ticket that would cover the change: the branch, every
 * action it performs, pinned to the commit, a TTL within the policy's maximum, and a reason.
 */
export function requestCommand(
  policy: Policy,
  ref: string,
  actions: readonly string[],
  commit: string | null,
  reason: string,
): string {
  const ttl = Math.min(DEFAULT_TTL_MS, policy.tickets.maxTtlMs);
  return [
    'bg-sign request',
    `--ref ${q(ref.replace(/^refs\/heads\//, ''))}`,
    ...actions.map((a) => `--action ${a}`),
    // A deletion has no new commit to pin.
    ...(commit ? [`--commit ${commit}`] : []),
    `--ttl ${formatDuration(ttl)}`,
    `--reason ${q(reason)}`,
    '--push',
  ].join(' ');
}
