import { BreakglassError } from '../errors.ts';
import { updateKind, ZERO_SHA, type RefUpdate, type UpdateKind } from '../engine/update.ts';
import { gitText, runGit, type GitContext } from '../git/git.ts';
import type { UpdateLine } from './push-input.ts';

/** A protected-ref update as the engine needs it, plus the commits it brings in. */
export interface ClassifiedUpdate extends RefUpdate {
  readonly kind: UpdateKind;
  /** Commits that are new to the repository (`rev-list <new> --not --all`), newest first. */
  readonly newCommits: string[];
}

// TM12: the per-push work is bounded.
/** Protected refs one push may update; a push beyond this is refused rather than slowed down. */
export const MAX_PROTECTED_UPDATES = 64;

const POLICY_DIR = '.breakglass/';

/** `git merge-base --is-ancestor`: exit 0 yes, 1 no, anything else is an error. */
async function isAncestor(ctx: GitContext, a: string, b: string): Promise<boolean> {
  const r = await runGit(ctx, ['merge-base', '--is-ancestor', a, b], { allowFail: true });
  if (r.code === 0) return true;
  if (r.code === 1) return false;
  throw new BreakglassError('GIT_FAILED', `git merge-base failed: ${r.stderr.trim()}`);
}

function lines(text: string): string[] {
  return text ? text.split('\n') : [];
}

/**
 * Classifies protected-ref updates (create, fast-forward, force, delete; touches `.breakglass/`)
 * and lists the commits each brings in. Runs inside git's quarantine: `ctx.env` must be the
 * hook's environment so the pushed objects are visible. With one non-delete update (the usual
 * case) the new commits come from a single `rev-list <new> --not --all`.
 */
export async function classifyUpdates(
  ctx: GitContext,
  updates: readonly UpdateLine[],
): Promise<ClassifiedUpdate[]> {
  if (updates.length > MAX_PROTECTED_UPDATES) {
    throw new BreakglassError(
      'INPUT_TOO_LARGE',
      `this push updates ${updates.length} protected refs; at most ${MAX_PROTECTED_UPDATES} per push`,
    );
  }
  // One push often moves many refs to the same commits (64 release branches to one tip): each
  // git question is asked once per distinct argument, not once per ref.
  const memo = new Map<string, Promise<unknown>>();
  const once = <T>(key: string, f: () => Promise<T>): Promise<T> => {
    let p = memo.get(key) as Promise<T> | undefined;
    if (!p) memo.set(key, (p = f()));
    return p;
  };
  const result: ClassifiedUpdate[] = [];
  for (const u of updates) {
    const isCreate = ZERO_SHA.test(u.oldSha);
    const isDelete = ZERO_SHA.test(u.newSha);
    let fastForward = false;
    let touchesPolicy = false;
    let newCommits: string[] = [];
    if (!isDelete) {
      newCommits = await once(`new ${u.newSha}`, async () =>
        lines(await gitText(ctx, ['rev-list', u.newSha, '--not', '--all'])),
      );
    }
    if (!isCreate && !isDelete) {
      fastForward = await once(`ff ${u.oldSha} ${u.newSha}`, () =>
        isAncestor(ctx, u.oldSha, u.newSha),
      );
      // TM6: the net change of the policy directory between the old and the new tip.
      touchesPolicy = await once(
        `policy ${u.oldSha} ${u.newSha}`,
        async () =>
          (
            await gitText(ctx, [
              'diff-tree',
              '-r',
              '--name-only',
              u.oldSha,
              u.newSha,
              '--',
              POLICY_DIR,
            ])
          ).length > 0,
      );
    } else if (isCreate && newCommits.length > 0) {
      // A new branch changes the policy if any commit it brings in touches `.breakglass/`.
      touchesPolicy = await once(
        `policy-new ${u.newSha}`,
        async () =>
          (await gitText(ctx, ['rev-list', '-1', u.newSha, '--not', '--all', '--', POLICY_DIR]))
            .length > 0,
      );
    }
    const update = { ...u, fastForward, touchesPolicy };
    result.push({ ...update, kind: updateKind(update), newCommits });
  }
  return result;
}
