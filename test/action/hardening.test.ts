// Issue 13 through the built bundle: checks a pull request cannot switch off, judged at the time
// GitHub received the change, no false alarms on rebase merges and merge groups, findings that
// survive a failed note push, retries and rate limits, the policy at the base tip, short failure
// text, stale approvals and unprotected bases.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { policyYaml } from '../helpers/fixtures.ts';
import { asAcme, fixture, webhookExample, World, type Payload } from './harness.ts';

let w: World;
let base: string;

function review(login: string, state: string, id: number, commit: string) {
  const r = fixture<Payload>('review.json');
  Object.assign(r, { id, state, author_association: 'COLLABORATOR', commit_id: commit });
  r.user.login = login;
  r.submitted_at = `2026-11-29T03:${String(10 + id).padStart(2, '0')}:00Z`;
  return r;
}

/** A real pull_request.opened payload for a PR into main. */
function opened(n: number, head: string, baseSha = base, body = '') {
  const p = asAcme(webhookExample('pull_request', (e) => e.action === 'opened'));
  p.number = n;
  p.pull_request.number = n;
  p.pull_request.user.login = 'alice';
  p.pull_request.body = body;
  p.pull_request.base.ref = 'main';
  p.pull_request.base.sha = baseSha;
  p.pull_request.head.sha = head;
  return p;
}

/** A real push payload updating main, received by GitHub at `pushedAt`. */
function push(from: string, to: string, sender: string, pushedAt = Date.now()): Payload {
  const p = asAcme(webhookExample('push', (e) => e.ref === 'refs/heads/master'));
  Object.assign(p, { ref: 'refs/heads/main', before: from, after: to, forced: false });
  p.created = false;
  p.deleted = false;
  p.repository.pushed_at = Math.floor(pushedAt / 1000);
  p.pusher.name = sender;
  p.sender.login = sender;
  p.head_commit.id = to;
  p.head_commit.message = 'change';
  return p;
}

function mergedPull(n: number, merge: string, head: string, mergedAt = new Date()): Payload {
  const pr = fixture<Payload>('pull.json');
  Object.assign(pr, { number: n, merge_commit_sha: merge, merged_at: mergedAt.toISOString() });
  pr.user.login = 'alice';
  pr.head.sha = head;
  return pr;
}

async function pullHead(n: number, file: string, content = `x${n}\n`, from = base) {
  const head = await w.commit(from, file, content);
  await w.pushTo(head, `refs/pull/${n}/head`);
  return head;
}

const noActivity = () =>
  w.github.on('GET /repos/acme/api/activity', { status: 404, json: { message: 'Not Found' } });

before(async () => {
  w = await World.create();
  base = await w.tip();
});
after(() => w.dispose());

describe('1. a pull request cannot switch off its own check', () => {
  for (const file of [
    '.github/workflows/breakglass.yml',
    'tools/deploy/action.yml',
    '.github/CODEOWNERS',
  ]) {
    it(`an approved PR changing ${file} needs a change-policy ticket`, async () => {
      const n = 20 + file.length;
      const head = await pullHead(n, file, 'jobs: { breakglass: { steps: [{ run: "true" }] } }\n');
      w.github.on(`GET /repos/acme/api/pulls/${n}/reviews`, {
        status: 200,
        json: [review('bob', 'APPROVED', 1, head)],
      });
      const r = await w.run('pull_request', opened(n, head));
      assert.equal(r.code, 1, r.stdout);
      assert.match(
        r.stdout,
        new RegExp(
          `::error title=Break-glass check failed::#${n} changes control files \\(${file.replace(/\./g, '\\.')}\\), which needs a change-policy ticket`,
        ),
      );
      assert.match(r.stdout, /--action push --action change-policy/);
    });
  }

  it('the detector flags a reviewed merge that edits a workflow without a change-policy ticket', async () => {
    const from = await w.tip();
    const head = await w.commit(from, '.github/workflows/breakglass.yml', 'on: push\n');
    await w.pushTo(head, 'refs/heads/main');
    noActivity();
    w.github.on(`GET /repos/acme/api/commits/${head}/pulls`, {
      status: 200,
      json: [mergedPull(30, head, head)],
    });
    w.github.on('GET /repos/acme/api/pulls/30/reviews', {
      status: 200,
      json: [review('bob', 'APPROVED', 1, head)],
    });
    const r = await w.run('push', push(from, head, 'alice'));
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /Unticketed push \+ change-policy on refs\/heads\/main/);
    assert.match((await w.note(head)) ?? '', /^Break-glass-Action: push, change-policy$/m);
  });
});

