import os from 'node:os';
import type { Pusher } from '../engine/evaluate.ts';
import { principalForLogin, type Policy } from '../policy/policy.ts';
import type { IdentityMode } from '../engine/triage.ts';

/**
 * Where the pusher's login came from. The platform variables are set by the server software
 * (GitLab, GHES, Gitea/Forgejo, gitolite, the web server in front of http-backend), never by the
 * client, so they are trusted in the setup that sets them.
 */
export type IdentitySource =
  | 'GL_USERNAME'
  | 'GITHUB_USER_LOGIN'
  | 'GITEA_PUSHER_NAME'
  | 'GL_USER'
  | 'REMOTE_USER'
  | 'unix'
  | 'none'
  | 'invalid';

/** Checked in this order (DESIGN §6). */
export const IDENTITY_VARIABLES = [
  'GL_USERNAME',
  'GITHUB_USER_LOGIN',
  'GITEA_PUSHER_NAME',
  'GL_USER',
  'REMOTE_USER',
] as const;

/**
 * `git config breakglass.identity`:
 * - `auto` (default): the first platform variable that is set, else the Unix user running the hook;
 * - `unix`: only the Unix user (plain ssh with one account per person; platform variables ignored);
 * - `none`: the server cannot tell who pushed (a shared `git@` account). The pusher is unknown:
 *   the holder check (T14) is skipped, nobody takes the normal path (`pushers`), nobody is a
 *   recorder, and tickets are only found when named with `-o breakglass=<id>` or pushed along.
 */
export type { IdentityMode } from '../engine/triage.ts';

// Logins are names on a forge or a Unix account: bounded, printable, no spaces or separators
// that could forge a note line.
const LOGIN = /^[A-Za-z0-9_][A-Za-z0-9._@+-]{0,99}$/;

export interface ResolvedLogin {
  readonly login: string | null;
  readonly source: IdentitySource;
}

export { parseIdentityMode } from '../engine/triage.ts';

function unixUser(env: NodeJS.ProcessEnv): string {
  try {
    return os.userInfo().username;
  } catch {
    // A uid with no passwd entry (containers): the numeric uid still names the account.
    return env.USER && LOGIN.test(env.USER) ? env.USER : `uid-${process.getuid?.() ?? 'unknown'}`;
  }
}

// TM13: which variables a client can influence depends on the transport (docs/threat-model.md).
/** Finds the pusher's login in the hook environment (no policy needed). */
export function resolveLogin(env: NodeJS.ProcessEnv, mode: IdentityMode): ResolvedLogin {
  if (mode === 'none') return { login: null, source: 'none' };
  if (mode === 'auto') {
    for (const name of IDENTITY_VARIABLES) {
      const value = env[name];
      if (value === undefined || value === '') continue;
      // A set but malformed variable must not fall through to a weaker source.
      return LOGIN.test(value)
        ? { login: value, source: name }
        : { login: null, source: 'invalid' };
    }
  }
  const user = unixUser(env);
  return LOGIN.test(user) ? { login: user, source: 'unix' } : { login: null, source: 'invalid' };
}

/** The engine's Pusher for a resolved login under a policy. */
export function pusherFor(resolved: ResolvedLogin, policy: Policy | null): Pusher {
  if (resolved.source === 'none') return { known: false };
  if (resolved.login === null) {
    // Known to be someone, but not someone we can name: matches no holder, pusher or recorder.
    return { known: true, login: '(invalid login)', principal: undefined };
  }
  const principal = policy ? principalForLogin(policy, resolved.login)?.name : undefined;
  return { known: true, login: resolved.login, principal };
}
