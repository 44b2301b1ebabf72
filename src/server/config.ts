import { BreakglassError } from '../errors.ts';
import { runGit, type GitContext } from '../git/git.ts';
import { parseSettings, settingsFromGit, type ServerSettings } from '../engine/triage.ts';

/**
 * Server settings. Each comes from `git config breakglass.<key>` (the repository's, then
 * system/global), else the environment variable `BREAKGLASS_<KEY>` (for hook environments with no
 * git config of their own: GHES, GitLab's Gitaly; the server bundle's shims export the defaults
 * baked into them there, without overriding a variable already set), else the built-in default.
 * Precedence: git config > environment > baked default > built-in. Parsed in engine/triage.ts.
 */
export type ServerConfig = ServerSettings;
export { DEFAULT_TIMEOUT_MS } from '../engine/triage.ts';

/** Every `breakglass.*` entry as git reads it (one `git config -z`), in git's order. */
export async function readServerSettings(ctx: GitContext): Promise<[string, string][]> {
  const r = await runGit(ctx, ['config', '-z', '--get-regexp', '^breakglass\\.'], {
    allowFail: true,
  });
  // Exit 1 means "no such keys"; anything else is a broken config file.
  if (r.code !== 0 && r.code !== 1) {
    throw new BreakglassError('HOOK_FAILED', `git config could not be read: ${r.stderr.trim()}`);
  }
  return settingsFromGit(r.stdout.toString('utf8'));
}

/** Reads every `breakglass.*` setting with one `git config` call, then the environment. */
export async function readServerConfig(ctx: GitContext): Promise<ServerConfig> {
  return parseSettings(await readServerSettings(ctx), ctx.env ?? process.env);
}

/**
 * The settings from git config's `breakglass.*` values (lower-cased keys) and the environment
 * (CONFIG_ENV_VARIABLES). Bad values are errors that name where they came from (fail closed).
 */
export function parseServerConfig(
  gitValues: ReadonlyMap<string, string>,
  env: NodeJS.ProcessEnv,
): ServerConfig {
  return parseSettings([...gitValues], env);
}
