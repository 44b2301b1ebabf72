import { BreakglassError } from '../errors.ts';
import { runGit, type GitContext } from '../git/git.ts';
import { parseSettings, type ServerSettings } from '../engine/triage.ts';

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
  const entries: [string, string][] = [];
  for (const item of r.stdout.toString('utf8').split('\0')) {
    if (!item) continue;
    const nl = item.indexOf('\n');
    entries.push([
      (nl < 0 ? item : item.slice(0, nl)).toLowerCase(),
      nl < 0 ? '' : item.slice(nl + 1),
    ]);
  }
  return entries;
}

/** Reads every `breakglass.*` setting with one `git config` call. Bad values are errors. */
export async function readServerConfig(ctx: GitContext): Promise<ServerConfig> {
  return parseSettings(await readServerSettings(ctx));
}
