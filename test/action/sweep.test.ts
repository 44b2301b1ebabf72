// The scheduled sweep (issue 13 item 1): catches changes to protected branches whose detector run
// never happened, incrementally from the last swept commit kept on a ref.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gitText } from '../../src/git/git.ts';
import { asAcme, fixture, webhookExample, World, type Payload } from './harness.ts';

let w: World;

function mergedPull(n: number, merge: string, head: string): Payload {
  const pr = fixture<Payload>('pull.json');
  Object.assign(pr, { number: n, merge_commit_sha: merge, merged_at: new Date().toISOString() });
  pr.user.login = 'alice';
  pr.head.sha = head;
  return pr;
}

function approval(commit: string): Payload {
  const r = fixture<Payload>('review.json');
  r.commit_id = commit;
  r.user.login = 'bob';
  return r;
}

const schedule = { schedule: '17 7 * * 1-5' };
const SWEEP = { mode: 'sweep', 'open-issue': 'true' };

/** Commit-pulls look-ups made since request number `from`. */
function lookups(from: number): string[] {
  return w.github.requests
    .slice(from)
    .map((q) => q.url.split('?')[0]!)
    .filter((u) => /\/commits\/[0-9a-f]+\/pulls$/.test(u));
}

before(async () => {
  w = await World.create();
});
after(() => w.dispose());

