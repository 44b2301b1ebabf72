// The bypass detector on pushes to protected branches (DESIGN §1 step 7, §7).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gitText } from '../../src/git/git.ts';
import { asAcme, fixture, webhookExample, World, type Payload } from './harness.ts';

let w: World;

/** A real push payload (refs/heads/master example) turned into an update of main. */
function push(from: string, to: string, sender: string, extra: Payload = {}): Payload {
  const p = asAcme(webhookExample('push', (e) => e.ref === 'refs/heads/master'));
  Object.assign(p, {
    ref: 'refs/heads/main',
    before: from,
    after: to,
    created: false,
    deleted: false,
    forced: false,
    ...extra,
  });
  // GitHub received the push just now (the example's 2019 time would predate every ticket).
  p.repository.pushed_at = Math.floor(Date.now() / 1000);
  p.pusher.name = sender;
  p.sender.login = sender;
  p.head_commit.id = to;
  p.head_commit.message = extra.message ?? 'change';
  return p;
}

function mergedPull(n: number, merge: string, head: string, author: string): Payload {
  const pr = fixture<Payload>('pull.json');
  Object.assign(pr, { number: n, merge_commit_sha: merge, merged_at: new Date().toISOString() });
  pr.user.login = author;
  pr.head.sha = head;
  return pr;
}

function approval(login: string, commit: string): Payload {
  const r = fixture<Payload>('review.json');
  r.user.login = login;
  r.commit_id = commit;
  return r;
}

before(async () => {
  w = await World.create();
});
after(() => w.dispose());

