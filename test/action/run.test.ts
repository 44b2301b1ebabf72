// run(deps) in-process with injected dependencies (clock, GitHub client, output sink), plus the
// pure pieces: review counting, merge-group parsing, ticket names in free text.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { load as loadYaml } from 'js-yaml';
import { after, before, describe, it } from 'node:test';
import type { Deps, OutputSink } from '../../action/src/deps.ts';
import type { GitHubApi, ReviewInfo } from '../../action/src/github.ts';
import { mergeGroupPull } from '../../action/src/gate.ts';
import { modeFor, run } from '../../action/src/main.ts';
import { countApprovals } from '../../action/src/reviews.ts';
import { namedTicketIds } from '../../action/src/tickets.ts';
import { testPolicy } from '../helpers/fixtures.ts';
import { World } from './harness.ts';

function rv(id: number, login: string, state: string, assoc = 'MEMBER'): ReviewInfo {
  return {
    id,
    login,
    state,
    authorAssociation: assoc,
    commitId: null,
    submittedAt: `2026-11-29T03:${String(id).padStart(2, '0')}:00Z`,
  };
}

describe('countApprovals', () => {
  const policy = testPolicy();
  it('takes the latest decisive review per reviewer', () => {
    const c = countApprovals(
      [
        rv(1, 'bob', 'APPROVED'),
        rv(2, 'bob', 'COMMENTED'), // does not cancel
        rv(3, 'carol', 'APPROVED'),
        rv(4, 'carol', 'CHANGES_REQUESTED'), // cancels
        rv(5, 'dave', 'CHANGES_REQUESTED'),
        rv(6, 'dave', 'APPROVED'), // re-approves
      ],
      'alice',
      policy,
    );
    assert.deepEqual(c.approvers, ['bob', 'dave']);
    assert.deepEqual(c.changesRequested, ['carol']);
  });
  it('ignores the author, their other logins, dismissed reviews and non-members', () => {
    const c = countApprovals(
      [
        rv(1, 'alice', 'APPROVED'),
        rv(2, 'alice-gh', 'APPROVED'),
        rv(3, 'bob', 'DISMISSED'),
        rv(4, 'stranger', 'APPROVED', 'CONTRIBUTOR'),
        rv(5, 'outsider', 'APPROVED', 'OWNER'),
      ],
      'alice',
      policy,
    );
    assert.deepEqual(c.approvers, ['@outsider']);
  });
  it('counts two logins of one principal once', () => {
    const c = countApprovals(
      [rv(1, 'alice', 'APPROVED'), rv(2, 'alice-gh', 'APPROVED')],
      'bob',
      policy,
    );
    assert.deepEqual(c.approvers, ['alice']);
  });
});

describe('event parsing', () => {
  it('finds the pull request a merge group adds from the queue branch, never from message text', () => {
    assert.equal(
      mergeGroupPull({
        head_ref:
          'refs/heads/gh-readonly-queue/main/pr-104-929f8209d40f77f4abc622a499c93a83babdbe64',
        head_commit: { message: 'Fix it (#101)\n\nMerge pull request #102 from x/y' },
      }),
      104,
    );
    assert.equal(
      mergeGroupPull({ head_ref: 'refs/heads/other', head_commit: { message: 'x (#101)' } }),
      null,
    );
  });
  it('reads ticket names from free text, bounded', () => {
    assert.deepEqual(
      namedTicketIds(
        'hotfix\nbreakglass: 20261129T031200Z-7f3a9c\nBreak-glass-Ticket: 20261129T031300Z-abcdef',
      ),
      ['20261129T031200Z-7f3a9c', '20261129T031300Z-abcdef'],
    );
    assert.deepEqual(namedTicketIds('breakglass: ../../etc'), []);
    const many = Array.from(
      { length: 50 },
      (_, i) => `breakglass: 20261129T0312${String(i).padStart(2, '0')}Z-aaaaaa`,
    );
    assert.equal(namedTicketIds(many.join('\n')).length, 10);
  });
});

