// What a forge tells its hooks about where a push came from (docs/server-setup.md §5, "Forges"):
// a pull/merge request merged in the web UI reaches the hooks as a push by the merging user;
// the banner says so, so nobody mistakes it for a push from someone's clone.
import { oneLine } from './report.ts';

/** Reads a forge variable: bounded, one line, no controls (set by the forge, shown to people). */
function value(env: NodeJS.ProcessEnv, key: string, max = 80): string | undefined {
  const v = env[key];
  return v ? oneLine(v.trim(), max) : undefined;
}

/**
 * A description of a push the forge made on someone's behalf (a web-UI merge, an API call), or
 * null for a plain git push. From the variables each forge documents for its server hooks:
 * - GHES: `GITHUB_VIA` names how the ref was changed (`pull request merge button`, `merge api`,
 *   ...), with `GITHUB_PULL_REQUEST_HEAD` / `_BASE` / `_AUTHOR_LOGIN` for pull request merges;
 * - GitLab: `GL_PROTOCOL` is `web` for anything but a git push over ssh or http (merges in the
 *   UI, web edits, API);
 * - Gitea/Forgejo: `GITEA_PR_ID` is the pull request whose merge this is (0 or unset otherwise).
 */
export function forgeOrigin(env: NodeJS.ProcessEnv): string | null {
  const via = value(env, 'GITHUB_VIA');
  if (via) {
    const head = value(env, 'GITHUB_PULL_REQUEST_HEAD');
    const base = value(env, 'GITHUB_PULL_REQUEST_BASE');
    const author = value(env, 'GITHUB_PULL_REQUEST_AUTHOR_LOGIN', 40);
    const pr =
      head && base ? `; pull request ${head} -> ${base}${author ? ` by ${author}` : ''}` : '';
    return `GitHub Enterprise: ${via}${pr}`;
  }
  if (env.GL_PROTOCOL === 'web') {
    return 'GitLab web UI or API (a merge request merged in the UI arrives like this)';
  }
  const pr = env.GITEA_PR_ID;
  if (pr && /^[1-9]\d{0,18}$/.test(pr)) {
    return `Gitea/Forgejo: merge of pull request id ${pr} in the web UI`;
  }
  return null;
}
