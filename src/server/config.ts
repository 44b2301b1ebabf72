import { BreakglassError } from '../errors.ts';
import { runGit, type GitContext } from '../git/git.ts';
import { parseDuration } from '../policy/duration.ts';
import { parseIdentityMode, type IdentityMode } from './identity.ts';

/** Server settings from `git config breakglass.*` (the repository's, then system/global). */
export interface ServerConfig {
  /** Pinned policy file (`breakglass.policy`); wins over the one in the repository. */
  readonly policyFile: string | undefined;
  readonly identity: IdentityMode;
  /** Watchdog for pre-receive (`breakglass.timeout`, default 20s). */
  readonly timeoutMs: number;
}

export const DEFAULT_TIMEOUT_MS = 20_000;

/** Reads every `breakglass.*` setting with one `git config` call. Bad values are errors. */
export async function readServerConfig(ctx: GitContext): Promise<ServerConfig> {
  const r = await runGit(ctx, ['config', '-z', '--get-regexp', '^breakglass\\.'], {
    allowFail: true,
  });
  // Exit 1 means "no such keys"; anything else is a broken config file.
  if (r.code !== 0 && r.code !== 1) {
    throw new BreakglassError('HOOK_FAILED', `git config could not be read: ${r.stderr.trim()}`);
  }
  const values = new Map<string, string>();
  for (const item of r.stdout.toString('utf8').split('\0')) {
    if (!item) continue;
    const nl = item.indexOf('\n');
    const key = (nl < 0 ? item : item.slice(0, nl)).toLowerCase();
    values.set(key, nl < 0 ? '' : item.slice(nl + 1)); // last one wins, as in git
  }
  const identity = parseIdentityMode(values.get('breakglass.identity'));
  if (!identity) {
    throw new BreakglassError(
      'HOOK_FAILED',
      `git config breakglass.identity is "${values.get('breakglass.identity')!.slice(0, 40)}"; use auto, unix or none`,
    );
  }
  const timeoutText = values.get('breakglass.timeout');
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (timeoutText !== undefined) {
    timeoutMs = /^\d{1,4}$/.test(timeoutText)
      ? Number(timeoutText) * 1000
      : parseDuration(timeoutText, 'breakglass.timeout');
    if (timeoutMs <= 0 || timeoutMs > 600_000) {
      throw new BreakglassError('HOOK_FAILED', 'git config breakglass.timeout must be 1s..10m');
    }
  }
  const policyFile = values.get('breakglass.policy') || undefined;
  return { policyFile, identity, timeoutMs };
}
