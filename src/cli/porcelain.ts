// The CLI's git porcelain (fetch, push, remote and config look-ups) through simple-git: one
// short process per command, parsed results. The hot paths (cat-file --batch, rev-list,
// fast-import, update-ref --stdin) stay on src/git/git.ts, one streamed process each.
import { GitError, simpleGit, type SimpleGit } from 'simple-git';
import { BreakglassError } from '../errors.ts';
import type { GitContext } from '../git/git.ts';

/**
 * A simple-git instance for a clone. simple-git strips ambient `GIT_*` (and `PAGER`, `EDITOR`)
 * variables unless allowed: that guards programs that pass untrusted environments, but here the
 * environment is the user's own shell (GIT_SSH_COMMAND, GIT_CONFIG_GLOBAL, ...), which git must
 * see as it would on the command line, so every variable present is allowed.
 */
export function porcelain(ctx: GitContext): SimpleGit {
  const env: NodeJS.ProcessEnv = { ...(ctx.env ?? process.env) };
  if (ctx.gitDir) env.GIT_DIR = ctx.gitDir;
  const git = simpleGit({
    ...(ctx.cwd ? { baseDir: ctx.cwd } : {}),
    allowEnvironment: Object.keys(env),
    trimmed: false,
  });
  return git.env(env as Record<string, string>);
}

/** The message git printed for a failed porcelain command (its last meaningful lines). */
export function gitFailure(e: unknown): string {
  if (e instanceof GitError) {
    return e.message
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-3)
      .join(' / ');
  }
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Runs a porcelain command; a git failure becomes GIT_FAILED with git's own words. */
export async function porcelainRun<T>(what: string, fn: () => Promise<T>, hint?: string) {
  try {
    return await fn();
  } catch (e) {
    throw new BreakglassError('GIT_FAILED', `${what} failed: ${gitFailure(e)}`, {
      ...(hint ? { hint } : {}),
      cause: e,
    });
  }
}

/** `git config --get KEY` in the clone, or '' when unset. */
export async function configValue(ctx: GitContext, key: string): Promise<string> {
  const r = await porcelain(ctx)
    .getConfig(key)
    .catch(() => null);
  return r?.value?.trim() ?? '';
}
