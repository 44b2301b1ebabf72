// The required check on pull requests (DESIGN §1 step 7): approved, or covered by a valid ticket.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { keys, policyYaml } from '../helpers/fixtures.ts';
import { asAcme, fixture, webhookExample, World, type Payload } from './harness.ts';

let w: World;
let base: string;

function review(
  login: string,
  state: string,
  id: number,
  assoc = 'COLLABORATOR',
  commit = 'ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091',
) {
  const r = fixture<Payload>('review.json');
  r.id = id;
  r.commit_id = commit;
  r.user.login = login;
  r.state = state;
  r.author_association = assoc;
  r.submitted_at = `2026-11-29T03:${String(10 + id).padStart(2, '0')}:00Z`;
  return r;
}

/** A real pull_request.opened payload, pointed at a PR in our origin. */
function opened(n: number, head: string, author = 'alice', body = 'Fix the outage') {
  const p = asAcme(webhookExample('pull_request', (e) => e.action === 'opened'));
  p.number = n;
  p.pull_request.number = n;
  p.pull_request.user.login = author;
  p.pull_request.body = body;
  p.pull_request.base.ref = 'main';
  p.pull_request.base.sha = base;
  p.pull_request.head.sha = head;
  return p;
}

/** A PR head pushed where GitHub keeps it (refs/pull/<n>/head). */
async function pullHead(n: number, file = `src/fix-${n}.ts`): Promise<string> {
  const head = await w.commit(base, file, `export const fix = ${n};\n`);
  await w.pushTo(head, `refs/pull/${n}/head`);
  return head;
}

before(async () => {
  w = await World.create();
  base = await w.tip();
});
after(() => w.dispose());

