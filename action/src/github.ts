import { getOctokit } from '@actions/github';
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

/** Turns an Octokit failure into a coded error a workflow author can act on. */
export function apiError(what: string, e: unknown): BreakglassError {
  const status = (e as { status?: unknown }).status;
  const raw = e instanceof Error ? e.message : String(e);
  const message = /aborted|TimeoutError/i.test(raw)
    ? `no answer within ${API_TIMEOUT_MS / 1000} s`
    : raw;
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

/** The real client, on @actions/github's Octokit (GITHUB_API_URL, proxy settings honoured). */
export function createGitHubApi(token: string, owner: string, repo: string): GitHubApi {
  const octokit = getOctokit(token, { request: { retries: 0 } });
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
        }));
      } catch (e) {
        const status = (e as { status?: unknown }).status;
        // The activity API is a cross-check only: not every token or plan may read it.
        if (status === 403 || status === 404) return null;
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
