import path from 'node:path';
import { BreakglassError } from '../../src/errors.ts';
import { gitText, runGit, type GitContext } from '../../src/git/git.ts';
import { REFS } from '../../src/git/store.ts';

/** Absolute `$GIT_DIR` of the workspace clone. */
export async function absoluteGitDir(ctx: GitContext): Promise<string> {
  const dir = await gitText(ctx, ['rev-parse', '--git-dir']);
  return path.resolve(ctx.cwd ?? process.cwd(), dir);
}

/** Current values of refs on the remote (`git ls-remote`), by full name. */
export async function remoteRefs(
  ctx: GitContext,
  remote: string,
  patterns: readonly string[],
): Promise<Map<string, string>> {
  const out = await gitText(ctx, ['ls-remote', '--refs', remote, ...patterns]);
  const map = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [sha, ref] = line.split('\t');
    if (sha && ref) map.set(ref, sha);
  }
  return map;
}

/**
 * Mirrors the remote's break-glass state into the clone: tickets, revocations, reviews, use
 * records and the notes ref. actions/checkout fetches none of these, so this is always explicit.
 * Local copies are overwritten: the remote is the record.
 */
export async function fetchAudit(ctx: GitContext, remote: string): Promise<void> {
  // actions/checkout clones one commit deep; ancestry and rev-list need the whole history.
  if ((await gitText(ctx, ['rev-parse', '--is-shallow-repository'])) === 'true') {
    await runGit(ctx, ['fetch', '--no-tags', '--quiet', '--unshallow', remote], {
      timeoutMs: 600_000,
    });
  }
  const hasNotes = (await remoteRefs(ctx, remote, [REFS.notes])).has(REFS.notes);
  await runGit(ctx, [
    'fetch',
    '--no-tags',
    '--quiet',
    remote,
    '+refs/breakglass/*:refs/breakglass/*',
    ...(hasNotes ? [`+${REFS.notes}:${REFS.notes}`] : []),
  ]);
  if (!hasNotes) {
    // The remote has no notes yet: drop a stale local one so our first push creates it.
    await runGit(ctx, ['update-ref', '-d', REFS.notes], { allowFail: true });
  }
}

/** True if the clone has the commit. */
export async function hasCommit(ctx: GitContext, sha: string): Promise<boolean> {
  const r = await runGit(ctx, ['cat-file', '-e', `${sha}^{commit}`], { allowFail: true });
  return r.code === 0;
}

/** Makes sure a commit is in the clone, fetching it by id (and the branch) when it is not. */
export async function ensureCommit(
  ctx: GitContext,
  remote: string,
  sha: string,
  branchRef?: string,
): Promise<boolean> {
  if (await hasCommit(ctx, sha)) return true;
  if (branchRef) {
    await runGit(ctx, ['fetch', '--no-tags', '--quiet', remote, `${branchRef}`], {
      allowFail: true,
    });
    if (await hasCommit(ctx, sha)) return true;
  }
  await runGit(ctx, ['fetch', '--no-tags', '--quiet', remote, sha], { allowFail: true });
  return hasCommit(ctx, sha);
}

/**
 * Reads the policy file at a commit of the protected branch (never the pull request head or the
 * pushed commits: those are what the policy judges).
 */
export async function readPolicyBytes(
  ctx: GitContext,
  commit: string,
  policyPath: string,
): Promise<Buffer> {
  const spec = `${commit}:${policyPath.replace(/^\.\//, '')}`;
  const r = await runGit(ctx, ['cat-file', 'blob', spec], { allowFail: true });
  if (r.code !== 0) {
    throw new BreakglassError(
      'POLICY_MISSING',
      `no ${policyPath} at ${commit.slice(0, 12)} of the protected branch`,
      {
        hint: 'commit .breakglass/policy.yml to the protected branch, or set the policy-path input',
      },
    );
  }
  return r.stdout;
}

/** Local values of refs (null when absent), for use as push leases. */
export async function localValues(
  ctx: GitContext,
  refs: readonly string[],
): Promise<Map<string, string | null>> {
  const map = new Map<string, string | null>();
  for (const ref of refs) {
    const r = await runGit(ctx, ['rev-parse', '--verify', '--quiet', ref], { allowFail: true });
    map.set(ref, r.code === 0 ? r.stdout.toString().trim() : null);
  }
  return map;
}

/**
 * Pushes refs atomically with compare-and-swap: each ref moves only if the remote still has the
 * value we built on (`--force-with-lease=<ref>:<expected>`, empty = must not exist). Returns
 * false when another writer got there first, so the caller can re-fetch and rebuild.
 */
export async function pushWithLease(
  ctx: GitContext,
  remote: string,
  leases: ReadonlyMap<string, string | null>,
): Promise<{ ok: boolean; detail: string }> {
  const refs = [...leases.keys()];
  const r = await runGit(
    ctx,
    [
      'push',
      '--atomic',
      '--porcelain',
      '--no-verify',
      remote,
      ...refs.map((ref) => `--force-with-lease=${ref}:${leases.get(ref) ?? ''}`),
      ...refs.map((ref) => `${ref}:${ref}`),
    ],
    { allowFail: true },
  );
  const detail = (r.stdout.toString() + r.stderr).trim();
  if (r.code === 0) return { ok: true, detail };
  // A lease, fast-forward or ref-lock failure is a race we can retry (bounded by the caller; a
  // ruleset refusing the ref ends there too, with this detail); auth or network errors are not.
  if (
    /stale info|fetch first|non-fast-forward|atomic push failed|cannot lock ref|\[(?:remote )?rejected\]/.test(
      detail,
    )
  ) {
    return { ok: false, detail };
  }
  throw new BreakglassError(
    'GIT_FAILED',
    `git push ${refs.join(' ')} to ${remote} failed: ${detail.split('\n').slice(-3).join(' / ')}`,
    {
      hint: 'the job needs `permissions: contents: write` and actions/checkout with persist-credentials (the default)',
    },
  );
}

/** Fetches one branch of the remote and returns its tip, or null when it does not exist. */
export async function fetchTip(
  ctx: GitContext,
  remote: string,
  ref: string,
): Promise<string | null> {
  const tips = await remoteRefs(ctx, remote, [ref]);
  const sha = tips.get(ref);
  if (!sha) return null;
  return (await ensureCommit(ctx, remote, sha, ref)) ? sha : null;
}

/** True when `a` is an ancestor of `b`. */
export async function isAncestor(ctx: GitContext, a: string, b: string): Promise<boolean> {
  const r = await runGit(ctx, ['merge-base', '--is-ancestor', a, b], { allowFail: true });
  return r.code === 0;
}

/** `git rev-list` with a cap; returns the ids (newest first) and whether the cap cut the list. */
export async function revList(
  ctx: GitContext,
  args: readonly string[],
  max: number,
): Promise<{ ids: string[]; total: number }> {
  const ids = (await gitText(ctx, ['rev-list', ...args])).split('\n').filter(Boolean);
  return { ids: ids.slice(0, max), total: ids.length };
}