describe('2. judged when GitHub received the change', () => {
  it('a direct push 58 s before its ticket expired is break-glass though the job ran 70 s later', async () => {
    const from = await w.tip();
    const x = await w.commit(from, 'src/late.ts', 'late\n');
    await w.pushTo(x, 'refs/heads/main');
    // Issued 15 min 12 s ago for 15 min: expired 12 s ago; the push reached GitHub 58 s before.
    const issued = Date.now() - 15 * 60_000 - 12_000;
    const id = await w.ticket({ now: issued, actions: ['push'], commits: [x] });
    const pushedAt = issued + 15 * 60_000 - 58_000;
    noActivity();
    w.github.on(`GET /repos/acme/api/commits/${x}/pulls`, { status: 200, json: [] });
    const r = await w.run('push', push(from, x, 'alice', pushedAt));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'breakglass');
    assert.equal(r.outputs.ticket, id);
    assert.match(r.stdout, /judged at \S+ \(repository\.pushed_at\)/);
  });

  it('a PR merged after its ticket expired is "merged after the ticket ended", judged at merged_at', async () => {
    const from = await w.tip();
    const head = await w.commit(from, 'src/slow.ts', 'slow\n');
    await w.pushTo(head, 'refs/heads/main');
    const issued = Date.now() - 20 * 60_000;
    const id = await w.ticket({ now: issued, actions: ['merge-unreviewed'], commits: [head] });
    // Valid for 15 minutes (the gate passed on it then); merged 5 minutes after it expired.
    const mergedAt = new Date(issued + 20 * 60_000);
    noActivity();
    w.github.on(`GET /repos/acme/api/commits/${head}/pulls`, {
      status: 200,
      json: [mergedPull(31, head, head, mergedAt)],
    });
    w.github.on('GET /repos/acme/api/pulls/31/reviews', { status: 200, json: [] });
    const r = await w.run('push', push(from, head, 'alice'));
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stdout,
      new RegExp(
        `::error title=Break-glass violation::Merged after the ticket ended merge-unreviewed on refs/heads/main: .* after ticket ${id} ended \\(expired at \\S+, merged at \\S+\\)`,
      ),
    );
    assert.match(r.summary, /VIOLATION: merged-after-ticket-ended/);
    assert.match((await w.note(head)) ?? '', new RegExp(`after ticket ${id} ended`));
  });
});

