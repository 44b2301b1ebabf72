import { getOctokit } from '@actions/github';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { BreakglassError } from '../../src/errors.ts';

/** The parts of a pull request the Action reads (REST `pull-request-simple`). */
export interface PullInfo {
  readonly number: number;
  readonly state: string;
  readonly mergedAt: string | null;
  readonly mergeCommitSha: string | null;
  readonly baseRef: string;
  readonly headSha: string;
  readonly author: string;
  readonly body: string;
  readonly url: string;
}

/** One pull request review (REST `pull-request-review`). */
export interface ReviewInfo {
  readonly id: number;
  readonly login: string | null;
  readonly state: string;
  readonly authorAssociation: string;
  readonly commitId: string | null;
  readonly submittedAt: string | null;
}

/** One entry of the repository activity API. */
export interface ActivityInfo {
  readonly before: string;
  readonly after: string;
  readonly ref: string;
  readonly type: string;
  readonly actor: string | null;
  /** When GitHub received the push (ISO 8601), if the entry says. */
  readonly timestamp: string | null;
}

/** What the Action asks of GitHub; tests may inject another implementation. */
export interface GitHubApi {
  listReviews(pull: number): Promise<ReviewInfo[]>;
  getPull(pull: number): Promise<PullInfo>;
  /** Pull requests associated with a commit (`GET /repos/{o}/{r}/commits/{sha}/pulls`). */
  pullsForCommit(sha: string): Promise<PullInfo[]>;
  /** Recent activity on a ref; null when the token or the plan does not allow it. */
  listActivity(ref: string): Promise<ActivityInfo[] | null>;
  createIssue(title: string, body: string): Promise<{ number: number; url: string }>;
}

// Which `permissions:` each call needs, so a 403 can say what to add to the workflow.
const PERMISSION: Record<string, string> = {
  reviews: 'pull-requests: read',
  pull: 'pull-requests: read',
  'commit pulls': 'pull-requests: read (and contents: read)',
  activity: 'contents: read',
  issue: 'issues: write',
};

// A hung API call must not hold the job (and a required check) until the job's own timeout.
const API_TIMEOUT_MS = 60_000;
const timeout = () => ({ request: { signal: AbortSignal.timeout(API_TIMEOUT_MS) } });

// Bound what one paginated listing may pull in: a hostile PR with endless reviews can't hang us.
const MAX_PAGES = 20;

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function login(u: unknown): string | null {
  return u && typeof u === 'object' && typeof (u as { login?: unknown }).login === 'string'
    ? (u as { login: string }).login
    : null;
}

/** Maps a REST pull request object to PullInfo. */
export function toPullInfo(p: Record<string, unknown>): PullInfo {
  const base = (p.base ?? {}) as Record<string, unknown>;
  const head = (p.head ?? {}) as Record<string, unknown>;
  return {
    number: Number(p.number),
    state: str(p.state),
    mergedAt: typeof p.merged_at === 'string' ? p.merged_at : null,
    mergeCommitSha: typeof p.merge_commit_sha === 'string' ? p.merge_commit_sha : null,
    baseRef: str(base.ref),
    headSha: str(head.sha),
    author: login(p.user) ?? '',
    body: str(p.body),
    url: str(p.html_url),
  };
}

function toReview(r: Record<string, unknown>): ReviewInfo {
  return {
    id: Number(r.id),
    login: login(r.user),
    state: str(r.state),
    authorAssociation: str(r.author_association),
    commitId: typeof r.commit_id === 'string' ? r.commit_id : null,
    submittedAt: typeof r.submitted_at === 'string' ? r.submitted_at : null,
  };
}

/**
 * True for GitHub's rate limits (primary: `x-ratelimit-remaining: 0`; secondary: a 403/429 whose
 * message says so): a 403 that is one must not send people looking for a missing permission.
 */
export function isRateLimit(e: unknown): boolean {
  const { status, response, message } = e as {
    status?: unknown;
    response?: { headers?: Record<string, unknown> };
    message?: unknown;
  };
  if (status === 429) return true;
  if (status !== 403) return false;
  return (
    response?.headers?.['x-ratelimit-remaining'] === '0' ||
    (typeof message === 'string' && /rate limit/i.test(message))
  );
}

