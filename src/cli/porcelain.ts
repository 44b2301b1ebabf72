// The CLI's git porcelain (fetch, push, remote and config look-ups) through simple-git: one
// short process per command, parsed results. The hot paths (cat-file --batch, rev-list,
// fast-import, update-ref --stdin) stay on src/git/git.ts, one streamed process each.
import { GitError, simpleGit, type SimpleGit } from 'simple-git';
import { BreakglassError } from '../errors.ts';
import type { GitContext } from '../git/git.ts';

/**
 * simple-git's guards for variables of the environment (its `GitEnvKeys`). They protect programs
 * that hand git an environment from untrusted input; ours is the user's own shell
 * (GIT_SSH_COMMAND for a deploy key, GIT_CONFIG_GLOBAL, GIT_ASKPASS, ...), which git must see as
 * it does on the command line. The arguments stay guarded: we pass only fixed options and
 * checked remote names and refspecs.
 */
const USER_ENVIRONMENT = {
  allowUnsafeAskPass: true,
  allowUnsafeConfigEnvCount: true,
  allowUnsafeConfigPaths: true,
  allowUnsafeDiffExternal: true,
  allowUnsafeEditor: true,
  allowUnsafeExec: true,
  allowUnsafeGitProxy: true,
  allowUnsafePager: true,
  allowUnsafeSshCommand: true,
  allowUnsafeTemplateDir: true,
} as const;

/**
 * A simple-git instance for a clone, with the user's environment passed through whole (see
 * USER_ENVIRONMENT): simple-git would otherwise strip every ambient `GIT_*` variable.
 */
export function porcelain(ctx: GitContext): SimpleGit {
  const env: NodeJS.ProcessEnv = { ...(ctx.env ?? process.env) };
  if (ctx.gitDir) env.GIT_DIR = ctx.gitDir;
  const git = simpleGit({
    ...(ctx.cwd ? { baseDir: ctx.cwd } : {}),
    allowEnvironment: Object.keys(env),
    unsafe: USER_ENVIRONMENT,
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