describe('3. reviewed rebase merges of many commits', () => {
  it('a 25-commit rebase merge is one look-up, reviewed, and writes nothing', async () => {
    const start = await w.tip();
    // The PR: 25 commits on an older main.
    let prTip = start;
    for (let i = 0; i < 25; i++) prTip = await w.commit(prTip, `src/r${i}.ts`, `r${i}\n`);
    await w.pushTo(prTip, 'refs/pull/40/head');
    // main moved on; GitHub's "rebase and merge" writes each PR commit anew on top of it.
    const moved = await w.commit(start, 'src/other.ts', 'other\n');
    await w.pushTo(moved, 'refs/heads/main');
    await w.git(w.dev, ['checkout', '--quiet', '--detach', prTip]);
    await w.git(w.dev, ['rebase', '--quiet', '--committer-date-is-author-date', moved]);
    const rebased = await w.git(w.dev, ['rev-parse', 'HEAD']);
    await w.pushTo(rebased, 'refs/heads/main');
    noActivity();
    w.github.on(`GET /repos/acme/api/commits/${rebased}/pulls`, {
      status: 200,
      json: [mergedPull(40, rebased, prTip)],
    });
    w.github.on('GET /repos/acme/api/pulls/40/reviews', {
      status: 200,
      json: [review('bob', 'APPROVED', 1, prTip)],
    });
    const seen = w.github.requests.length;
    const r = await w.run('push', push(moved, rebased, 'alice'));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'normal');
    assert.match(r.stdout, /reviewed merge of #40 \(1\/1 approvals\)/);
    assert.match(r.stdout, /pull request\(s\) #40 found in 1 commit look-up\(s\)/);
    // The other 24 commits are matched to #40 by patch id (their look-ups would 404 here).
    const lookups = w.github.requests
      .slice(seen)
      .filter((q) => /\/commits\/[0-9a-f]+\/pulls/.test(q.url));
    assert.deepEqual(
      lookups.map((q) => q.url.split('?')[0]),
      [`/repos/acme/api/commits/${rebased}/pulls`],
    );
    assert.equal(await w.note(rebased), undefined);
  });
});

describe('4. merge groups', () => {
  function group(n: number, message: string, headRef?: string) {
    const p = asAcme(webhookExample('merge_group', (e) => e.action === 'checks_requested'));
    p.merge_group.base_sha = base;
    p.merge_group.base_ref = 'refs/heads/main';
    p.merge_group.head_ref =
      headRef ?? `refs/heads/gh-readonly-queue/main/pr-${n}-${'a'.repeat(40)}`;
    p.merge_group.head_commit.message = message;
    return p;
  }

  it('judges the PR the queue branch names, not PRs mentioned in a squash body', async () => {
    const head = await pullHead(50, 'src/queue.ts');
    const pr = mergedPull(50, head, head);
    Object.assign(pr, { state: 'open', merged_at: null });
    w.github.on('GET /repos/acme/api/pulls/50', { status: 200, json: pr });
    w.github.on('GET /repos/acme/api/pulls/50/reviews', {
      status: 200,
      json: [review('carol', 'APPROVED', 1, head)],
    });
    // #98 has no route: looking it up would fail the check.
    const r = await w.run('merge_group', group(50, 'Queue fix (#50)\n\n* Fix flaky test (#98)'));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'normal');
    assert.ok(!w.github.paths().includes('GET /repos/acme/api/pulls/98'));
  });

  it('fails closed on a group whose branch is not a merge queue branch of its base', async () => {
    const r = await w.run(
      'merge_group',
      group(50, 'x', `refs/heads/gh-readonly-queue/release/pr-50-${'a'.repeat(40)}`),
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /cannot tell which pull request merge group .* adds \(expected refs\/heads\/gh-readonly-queue\/main\/pr-<n>-<sha>\) \[USAGE\]/,
    );
  });
});

describe('5. a note push that fails does not lose the finding', () => {
  it('refused refs/notes push: job fails, error names commit and reason, summary, issue', async () => {
    const hook = path.join(w.origin, 'hooks/pre-receive');
    await fs.writeFile(
      hook,
      '#!/bin/sh\nwhile read o n r; do case "$r" in refs/notes/*) echo "protected ref $r" >&2; exit 1;; esac; done\nexit 0\n',
      { mode: 0o755 },
    );
    try {
      const from = await w.tip();
      const x = await w.commit(from, 'src/lost.ts', 'lost\n');
      await w.pushTo(x, 'refs/heads/main');
      noActivity();
      w.github.on(`GET /repos/acme/api/commits/${x}/pulls`, { status: 200, json: [] });
      w.github.on('POST /repos/acme/api/issues', {
        status: 201,
        json: fixture('issue-created.json'),
      });
      const seen = w.github.requests.length;
      const r = await w.run('push', push(from, x, 'mallory'), {
        inputs: { 'open-issue': 'true' },
      });
      assert.equal(r.code, 1, r.stdout);
      assert.match(
        r.stdout,
        new RegExp(
          `::error title=Break-glass violation::Unticketed push on refs/heads/main: commit ${x.slice(0, 12)}`,
        ),
      );
      assert.match(
        r.stdout,
        new RegExp(
          `::error title=Break-glass violation::The audit note for commit ${x.slice(0, 12)} on refs/heads/main \\(violation\\) was NOT recorded: could not push the audit notes`,
        ),
      );
      assert.match(r.summary, /NOTE NOT RECORDED/);
      assert.equal(await w.note(x), undefined);
      const issue = w.github.requests
        .slice(seen)
        .find((q) => q.method === 'POST' && q.url === '/repos/acme/api/issues');
      assert.ok(issue);
      assert.match(JSON.parse(issue.body).body, /The audit note could not be pushed/);
    } finally {
      await fs.rm(hook);
    }
  });
});

