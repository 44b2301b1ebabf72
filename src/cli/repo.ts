import { BreakglassError } from '../errors.ts';
import { runGit, type GitContext } from '../git/git.ts';
import type { Author } from '../git/store.ts';
import { configValue, gitFailure, porcelain } from './porcelain.ts';

/** The clone the command runs in; fails with a clear message outside a repository. */
export async function openRepo(cwd: string, env: NodeJS.ProcessEnv): Promise<GitContext> {
  const ctx: GitContext = { cwd, env };
  const r = await runGit(ctx, ['rev-parse', '--git-dir'], { allowFail: true });
  if (r.code !== 0) {
    throw new BreakglassError('GIT_FAILED', `${cwd} is not inside a Git repository`, {
      hint: 'run bg-sign inside a clone of the protected repository',
    });
  }
  return ctx;
}

/** Git identity for ticket commits: the user's configured one, else the principal's. */
export async function commitAuthor(ctx: GitContext, principal: string): Promise<Author> {
  const [name, email] = await Promise.all([
    configValue(ctx, 'user.name'),
    configValue(ctx, 'user.email'),
  ]);
  return {
    name: name || principal,
    email: email || `${principal}@breakglass.invalid`,
  };
}

/** Resolves any revision to the full commit id it names (`git rev-parse REV^{commit}`). */
export async function resolveCommit(ctx: GitContext, rev: string): Promise<string> {
  if (rev.startsWith('-') || /[\s\0]/.test(rev) || rev.length > 255) {
    throw new BreakglassError('REF_INVALID', `"${rev.slice(0, 80)}" is not a revision`);
  }
  const r = await runGit(ctx, ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`], {
    allowFail: true,
  });
  const sha = r.stdout.toString().trim();
  if (r.code !== 0 || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(sha)) {
    throw new BreakglassError('REF_INVALID', `"${rev}" does not name a commit in this repository`, {
      hint: 'pass a branch, tag or commit id that exists locally (git fetch first?)',
    });
  }
  return sha;
}

/** True if the remote is configured in this clone. */
export async function remoteExists(ctx: GitContext, remote: string): Promise<boolean> {
  if (!isRemoteName(remote)) return false;
  const remotes = await porcelain(ctx)
    .getRemotes()
    .catch(() => []);
  return remotes.some((r) => r.name === remote);
}

/** The remotes configured in this clone. */
export async function remoteNames(ctx: GitContext): Promise<string[]> {
  const r = await runGit(ctx, ['remote'], { allowFail: true });
  return r.code === 0 ? r.stdout.toString().split('\n').filter(Boolean) : [];
}

/**
 * What to do to get the remote's break-glass refs, phrased for this clone: fetch when `remote`
 * exists; otherwise name the remotes there are, or say how to add one.
 */
export async function fetchHint(ctx: GitContext, remote: string): Promise<string> {
  const names = await remoteNames(ctx);
  if (names.includes(remote)) {
    return `run "bg-sign fetch${remote === 'origin' ? '' : ` --remote ${remote}`}"`;
  }
  if (names.length) {
    return `this clone has no remote "${remote}" (it has ${names.join(', ')}); pass --remote NAME`;
  }
  return `this clone has no remote; add the server's repository with: git remote add ${remote} URL`;
}

/** Refuses remote names that could be read as options. */
export function checkRemoteName(remote: string): string {
  if (!isRemoteName(remote)) {
    throw new BreakglassError('USAGE', `"${remote.slice(0, 80)}" is not a remote name`);
  }
  return remote;
}

function isRemoteName(remote: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9._\-/]{0,99}$/.test(remote);
}

/** Pushes refs (exact refspecs) to a remote; never forced. Returns the remote refs it updated. */
export async function pushRefs(
  ctx: GitContext,
  remote: string,
  refspecs: readonly string[],
): Promise<string[]> {
  checkRemoteName(remote);
  try {
    const r = await porcelain(ctx).push(remote, undefined, [...refspecs]);
    // simple-git lists "[up to date]" (=), "[new ...]" (*) and "[deleted]" (-) lines in
    // `pushed`; a fast-forward line ("old..new") is not listed. Updated = all but up to date.
    const upToDate = new Set(r.pushed.filter((p) => !p.new && !p.deleted).map((p) => p.remote));
    return refspecs.map((s) => s.slice(s.indexOf(':') + 1)).filter((dst) => !upToDate.has(dst));
  } catch (e) {
    throw new BreakglassError('GIT_FAILED', `push to ${remote} failed: ${gitFailure(e)}`, {
      hint: 'run "bg-sign fetch" to pick up changes on the remote, then try again',
      cause: e,
    });
  }
}

/** Top-level directory of the working tree, or null in a bare repository. */
export async function workTreeRoot(ctx: GitContext): Promise<string | null> {
  const r = await runGit(ctx, ['rev-parse', '--show-toplevel'], { allowFail: true });
  return r.code === 0 ? r.stdout.toString().trim() || null : null;
}
