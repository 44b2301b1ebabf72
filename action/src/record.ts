import { consumedRefOf } from '../../src/audit/consumed.ts';
import { eventKey, parseNote } from '../../src/audit/note.ts';
import { readNote } from '../../src/git/notes.ts';
import { recordEvents, type RecordItem } from '../../src/git/record.ts';
import { REFS } from '../../src/git/store.ts';
import { BreakglassError } from '../../src/errors.ts';
import type { Deps } from './deps.ts';
import { absoluteGitDir, fetchAudit, localValues, pushWithLease } from './remote.ts';

// Concurrent runs (two pushes seconds apart) each get a few chances; beyond that something is
// wrong (a ruleset blocking refs/notes, a runaway writer) and the job says so.
const MAX_ATTEMPTS = 6;

/** Items whose event (kind, ticket, ref, update) is already in the note: a re-run writes nothing twice. */
async function notYetRecorded(deps: Deps, items: readonly RecordItem[]): Promise<RecordItem[]> {
  const out: RecordItem[] = [];
  for (const item of items) {
    const first =
      item.commits[0] ?? (/^0+$/.test(item.event.newSha) ? item.event.oldSha : item.event.newSha);
    const note = await readNote(deps.git, first);
    const have = note ? parseNote(note).events.map(eventKey) : [];
    if (!have.includes(eventKey(item.event))) out.push(item);
  }
  return out;
}

/**
 * Writes the audit notes and use records locally (one transaction) and pushes them to the remote
 * with compare-and-swap. When another run pushed first, re-fetch the remote's notes, rebuild on
 * top of them and try again (bounded, with jitter): both runs' notes survive.
 */
export async function recordAndPush(
  deps: Deps,
  items: readonly RecordItem[],
): Promise<{ attempts: number; written: number }> {
  const { remote } = deps.inputs;
  const gitDir = await absoluteGitDir(deps.git);
  const tickets = [
    ...new Set(
      items.flatMap((i) =>
        i.event.kind === 'breakglass' && i.event.ticketId ? [i.event.ticketId] : [],
      ),
    ),
  ];
  const refs = [REFS.notes, ...tickets.map(consumedRefOf)];
  let last = '';
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const todo = await notYetRecorded(deps, items);
    if (todo.length === 0) return { attempts: attempt, written: 0 };
    const before = await localValues(deps.git, refs);
    await recordEvents(gitDir, todo, { env: deps.git.env, now: deps.now() });
    const after = await localValues(deps.git, refs);
    const moved = new Map([...before].filter(([ref, sha]) => after.get(ref) !== sha));
    if (moved.size === 0) return { attempts: attempt, written: 0 };
    const r = await pushWithLease(deps.git, remote, moved);
    if (r.ok) return { attempts: attempt, written: todo.length };
    last = r.detail;
    deps.out.info(
      `audit refs changed on ${remote} meanwhile (attempt ${attempt}); re-fetching and retrying`,
    );
    await deps.sleep(Math.round((100 + 200 * attempt) * (0.5 + deps.random())));
    await fetchAudit(deps.git, remote);
  }
  throw new BreakglassError(
    'GIT_FAILED',
    `could not push the audit notes to ${remote} after ${MAX_ATTEMPTS} attempts: ${last.split('\n').slice(-2).join(' / ')}`,
    { hint: 're-run the job: events already recorded are not written twice' },
  );
}
