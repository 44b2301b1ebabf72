import { BreakglassError } from '../errors.ts';
import { runGit, type GitContext } from '../git/git.ts';
import { parseSettings, settingsFromGit, type ServerSettings } from '../engine/triage.ts';

/** Server settings from `git config breakglass.*` (engine/triage.ts parses them). */
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

/** Reads every `breakglass.*` setting with one `git config` call. Bad values are errors. */
export async function readServerConfig(ctx: GitContext): Promise<ServerConfig> {
  return parseSettings(await readServerSettings(ctx));
}
