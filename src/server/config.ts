import { BreakglassError } from '../errors.ts';
import { runGit, type GitContext } from '../git/git.ts';
import { parseDuration } from '../policy/duration.ts';
import { CONFIG_ENV_VARIABLES } from './config-env.ts';
import { parseIdentityMode, type IdentityMode } from './identity.ts';

/**
 * Server settings. Each comes from `git config breakglass.<key>` (the repository's, then
 * system/global), else the environment variable `BREAKGLASS_<KEY>` (for hook environments with no
 * git config of their own: GHES, GitLab's Gitaly; the server bundle's shims export the defaults
 * baked into them there, without overriding a variable already set), else the built-in default.
 * Precedence: git config > environment > baked default > built-in.
 */
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
  return parseServerConfig(values, ctx.env ?? process.env);
}

/**
 * The settings from git config's `breakglass.*` values (lower-cased keys) and the environment
 * (CONFIG_ENV_VARIABLES). Bad values are errors that name where they came from (fail closed).
 */
export function parseServerConfig(
  gitValues: ReadonlyMap<string, string>,
  env: NodeJS.ProcessEnv,
): ServerConfig {
  const setting = (key: keyof typeof CONFIG_ENV_VARIABLES) => {
    const fromGit = gitValues.get(key);
    if (fromGit !== undefined) return { value: fromGit, where: `git config ${key}` };
    const name = CONFIG_ENV_VARIABLES[key];
    const fromEnv = env[name];
    return fromEnv !== undefined && fromEnv !== ''
      ? { value: fromEnv, where: `environment variable ${name}` }
      : undefined;
  };
  const id = setting('breakglass.identity');
  const identity = parseIdentityMode(id?.value);
  if (!identity) {
    throw new BreakglassError(
      'HOOK_FAILED',
      `${id!.where} is "${id!.value.slice(0, 40)}"; use auto, unix or none`,
    );
  }
  const timeout = setting('breakglass.timeout');
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (timeout !== undefined) {
    timeoutMs = /^\d{1,4}$/.test(timeout.value)
      ? Number(timeout.value) * 1000
      : parseDuration(timeout.value, timeout.where);
    if (timeoutMs <= 0 || timeoutMs > 600_000) {
      throw new BreakglassError('HOOK_FAILED', `${timeout.where} must be 1s..10m`);
    }
  }
  const policyFile = setting('breakglass.policy')?.value || undefined;
  return { policyFile, identity, timeoutMs };
}