describe('detector', () => {
  it('flags a direct push without a ticket: violation note on origin, error annotation, issue', async () => {
    const from = await w.tip();
    const x = await w.commit(from, 'src/hack.ts', 'export const x = 1;\n');
    await w.pushTo(x, 'refs/heads/main');
    w.github.on('GET /repos/acme/api/activity', { status: 403, json: fixture('error-403.json') });
    w.github.on(`GET /repos/acme/api/commits/${x}/pulls`, { status: 200, json: [] });
    w.github.on('POST /repos/acme/api/issues', {
      status: 201,
      json: fixture('issue-created.json'),
    });
    const r = await w.run('push', push(from, x, 'mallory'), { inputs: { 'open-issue': 'true' } });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'violation');
    assert.match(
      r.stdout,
      new RegExp(
        `::error title=Break-glass violation::Unticketed push on refs/heads/main: commit ${x.slice(0, 12)} pushed directly \\(no reviewed pull request\\) by mallory; missing ticket: no ticket: .*\\[TICKET_REQUIRED, P2\\]; to cover such a change: bg-sign request --ref main --action push --commit ${x} --ttl 30m --reason '[^']+' --push`,
      ),
    );
    const note = await w.note(x);
    assert.ok(note, 'violation note pushed to origin');
    assert.match(note, /^Break-glass-Violation: refs\/heads\/main pushed directly/m);
    assert.match(note, /^Break-glass-Pusher: mallory$/m);
    assert.match(note, new RegExp(`^Break-glass-Update: ${from}\\.\\.${x}$`, 'm'));
    assert.match(note, /^Break-glass-Recorded: \S+Z action@github$/m);
    const issue = w.github.requests.find(
      (q) => q.method === 'POST' && q.url === '/repos/acme/api/issues',
    );
    assert.ok(issue, 'issue opened');
    assert.match(
      JSON.parse(issue.body).title,
      /Break-glass violation: direct-push on refs\/heads\/main by mallory/,
    );
    const events = JSON.parse(r.outputs.events!) as { kind: string }[];
    assert.equal(events[0]!.kind, 'violation');
  });

  it('records a force push covered by a ticket: note with replaced tip, use record on origin', async () => {
    const base = await w.tip();
    const old = await w.commit(base, 'src/a.ts', 'a\n');
    await w.pushTo(old, 'refs/heads/main');
    const fixed = await w.commit(base, 'src/hotfix.ts', 'fixed\n');
    await w.pushTo(fixed, 'refs/heads/main', true);
    const id = await w.ticket({ actions: ['force-push'], commits: [fixed], incident: 'INC-4711' });
    const act = fixture<Payload[]>('activity.json');
    Object.assign(act[0]!, { before: old, after: fixed, timestamp: new Date().toISOString() });
    act[0]!.actor.login = 'alice';
    w.github.on('GET /repos/acme/api/activity', { status: 200, json: act });
    const event = push(old, fixed, 'alice', { forced: true });
    const r = await w.run('push', event);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'breakglass');
    assert.equal(r.outputs.ticket, id);
    const note = await w.note(fixed);
    assert.ok(note);
    assert.match(note, new RegExp(`^Break-glass-Ticket: ${id}$`, 'm'));
    assert.match(note, /^Break-glass-Action: force-push$/m);
    assert.match(note, /^Break-glass-Approvers: bob SHA256:/m);
    assert.match(note, new RegExp(`^Break-glass-Replaced: ${old}$`, 'm'));
    assert.match(note, new RegExp(`^Break-glass-Dropped: 1 commit: ${old}$`, 'm'));
    const uses = await gitText(w.originCtx, [
      'rev-list',
      '--count',
      `refs/breakglass/consumed/${id}`,
    ]);
    assert.equal(uses, '1');
    assert.match(
      r.summary,
      new RegExp(
        `\\| refs/heads/main \\| ${fixed.slice(0, 12)} \\| alice \\| ${id} \\| bob \\| INC-4711 payment outage hotfix \\| \\S+Z \\|`,
      ),
    );

    // A re-run of the same job neither fails (the use is its own) nor writes anything twice.
    const again = await w.run('push', event);
    assert.equal(again.code, 0, again.stdout);
    assert.equal(
      await gitText(w.originCtx, ['rev-list', '--count', `refs/breakglass/consumed/${id}`]),
      '1',
    );
    assert.equal((await w.note(fixed))!.match(/Break-glass-Ticket:/g)!.length, 1);
  });

  it('passes a reviewed pull request merge quietly and writes nothing', async () => {
    const from = await w.tip();
    const head = await w.commit(from, 'src/feature.ts', 'f\n');
    const merge = await w.commit(from, 'src/feature.ts', 'f\n', 'Merge pull request #9 (squash)');
    await w.pushTo(merge, 'refs/heads/main');
    w.github.on('GET /repos/acme/api/activity', { status: 404, json: { message: 'Not Found' } });
    w.github.on(`GET /repos/acme/api/commits/${merge}/pulls`, {
      status: 200,
      json: [mergedPull(9, merge, head, 'alice')],
    });
    w.github.on('GET /repos/acme/api/pulls/9/reviews', {
      status: 200,
      json: [approval('bob', head)],
    });
    const r = await w.run('push', push(from, merge, 'carol'));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'normal');
    assert.match(r.stdout, /reviewed merge of #9 \(1\/1 approvals\)/);
    assert.equal(await w.note(merge), undefined);
  });

  it('records an unreviewed merge covered by a merge-unreviewed ticket pinned to the PR head', async () => {
    const from = await w.tip();
    const head = await w.commit(from, 'src/emergency.ts', 'e\n');
    const merge = await w.commit(from, 'src/emergency.ts', 'e\n', 'Emergency (#10)');
    await w.pushTo(merge, 'refs/heads/main');
    const id = await w.ticket({ actions: ['merge-unreviewed'], commits: [head] });
    w.github.on(`GET /repos/acme/api/commits/${merge}/pulls`, {
      status: 200,
      json: [mergedPull(10, merge, head, 'alice')],
    });
    w.github.on('GET /repos/acme/api/pulls/10/reviews', { status: 200, json: [] });
    // Carol clicked merge; the ticket is held by the author, alice.
    const r = await w.run('push', push(from, merge, 'carol'));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.outputs.ticket, id);
    const note = await w.note(merge);
    assert.match(note ?? '', /^Break-glass-Action: merge-unreviewed$/m);
  });

  it('two concurrent runs both keep their notes (compare-and-swap push, re-fetch, retry)', async () => {
    const from = await w.tip();
    const a = await w.commit(from, 'src/one.ts', '1\n');
    const b = await w.commit(a, 'src/two.ts', '2\n');
    await w.pushTo(b, 'refs/heads/main');
    w.github.on(`GET /repos/acme/api/commits/${a}/pulls`, { status: 200, json: [] });
    w.github.on(`GET /repos/acme/api/commits/${b}/pulls`, { status: 200, json: [] });
    // Barrier: both runs have fetched the same notes tip before either writes.
    let waiting: (() => void)[] = [];
    w.github.on('GET /repos/acme/api/activity', async () => {
      await new Promise<void>((resolve) => {
        waiting.push(resolve);
        if (waiting.length === 2) {
          for (const go of waiting) go();
          waiting = [];
        }
      });
      return { status: 404, json: { message: 'Not Found' } };
    });
    const [wsA, wsB] = [await w.workspace(), await w.workspace()];
    const [ra, rb] = await Promise.all([
      w.run('push', push(from, a, 'mallory'), { workspace: wsA }),
      w.run('push', push(a, b, 'mallory'), { workspace: wsB }),
    ]);
    assert.equal(ra.code, 1, ra.stdout);
    assert.equal(rb.code, 1, rb.stdout);
    assert.match((await w.note(a)) ?? '', new RegExp(`Break-glass-Update: ${from}\\.\\.${a}`));
    assert.match((await w.note(b)) ?? '', new RegExp(`Break-glass-Update: ${a}\\.\\.${b}`));
    assert.match(
      ra.stdout + rb.stdout,
      /changed on origin meanwhile \(attempt 1\); re-fetching and retrying/,
    );
    w.github.on('GET /repos/acme/api/activity', { status: 404, json: { message: 'Not Found' } });
  });

  it('finds a merged pull request by its merge commit when commit-pulls lists none (non-default branch)', async () => {
    const from = await w.tip();
    const merge = await w.commit(from, 'src/rel-fix.ts', 'r\n', 'Fix release build (#11)');
    await w.pushTo(merge, 'refs/heads/main');
    w.github.on(`GET /repos/acme/api/commits/${merge}/pulls`, { status: 200, json: [] });
    w.github.on('GET /repos/acme/api/pulls/11', {
      status: 200,
      json: mergedPull(11, merge, merge, 'alice'),
    });
    w.github.on('GET /repos/acme/api/pulls/11/reviews', {
      status: 200,
      json: [approval('carol', merge)],
    });
    const r = await w.run('push', push(from, merge, 'alice'));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /reviewed merge of #11/);

    // A message naming a pull request GitHub did not merge as this commit proves nothing.
    const fake = await w.commit(merge, 'src/sneaky.ts', 's\n', 'Totally reviewed (#11)');
    await w.pushTo(fake, 'refs/heads/main');
    w.github.on(`GET /repos/acme/api/commits/${fake}/pulls`, { status: 200, json: [] });
    const r2 = await w.run('push', push(merge, fake, 'mallory'));
    assert.equal(r2.code, 1, r2.stdout);
    assert.match(r2.stdout, /pushed directly/);
  });

  it('fails closed when the commit-pulls API errors (500) and names the permission on 403', async () => {
    const from = await w.tip();
    const x = await w.commit(from, 'src/y.ts', 'y\n');
    await w.pushTo(x, 'refs/heads/main');
    w.github.on('GET /repos/acme/api/activity', { status: 404, json: { message: 'Not Found' } });
    w.github.on(`GET /repos/acme/api/commits/${x}/pulls`, {
      status: 500,
      json: fixture('error-500.json'),
    });
    const r = await w.run('push', push(from, x, 'alice'));
    assert.equal(r.code, 1);
    assert.match(r.stdout, /GitHub API commit pulls failed with 500: Server Error/);
    w.github.on(`GET /repos/acme/api/commits/${x}/pulls`, {
      status: 403,
      json: fixture('error-403.json'),
    });
    const r2 = await w.run('push', push(from, x, 'alice'));
    assert.equal(r2.code, 1);
    assert.match(r2.stdout, /permissions: pull-requests: read/);
  });

  it('lets a listed pusher fast-forward on the normal path, and ignores unprotected branches', async () => {
    const from = await w.tip();
    const x = await w.commit(from, 'src/bot.ts', 'bot\n');
    await w.pushTo(x, 'refs/heads/main');
    w.github.on(`GET /repos/acme/api/commits/${x}/pulls`, { status: 200, json: [] });
    const r = await w.run('push', push(from, x, 'merge-bot'));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.outputs.decision, 'normal');
    assert.equal(await w.note(x), undefined);

    const y = await w.commit(x, 'src/topic.ts', 't\n');
    await w.pushTo(y, 'refs/heads/topic');
    const r2 = await w.run('push', { ...push(x, y, 'mallory'), ref: 'refs/heads/topic' });
    assert.equal(r2.code, 0, r2.stdout);
    assert.match(r2.stdout, /refs\/heads\/topic is not protected/);
  });
  it('flags deleting and creating protected branches without a ticket (delete, create)', async () => {
    const tip = await w.tip();
    await w.pushTo(tip, 'refs/heads/release/1');
    const zero = '0'.repeat(40);
    await w.git(w.dev, ['push', '--quiet', 'origin', ':refs/heads/release/1']);
    const del = await w.run('push', {
      ...push(tip, zero, 'mallory', { deleted: true }),
      ref: 'refs/heads/release/1',
      head_commit: null,
    });
    assert.equal(del.code, 1, del.stdout);
    assert.match(del.stdout, /Unticketed delete on refs\/heads\/release\/1/);
    // The request command for a deletion pins no commit.
    assert.match(
      del.stdout,
      /bg-sign request --ref release\/1 --action delete --ttl 30m --reason '[^']+' --push/,
    );
    assert.match((await w.note(tip)) ?? '', /^Break-glass-Action: delete$/m);

    const x = await w.commit(tip, 'src/rel.ts', 'r\n');
    await w.pushTo(x, 'refs/heads/release/2');
    const cre = await w.run('push', {
      ...push(zero, x, 'mallory', { created: true }),
      ref: 'refs/heads/release/2',
    });
    assert.equal(cre.code, 1, cre.stdout);
    assert.match(cre.stdout, /Unticketed create on refs\/heads\/release\/2/);
    assert.match((await w.note(x)) ?? '', /^Break-glass-Action: create$/m);
  });

  it('review-check: fresh uses are not overdue at 24h, at 0m they fail the job', async () => {
    const r = await w.run('schedule', { schedule: '17 7 * * 1-5' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.summary, /no break-glass event awaits review longer than 24h/);
    const r0 = await w.run(
      'schedule',
      { schedule: '17 7 * * 1-5' },
      {
        inputs: { 'review-older-than': '0m' },
      },
    );
    assert.equal(r0.code, 1, r0.stdout + r0.stderr);
    assert.match(
      r0.stdout,
      /::warning title=Break-glass review overdue::break-glass event on refs\/heads\/main .* \(no review\)/,
    );
    const events = JSON.parse(r0.outputs.events!) as { kind: string }[];
    assert.ok(events.length >= 2, r0.outputs.events);
    assert.ok(events.every((e) => e.kind === 'breakglass'));
  });
});