describe('run(deps) with injected dependencies', () => {
  let w: World;
  before(async () => {
    w = await World.create();
  });
  after(() => w.dispose());

  function sink() {
    const log = {
      outputs: {} as Record<string, string>,
      errors: [] as string[],
      failed: [] as string[],
      summary: '',
    };
    const out: OutputSink = {
      setOutput: (n, v) => void (log.outputs[n] = v),
      info: () => {},
      warning: () => {},
      notice: () => {},
      group: (_name, fn) => fn(),
      error: (m) => void log.errors.push(m),
      summary: async (md) => void (log.summary += md),
      setFailed: (m) => void log.failed.push(m),
    };
    return { out, log };
  }

  async function deps(
    github: Partial<GitHubApi>,
    payload: Record<string, unknown>,
    name = 'pull_request',
  ) {
    const cwd = await w.workspace();
    const { out, log } = sink();
    const unexpected = () => Promise.reject(new Error('unexpected API call'));
    const d: Deps = {
      now: () => Date.now(),
      inputs: {
        token: 't',
        policyPath: '.breakglass/policy.yml',
        mode: 'auto',
        openIssue: false,
        notes: true,
        remote: 'origin',
        reviewOlderThan: '24h',
        dismissStaleApprovals: false,
      },
      event: {
        name,
        payload,
        owner: 'acme',
        repo: 'api',
        actor: 'alice',
        runUrl: 'https://example.invalid/run',
      },
      git: { cwd, env: w.env },
      github: {
        listReviews: unexpected,
        getPull: unexpected,
        pullsForCommit: unexpected,
        listActivity: async () => null,
        createIssue: unexpected,
        ...github,
      },
      out,
      sleep: async () => {},
      random: () => 0.5,
      recordedBy: 'action@test',
    };
    return { d, log };
  }

  it('gate: an approved pull request passes, the sink gets outputs and a summary', async () => {
    const base = await w.tip();
    const head = await w.commit(base, 'src/x.ts', 'x\n');
    await w.pushTo(head, 'refs/pull/1/head');
    const payload = {
      pull_request: {
        number: 1,
        user: { login: 'alice' },
        body: '',
        base: { ref: 'main', sha: base },
        head: { sha: head },
      },
    };
    const { d, log } = await deps(
      { listReviews: async () => [rv(1, 'carol', 'APPROVED')] },
      payload,
    );
    await run(d);
    assert.deepEqual(log.failed, []);
    assert.equal(log.outputs.decision, 'normal');
    assert.match(log.summary, /\| refs\/heads\/main \| #1 /);
  });

  it('gate: a GitHub client error fails closed with its message', async () => {
    const base = await w.tip();
    const payload = {
      pull_request: {
        number: 2,
        user: { login: 'alice' },
        body: '',
        base: { ref: 'main', sha: base },
        head: { sha: base },
      },
    };
    const { d, log } = await deps(
      { listReviews: () => Promise.reject(new Error('socket hang up')) },
      payload,
    );
    await run(d);
    assert.equal(log.failed.length, 1);
    assert.match(log.failed[0]!, /socket hang up/);
    assert.equal(log.outputs.decision, 'violation');
  });

  it('refuses a mode that does not fit the event', async () => {
    const { d, log } = await deps({}, {}, 'push');
    await run({ ...d, inputs: { ...d.inputs, mode: 'gate' } });
    assert.match(log.failed[0]!, /mode gate needs a pull_request/);
  });
});

describe('docs/github.md workflow', () => {
  it('parses, grants each job only what its mode needs, and every event it lists has a mode', () => {
    const doc = readFileSync(new URL('../../docs/github.md', import.meta.url), 'utf8');
    const block = /```yaml\n([\s\S]*?)```/.exec(doc);
    assert.ok(block, 'a yaml block');
    type Job = {
      if: string;
      permissions: Record<string, string>;
      steps: { uses?: string; with?: Record<string, unknown> }[];
    };
    const wf = loadYaml(block[1]!) as {
      on: Record<string, unknown>;
      permissions: Record<string, string>;
      jobs: Record<string, Job>;
    };
    // Nothing at the top: a job that forgets its own block gets no access.
    assert.deepEqual(wf.permissions, {});
    const jobs = wf.jobs;
    assert.deepEqual(jobs.breakglass!.permissions, { contents: 'read', 'pull-requests': 'read' });
    assert.deepEqual(jobs.detect!.permissions, {
      contents: 'write',
      'pull-requests': 'read',
      issues: 'write',
    });
    assert.deepEqual(jobs['review-check']!.permissions, { contents: 'read', issues: 'write' });
    assert.deepEqual(jobs.sweep!.permissions, {
      contents: 'write',
      'pull-requests': 'read',
      issues: 'write',
    });
    // The required check (gate) runs on every pull request event; detect only on push.
    for (const e of ['pull_request', 'pull_request_review', 'merge_group']) {
      assert.ok(jobs.breakglass!.if.includes(e), e);
      assert.equal(modeFor('auto', e), 'gate');
    }
    assert.equal(jobs.detect!.if, "github.event_name == 'push'");
    const sweepStep = jobs.sweep!.steps.find((st) => st.uses?.startsWith('acme/git-breakglass'));
    assert.equal(sweepStep?.with?.mode, 'sweep');
    for (const event of Object.keys(wf.on)) assert.ok(modeFor('auto', event), event);
    for (const j of Object.values(jobs)) {
      const checkout = j.steps.find((st) => st.uses?.startsWith('actions/checkout@'));
      assert.equal(checkout?.with?.['fetch-depth'], 0);
      // Only jobs that push notes keep the checkout's credentials.
      assert.equal(
        checkout?.with?.['persist-credentials'] !== false,
        j.permissions.contents === 'write',
      );
    }
  });
});