describe('6. transient errors and rate limits', () => {
  it('retries a 502 and a secondary rate limit (retry-after), then passes', async () => {
    const head = await pullHead(60, 'src/retry.ts');
    let calls = 0;
    w.github.on('GET /repos/acme/api/pulls/60/reviews', async () => {
      calls++;
      if (calls === 1) return { status: 502, json: { message: 'Bad Gateway' } };
      if (calls === 2) {
        return {
          status: 403,
          json: { message: 'You have exceeded a secondary rate limit. Please wait.' },
          headers: { 'retry-after': '1' },
        };
      }
      return { status: 200, json: [review('bob', 'APPROVED', 1, head)] };
    });
    const r = await w.run('pull_request', opened(60, head));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(calls, 3);
  });

  it('a rate-limit 403 that will not reset soon says rate limit, not a missing permission', async () => {
    const head = await pullHead(61, 'src/limit.ts');
    const reset = Math.floor(Date.now() / 1000) + 3600;
    w.github.on('GET /repos/acme/api/pulls/61/reviews', {
      status: 403,
      json: { message: 'API rate limit exceeded for installation ID 1.' },
      headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) },
    });
    const r = await w.run('pull_request', opened(61, head));
    assert.equal(r.code, 1);
    assert.match(r.stdout, /rate limit exceeded until \S+Z.*\[GITHUB_RATE_LIMIT\]/);
    assert.doesNotMatch(r.stdout, /permissions: pull-requests/);
  });
});

describe('8. failure text: the closest tickets and how to get a good one', () => {
  it('with many live tickets names three, counts the rest, and gives a complete request command', async () => {
    const head = await pullHead(80, 'src/many.ts');
    w.github.on('GET /repos/acme/api/pulls/80/reviews', { status: 200, json: [] });
    // Live merge-unreviewed tickets for other commits: each fails one rule (T8).
    for (let i = 0; i < 8; i++) await w.ticket({ actions: ['merge-unreviewed'], commits: [base] });
    const r = await w.run('pull_request', opened(80, head));
    assert.equal(r.code, 1, r.stdout);
    const errors = r.stdout.split('\n').filter((l) => l.startsWith('::error title=Break-glass'));
    const ticketLines = errors.filter((l) => /::ticket \d{8}T\d{6}Z-/.test(l));
    assert.equal(ticketLines.length, 3, errors.join('\n'));
    assert.ok(ticketLines.every((l) => /\[SCOPE_COMMIT, T8\]/.test(l)));
    assert.ok(errors.some((l) => /::\d+ other ticket\(s\) considered fail on more rules/.test(l)));
    assert.ok(
      errors.some((l) =>
        l.includes(
          `bg-sign request --ref main --action merge-unreviewed --commit ${head} --ttl 30m --reason 'emergency merge of pull request #80' --push`,
        ),
      ),
      errors.join('\n'),
    );
    assert.ok(errors.every((l) => l.length < 1000));
  });
});