describe('gate', () => {
  it('passes a pull request approved by a collaborator (pull_request_review.submitted)', async () => {
    const head = await pullHead(1);
    w.github.on('GET /repos/acme/api/pulls/1/reviews', {
      status: 200,
      json: [review('bob', 'COMMENTED', 1), review('bob', 'APPROVED', 2, 'COLLABORATOR', head)],
    });
    const p = asAcme(webhookExample('pull_request_review', (e) => e.action === 'submitted'));
    p.review.state = 'approved';
    p.review.user.login = 'bob';
    p.pull_request.number = 1;
    p.pull_request.user.login = 'alice';
    p.pull_request.base.ref = 'main';
    p.pull_request.base.sha = base;
    p.pull_request.head.sha = head;
    const r = await w.run('pull_request_review', p);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'normal');
    assert.match(r.summary, /pass \(reviewed\)/);
    assert.ok(w.github.paths().includes('GET /repos/acme/api/pulls/1/reviews'));
    const auth = w.github.requests.find((q) => q.url.includes('/pulls/1/reviews'));
    assert.ok(auth);
  });

  it('fails an unapproved pull request: own, dismissed, outsider and superseded approvals do not count', async () => {
    const head = await pullHead(2);
    w.github.on('GET /repos/acme/api/pulls/2/reviews', {
      status: 200,
      json: [
        review('alice', 'APPROVED', 1), // the author
        review('bob', 'APPROVED', 2),
        review('bob', 'CHANGES_REQUESTED', 3), // cancels bob's approval
        review('carol', 'DISMISSED', 4), // a dismissed approval
        review('drive-by', 'APPROVED', 5, 'NONE'), // no write access
        review('alice-gh', 'APPROVED', 6), // the author's second account (same principal)
      ],
    });
    const r = await w.run('pull_request', opened(2, head));
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.outputs.decision, 'violation');
    assert.match(
      r.stdout,
      /::error title=Break-glass check failed::#2 has 0 of 1 required approval\(s\), changes requested by bob/,
    );
    assert.match(r.stdout, /no ticket covers merge-unreviewed on refs\/heads\/main for alice/);
  });

  it('passes an unapproved pull request with a valid merge-unreviewed ticket pinned to its head', async () => {
    const head = await pullHead(3);
    w.github.on('GET /repos/acme/api/pulls/3/reviews', { status: 200, json: [] });
    const id = await w.ticket({ actions: ['merge-unreviewed'], commits: [head] });
    const r = await w.run('pull_request', opened(3, head));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'breakglass');
    assert.equal(r.outputs.ticket, id);
    const events = JSON.parse(r.outputs.events!) as { via: string; ticket: string }[];
    assert.deepEqual(
      events.map((e) => [e.via, e.ticket]),
      [['ticket', id]],
    );
    // Summary table row: ref, commits, actor, ticket, approvers, reason, expiry.
    assert.match(
      r.summary,
      new RegExp(
        `\\| refs/heads/main \\| #3 ${head.slice(0, 12)} \\| alice \\| ${id} \\| bob \\| INC-4711`,
      ),
    );
  });

  it('rejects expired, unapproved, out-of-scope, other-commit and other-holder tickets with their codes', async () => {
    const head = await pullHead(4);
    w.github.on('GET /repos/acme/api/pulls/4/reviews', { status: 200, json: [] });
    const now = Date.now();
    const expired = await w.ticket({ actions: ['merge-unreviewed'], now: now - 3 * 3_600_000 });
    const unapproved = await w.ticket({ actions: ['merge-unreviewed'] }, []);
    const outOfScope = await w.ticket({
      actions: ['merge-unreviewed'],
      refs: ['refs/heads/release/*'],
    });
    const wrongCommit = await w.ticket({ actions: ['merge-unreviewed'], commits: [base] });
    const daveHolds = await w.ticket({ actions: ['merge-unreviewed'], holder: 'dave' });
    const pushOnly = await w.ticket({ actions: ['push'] });
    // The failure names at most three tickets: two runs of three show each rule's code.
    const check = async (ids: string[], codes: RegExp[]) => {
      const body = ids.map((id) => `breakglass: ${id}`).join('\n');
      const r = await w.run('pull_request', opened(4, head, 'alice', body));
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.outputs.decision, 'violation');
      ids.forEach((id, i) => {
        const line = r.stdout.split('\n').find((l) => l.includes(`ticket ${id}:`)) ?? '';
        assert.match(line, codes[i]!, id);
      });
    };
    await check(
      [expired, unapproved, outOfScope],
      [/\[TICKET_EXPIRED, T10\]/, /\[APPROVALS_MISSING, T3\]/, /\[SCOPE_REF, T6\]/],
    );
    await check(
      [wrongCommit, daveHolds, pushOnly],
      [/\[SCOPE_COMMIT, T8\]/, /\[HOLDER_MISMATCH, T14\]/, /\[SCOPE_ACTION, T7\]/],
    );
  });

  it('reads the policy from the base: a pull request lowering requiredApprovals in its head still needs approval', async () => {
    const head = await w.commit(
      base,
      '.breakglass/policy.yml',
      policyYaml().replace('requiredApprovals: 1', 'requiredApprovals: 0'),
    );
    await w.pushTo(head, 'refs/pull/5/head');
    w.github.on('GET /repos/acme/api/pulls/5/reviews', { status: 200, json: [] });
    const r = await w.run('pull_request', opened(5, head, 'mallory-gh'));
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /#5 has 0 of 1 required approval/);
    // The head changes the policy, so the merge would also need change-policy.
    assert.match(r.stdout, /action change-policy is not in the ticket's actions/);
  });

  it('fails closed on a broken policy in the base, naming the file, line and field', async () => {
    const broken = await w.commit(
      base,
      '.breakglass/policy.yml',
      policyYaml().replace('requiredApprovals: 1', 'requiredApprovals: many'),
    );
    await w.pushTo(broken, 'refs/heads/broken');
    const head = await w.commit(broken, 'src/z.ts', 'z\n');
    await w.pushTo(head, 'refs/pull/8/head');
    const p = opened(8, head);
    p.pull_request.base.ref = 'broken';
    p.pull_request.base.sha = broken;
    const r = await w.run('pull_request', p);
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /::error title=git-breakglass error::\.breakglass\/policy\.yml:\d+: protected\[0\]\.requiredApprovals: .*\[POLICY_INVALID\]/,
    );
    assert.equal(r.outputs.decision, 'violation');
  });

  it('fails closed with the missing permission on a 403 and a clear error on a 500', async () => {
    const head = await pullHead(6);
    w.github.on('GET /repos/acme/api/pulls/6/reviews', {
      status: 403,
      json: fixture('error-403.json'),
    });
    const r = await w.run('pull_request', opened(6, head));
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /403 Resource not accessible by integration.*permissions: pull-requests: read/,
    );
    assert.match(r.stdout, /\[GITHUB_PERMISSION\]/);
    assert.equal(r.outputs.decision, 'violation');

    w.github.on('GET /repos/acme/api/pulls/6/reviews', {
      status: 500,
      json: fixture('error-500.json'),
    });
    const r2 = await w.run('pull_request', opened(6, head));
    assert.equal(r2.code, 1);
    assert.match(r2.stdout, /GitHub API reviews failed with 500: Server Error.*fails closed/);
    assert.match(r2.stdout, /\[GITHUB_API\]/);
  });

  it('checks the pull requests of a merge group (merge_group.checks_requested)', async () => {
    const head = await pullHead(104);
    const pr = fixture<Payload>('pull.json');
    pr.number = 104;
    pr.state = 'open';
    pr.merged_at = null;
    pr.user.login = 'alice';
    pr.head.sha = head;
    pr.base.sha = base;
    w.github.on('GET /repos/acme/api/pulls/104', { status: 200, json: pr });
    w.github.on('GET /repos/acme/api/pulls/104/reviews', {
      status: 200,
      json: [review('carol', 'APPROVED', 1, 'MEMBER', head)],
    });
    const p = asAcme(webhookExample('merge_group', (e) => e.action === 'checks_requested'));
    p.merge_group.base_sha = base;
    p.merge_group.base_ref = 'refs/heads/main';
    p.merge_group.head_commit.message = 'Merge pull request #104 from acme/fix\n\nFix the outage';
    const r = await w.run('merge_group', p);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(w.github.paths().includes('GET /repos/acme/api/pulls/104'));
    assert.equal(r.outputs.decision, 'normal');
  });

  it('loads and runs under the current Node (bundle smoke test)', async () => {
    const r = await w.run('issues', { action: 'opened' });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /no mode for event "issues"/);
    assert.doesNotMatch(r.stderr, /SyntaxError|ERR_/);
    assert.ok(Number(process.versions.node.split('.')[0]) >= 20);
  });

  void keys;
});