describe('sweep', () => {
  it('reports every commit with neither a reviewed PR nor a note, records it, and goes on from there', async () => {
    const start = await w.tip();
    // A: a reviewed squash merge of #1.
    const headA = await w.commit(start, 'src/a.ts', 'a\n');
    const a = await w.commit(start, 'src/a.ts', 'a\n', 'Feature A (#1)');
    // B: a direct push whose detector run never happened (the workflow was edited away).
    const b = await w.commit(a, 'src/b.ts', 'b\n', 'quick fix');
    // C: a direct push the detector did flag (it has a violation note).
    const c = await w.commit(b, 'src/c.ts', 'c\n', 'another');
    // D: #2 merged with no approval and no record.
    const d = await w.commit(c, 'src/d.ts', 'd\n', 'Feature D (#2)');
    await w.pushTo(c, 'refs/heads/main');
    w.github.on('GET /repos/acme/api/activity', { status: 404, json: { message: 'Not Found' } });
    w.github.on(`GET /repos/acme/api/commits/${c}/pulls`, { status: 200, json: [] });
    const push = asAcme(webhookExample('push', (e) => e.ref === 'refs/heads/master'));
    Object.assign(push, { ref: 'refs/heads/main', before: b, after: c });
    Object.assign(push, { created: false, deleted: false, forced: false });
    push.repository.pushed_at = Math.floor(Date.now() / 1000);
    push.head_commit.message = 'another';
    const detected = await w.run('push', push);
    assert.equal(detected.code, 1, detected.stdout);
    assert.ok(await w.note(c), detected.stdout);
    await w.pushTo(d, 'refs/heads/main');

    w.github.on(`GET /repos/acme/api/commits/${a}/pulls`, {
      status: 200,
      json: [mergedPull(1, a, headA)],
    });
    w.github.on('GET /repos/acme/api/pulls/1/reviews', { status: 200, json: [approval(headA)] });
    w.github.on(`GET /repos/acme/api/commits/${b}/pulls`, { status: 200, json: [] });
    w.github.on(`GET /repos/acme/api/commits/${d}/pulls`, {
      status: 200,
      json: [mergedPull(2, d, d)],
    });
    w.github.on('GET /repos/acme/api/pulls/2/reviews', { status: 200, json: [] });
    w.github.on('POST /repos/acme/api/issues', {
      status: 201,
      json: fixture('issue-created.json'),
    });

    const seen = w.github.requests.length;
    const r = await w.run('schedule', schedule, { inputs: SWEEP });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'violation');
    const errors = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('::error title=Break-glass sweep::'));
    assert.deepEqual(errors, [
      `::error title=Break-glass sweep::Commit ${b.slice(0, 12)} on refs/heads/main: no merged pull request and no break-glass note (a direct push nobody recorded)`,
      `::error title=Break-glass sweep::Commit ${d.slice(0, 12)} on refs/heads/main: pull request #2 was merged with 0 of 1 required approval(s) and no break-glass note`,
    ]);
    // C has a note: not looked up; A, B and D are.
    assert.deepEqual(
      lookups(seen).sort(),
      [a, b, d].map((x) => `/repos/acme/api/commits/${x}/pulls`).sort(),
    );
    assert.match(
      (await w.note(b)) ?? '',
      /^Break-glass-Violation: sweep: commit \w+ on refs\/heads\/main: no merged pull request/m,
    );
    assert.match((await w.note(d)) ?? '', /pull request #2 was merged with 0 of 1/);
    assert.equal(await w.note(a), undefined);
    assert.equal(await gitText(w.originCtx, ['rev-parse', 'refs/breakglass-sweep/heads/main']), d);
    assert.match(r.summary, /VIOLATION: unaccounted commit/);
    const issue = w.github.requests
      .slice(seen)
      .find((q) => q.method === 'POST' && q.url === '/repos/acme/api/issues');
    assert.ok(issue);
    assert.match(
      JSON.parse(issue.body).title,
      /Break-glass sweep: 2 commit\(s\) without review or record/,
    );

    // Nothing new: passes without a single look-up.
    const seen2 = w.github.requests.length;
    const again = await w.run('schedule', schedule, { inputs: SWEEP });
    assert.equal(again.code, 0, again.stdout);
    assert.deepEqual(lookups(seen2), []);

    // One more unrecorded push: only it is looked at and reported.
    const e = await w.commit(d, 'src/e.ts', 'e\n', 'late night');
    await w.pushTo(e, 'refs/heads/main');
    w.github.on(`GET /repos/acme/api/commits/${e}/pulls`, { status: 200, json: [] });
    const seen3 = w.github.requests.length;
    const third = await w.run('schedule', schedule, { inputs: SWEEP });
    assert.equal(third.code, 1);
    assert.deepEqual(lookups(seen3), [`/repos/acme/api/commits/${e}/pulls`]);
    assert.match(
      third.stdout,
      new RegExp(`Commit ${e.slice(0, 12)} on refs/heads/main: no merged pull request`),
    );
  });

  it('reports a rewritten history that no note explains', async () => {
    const tip = await w.tip();
    const parent = await w.git(w.dev, ['rev-parse', `${tip}^`]);
    const other = await w.commit(parent, 'src/rewrite.ts', 'r\n', 'rewrite');
    await w.pushTo(other, 'refs/heads/main', true);
    w.github.on(`GET /repos/acme/api/commits/${other}/pulls`, { status: 200, json: [] });
    const r = await w.run('schedule', schedule, { inputs: { mode: 'sweep' } });
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      new RegExp(
        `history rewritten: refs/heads/main no longer contains ${tip.slice(0, 12)}, the last swept commit, and no note records a force push`,
      ),
    );
  });

  it("does not report a listed pusher's fast-forward the activity API shows (the normal path)", async () => {
    const tip = await w.tip();
    const bot = await w.commit(tip, 'src/bot.ts', 'bot\n', 'bump version');
    await w.pushTo(bot, 'refs/heads/main');
    const act = fixture<Payload[]>('activity.json');
    Object.assign(act[0]!, { before: tip, after: bot, activity_type: 'push' });
    act[0]!.actor.login = 'merge-bot';
    w.github.on('GET /repos/acme/api/activity', { status: 200, json: act });
    w.github.on(`GET /repos/acme/api/commits/${bot}/pulls`, { status: 200, json: [] });
    const r = await w.run('schedule', schedule, { inputs: { mode: 'sweep' } });
    assert.equal(r.code, 0, r.stdout);
    assert.equal(await w.note(bot), undefined);

    // The same push by someone who is not a listed pusher is a finding.
    const next = await w.commit(bot, 'src/bot.ts', 'bot 2\n', 'bump again');
    await w.pushTo(next, 'refs/heads/main');
    Object.assign(act[0]!, { before: bot, after: next });
    act[0]!.actor.login = 'alice';
    w.github.on(`GET /repos/acme/api/commits/${next}/pulls`, { status: 200, json: [] });
    const r2 = await w.run('schedule', schedule, { inputs: { mode: 'sweep' } });
    assert.equal(r2.code, 1, r2.stdout);
    assert.match(
      r2.stdout,
      new RegExp(`Commit ${next.slice(0, 12)} on refs/heads/main: no merged`),
    );
    w.github.on('GET /repos/acme/api/activity', { status: 404, json: { message: 'Not Found' } });
  });

  it('judges another repository named by the repository input (a central sweep)', async () => {
    const tip = await w.tip();
    const f = await w.commit(tip, 'src/f.ts', 'f\n', 'unrecorded');
    await w.pushTo(f, 'refs/heads/main');
    w.github.on(`GET /repos/acme/other/commits/${f}/pulls`, { status: 200, json: [] });
    const seen = w.github.requests.length;
    const r = await w.run('schedule', schedule, {
      inputs: { mode: 'sweep', repository: 'acme/other' },
    });
    assert.equal(r.code, 1, r.stdout);
    assert.deepEqual(lookups(seen), [`/repos/acme/other/commits/${f}/pulls`]);
    const bad = await w.run('schedule', schedule, {
      inputs: { mode: 'sweep', repository: 'acme/other/../x' },
    });
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /input repository must be owner\/name/);
  });

  it('refuses to sweep on a push event', async () => {
    const r = await w.run('push', {}, { inputs: { mode: 'sweep' } });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /mode sweep runs on schedule or workflow_dispatch, not push/);
  });
});