describe('9. stale approvals, unprotected bases, summaries and log groups', () => {
  it('an approval of an older head does not count unless dismiss-stale-approvals is false', async () => {
    const old = await pullHead(90, 'src/stale.ts');
    const head = await w.commit(old, 'src/stale.ts', 'changed after the approval\n');
    await w.pushTo(head, 'refs/pull/90/head', true);
    w.github.on('GET /repos/acme/api/pulls/90/reviews', {
      status: 200,
      json: [review('bob', 'APPROVED', 1, old)],
    });
    const r = await w.run('pull_request', opened(90, head));
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stdout,
      /#90 has 0 of 1 required approval\(s\) \(approval by bob is for an older head commit\)/,
    );
    const lax = await w.run('pull_request', opened(90, head), {
      inputs: { 'dismiss-stale-approvals': 'false' },
    });
    assert.equal(lax.code, 0, lax.stdout);
  });

  it('a PR into a branch the policy does not protect passes with a notice (branch without a policy file)', async () => {
    // A topic branch that has no policy file: the default branch's policy governs it.
    await w.commit(base, 'src/topic-start.ts', 's\n');
    await w.git(w.dev, ['rm', '--quiet', '-r', '.breakglass']);
    await w.git(w.dev, ['commit', '--quiet', '-m', 'topic without policy']);
    const bare = await w.git(w.dev, ['rev-parse', 'HEAD']);
    await w.pushTo(bare, 'refs/heads/feature/x');
    const head = await pullHead(91, 'src/topic.ts', 't\n', bare);
    const p = opened(91, head, bare);
    p.pull_request.base.ref = 'feature/x';
    const r = await w.run('pull_request', p);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /::notice title=git-breakglass::refs\/heads\/feature\/x is not protected by \.breakglass\/policy\.yml at refs\/heads\/main \(\w+\): nothing to check/,
    );
  });

  it('pull_request_target runs the gate (documented: it reads the head only as git objects)', async () => {
    const head = await pullHead(93, 'src/target.ts');
    w.github.on('GET /repos/acme/api/pulls/93/reviews', { status: 200, json: [] });
    const r = await w.run('pull_request_target', opened(93, head));
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stdout,
      /::error title=Break-glass check failed::#93 has 0 of 1 required approval/,
    );
  });

  it('an error run writes the job summary too, and logs in groups', async () => {
    const head = await pullHead(92, 'src/err.ts');
    w.github.on('GET /repos/acme/api/pulls/92/reviews', {
      status: 500,
      json: fixture('error-500.json'),
    });
    const r = await w.run('pull_request', opened(92, head));
    assert.equal(r.code, 1);
    assert.match(r.summary, /### git-breakglass: error \(the check fails closed\)/);
    assert.match(r.summary, /GitHub API reviews failed with 500/);
    assert.match(r.stdout, /^::group::git-breakglass: policy and tickets$/m);
    assert.match(r.stdout, /^::endgroup::$/m);
  });
});

// Last: it changes the policy on main.
describe('7. the gate reads the policy at the base branch tip', () => {
  it('an older PR event (old base.sha) is judged by the policy main has now', async () => {
    const head = await pullHead(70, 'src/policy-tip.ts');
    w.github.on('GET /repos/acme/api/pulls/70/reviews', {
      status: 200,
      json: [review('bob', 'APPROVED', 1, head)],
    });
    const before = await w.run('pull_request', opened(70, head));
    assert.equal(before.code, 0, before.stdout);
    const tip = await w.tip();
    const stricter = await w.commit(
      tip,
      '.breakglass/policy.yml',
      policyYaml().replace('requiredApprovals: 1', 'requiredApprovals: 2'),
    );
    await w.pushTo(stricter, 'refs/heads/main');
    // The same event again (base.sha is still the old commit): two approvals are needed now.
    const after = await w.run('pull_request', opened(70, head));
    assert.equal(after.code, 1, after.stdout);
    assert.match(after.stdout, /#70 has 1 of 2 required approval\(s\)/);
    assert.match(
      after.stdout,
      new RegExp(
        `policy: \\.breakglass/policy\\.yml at refs/heads/main \\(${stricter.slice(0, 12)}\\)`,
      ),
    );
  });
});