/** Turns an Octokit failure into a coded error a workflow author can act on. */
export function apiError(what: string, e: unknown): BreakglassError {
  const status = (e as { status?: unknown }).status;
  const raw = e instanceof Error ? e.message : String(e);
  const message = /aborted|TimeoutError/i.test(raw)
    ? `no answer within ${API_TIMEOUT_MS / 1000} s`
    : raw;
  if (isRateLimit(e)) {
    const reset = Number(
      (e as { response?: { headers?: Record<string, unknown> } }).response?.headers?.[
        'x-ratelimit-reset'
      ],
    );
    return new BreakglassError(
      'GITHUB_RATE_LIMIT',
      `GitHub API ${what}: ${String(status)} rate limit exceeded${Number.isFinite(reset) && reset > 0 ? ` until ${new Date(reset * 1000).toISOString()}` : ''}: ${message.slice(0, 200)}`,
      {
        hint: 'the check fails closed; re-run the job after the limit resets (the token is fine)',
        cause: e,
      },
    );
  }
  if (status === 401) {
    return new BreakglassError(
      'GITHUB_API',
      `GitHub API ${what}: 401 Unauthorized (the token is missing or invalid)`,
      { hint: 'pass `token: ${{ github.token }}` (the default) or a valid token' },
    );
  }
  if (status === 403 || status === 404) {
    const perm = PERMISSION[what] ?? 'pull-requests: read';
    return new BreakglassError(
      'GITHUB_PERMISSION',
      `GitHub API ${what}: ${status} ${message.slice(0, 200)}; ${status === 404 ? 'it does not exist, or ' : ''}the workflow token needs \`permissions: ${perm}\``,
      {
        hint: 'add to the job: permissions: { contents: write, pull-requests: read, issues: write }',
      },
    );
  }
  return new BreakglassError(
    'GITHUB_API',
    `GitHub API ${what} failed${typeof status === 'number' ? ` with ${status}` : ''}: ${message.slice(0, 200)}`,
    { hint: 'the check fails closed; re-run the job when GitHub is healthy', cause: e },
  );
}

// Rate-limit waits the job sits out itself; a longer one fails the check with GITHUB_RATE_LIMIT
// (re-run later) rather than holding a required check for an hour.
const MAX_RATE_LIMIT_WAIT_S = 120;
const MAX_RATE_LIMIT_RETRIES = 2;

/**
 * The real client, on @actions/github's Octokit (GITHUB_API_URL, proxy settings honoured), with
 * the octokit retry plugin (5xx and network errors: 3 retries with growing back-off) and the
 * throttling plugin (GitHub's rate limits: waits out `retry-after` / `x-ratelimit-reset` when
 * short, gives up when long).
 */
export function createGitHubApi(token: string, owner: string, repo: string): GitHubApi {
  const onLimit = (after: number, _options: unknown, _octokit: unknown, count: number) =>
    count < MAX_RATE_LIMIT_RETRIES && after <= MAX_RATE_LIMIT_WAIT_S;
  const octokit = getOctokit(
    token,
    {
      retry: { doNotRetry: [400, 401, 403, 404, 410, 422, 451] },
      throttle: { onRateLimit: onLimit, onSecondaryRateLimit: onLimit },
    },
    retry,
    throttling,
  );
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      throw apiError(what, e);
    }
  };
  const pages = async (what: string, route: string, params: Record<string, unknown>) =>
    call(what, async () => {
      const out: Record<string, unknown>[] = [];
      let page = 0;
      for await (const res of octokit.paginate.iterator(route, {
        owner,
        repo,
        per_page: 100,
        ...timeout(),
        ...params,
      })) {
        out.push(...(res.data as Record<string, unknown>[]));
        if (++page >= MAX_PAGES) break;
      }
      return out;
    });
  return {
    async listReviews(pull) {
      const data = await pages('reviews', 'GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews', {
        pull_number: pull,
      });
      return data.map(toReview);
    },
    async getPull(pull) {
      const res = await call('pull', () =>
        octokit.request('GET /repos/{owner}/{repo}/pulls/{pull_number}', {
          owner,
          repo,
          pull_number: pull,
          ...timeout(),
        }),
      );
      return toPullInfo(res.data as unknown as Record<string, unknown>);
    },
    async pullsForCommit(sha) {
      const data = await pages(
        'commit pulls',
        'GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls',
        {
          commit_sha: sha,
        },
      );
      return data.map(toPullInfo);
    },
    async listActivity(ref) {
      try {
        const res = await octokit.request('GET /repos/{owner}/{repo}/activity', {
          owner,
          repo,
          ref,
          per_page: 30,
          ...timeout(),
        });
        return (res.data as unknown as Record<string, unknown>[]).map((a) => ({
          before: str(a.before),
          after: str(a.after),
          ref: str(a.ref),
          type: str(a.activity_type),
          actor: login(a.actor),
          timestamp: typeof a.timestamp === 'string' ? a.timestamp : null,
        }));
      } catch (e) {
        const status = (e as { status?: unknown }).status;
        // The activity API is a cross-check only: not every token or plan may read it. A rate
        // limit is not a missing permission: it fails like any other call.
        if ((status === 403 || status === 404) && !isRateLimit(e)) return null;
        throw apiError('activity', e);
      }
    },
    async createIssue(title, body) {
      const res = await call('issue', () =>
        octokit.request('POST /repos/{owner}/{repo}/issues', {
          owner,
          repo,
          title,
          body,
          ...timeout(),
        }),
      );
      return { number: res.data.number, url: res.data.html_url };
    },
  };
}
