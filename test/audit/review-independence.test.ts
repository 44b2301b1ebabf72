// Reviewer independence through the real hook and the real audit (R5, R6): bob approved the
// ticket, so he may not review its use; and where nothing guards the namespace (a host without
// the hook), his review written on top of carol's does not overrule hers.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { encodeReview, REVIEW_PAYLOAD_TYPE } from '../../src/audit/review.ts';
import { createEnvelope } from '../../src/ticket/sign.ts';
import { parsePolicy } from '../../src/policy/policy.ts';
import { verifyTicketEnvelope } from '../../src/ticket/verify.ts';
import { parseEnvelope } from '../../src/ticket/dsse.ts';
import { keys } from '../helpers/fixtures.ts';
import { withServer, type DevClone } from '../helpers/server.ts';
import { readFile } from 'node:fs/promises';

/** A review.json commit in `dev` (parent: `parent`), built with the library, not the CLI. */
async function reviewCommit(dev: DevClone, bytes: string, parent?: string): Promise<string> {
  const blob = (
    await dev.git(['hash-object', '-w', '--stdin'], { check: true, input: bytes })
  ).stdout.trim();
  const tree = (
    await dev.git(['mktree'], { check: true, input: `100644 blob ${blob}\treview.json\n` })
  ).stdout.trim();
  const parents = parent ? ['-p', parent] : [];
  return (
    await dev.git(['commit-tree', tree, ...parents, '-m', 'review'], { check: true })
  ).stdout.trim();
}

it('an approver can neither sign nor push a review of the ticket, nor overrule a valid one', async () => {
  await withServer({}, async (server) => {
    const policyArgs = ['--policy', server.policyFile];
    const alice = await server.clone('alice');
    const id = await alice.makeTicket({ approvers: ['bob'] });
    assert.equal((await alice.pushTickets([id])).code, 0);
    const fix = await alice.commit('fix.txt', 'fix\n', 'hotfix');
    const pushed = await alice.push([`${fix}:refs/heads/main`], { tickets: [id] });
    assert.equal(pushed.code, 0, pushed.stderr);

    const bob = await server.clone('bob');
    const carol = await server.clone('carol');
    for (const c of [bob, carol]) {
      await c.git(['fetch', '-q', 'origin', '+refs/breakglass/*:refs/breakglass/*'], {
        check: true,
      });
    }
    // R5 in the CLI: refused before anything is signed.
    const cli = await bob.bg([
      'review',
      id,
      '--outcome',
      'justified',
      '--note',
      'mine',
      ...policyArgs,
    ]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /REVIEW_INVALID: bob approved ticket .* and can't review it/);

    // R5 in the hook (N8): bob's review made with the library is refused on push.
    const policy = parsePolicy(await readFile(server.policyFile, 'utf8'));
    const ticketJson = (
      await bob.git(['cat-file', 'blob', `refs/breakglass/tickets/${id}:ticket.json`])
    ).stdout;
    const ticket = verifyTicketEnvelope(parseEnvelope(Buffer.from(ticketJson)), policy.keyOwners);
    const bobsReview = createEnvelope(
      REVIEW_PAYLOAD_TYPE,
      encodeReview({
        type: 'git-breakglass/review',
        version: 1,
        ticket: id,
        ticketDigest: ticket.payloadDigest,
        reviewer: 'bob',
        outcome: 'unjustified',
        note: 'I approved it, and now I say it was not needed',
        reviewedAt: new Date(Date.now() + 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      }),
      keys.bob,
    );
    const bobsText = JSON.stringify({
      payloadType: bobsReview.payloadType,
      payload: bobsReview.payload.toString('base64'),
      signatures: bobsReview.signatures.map((s) => ({
        keyid: s.keyid,
        sig: s.sig.toString('base64'),
      })),
    });
    const alone = await reviewCommit(bob, bobsText);
    const refused = await bob.push([`${alone}:refs/breakglass/reviews/${id}`]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /REVIEW_INVALID \(N8\)|REVIEW_INVALID/);
    assert.equal(await server.ref(`refs/breakglass/reviews/${id}`), null);

    // carol (approver role, not involved) reviews and pushes.
    const ok = await carol.bg([
      'review',
      id,
      '--outcome',
      'justified',
      '--note',
      'outage confirmed',
      '--push',
      ...policyArgs,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const carolsTip = await server.ref(`refs/breakglass/reviews/${id}`);
    assert.ok(carolsTip);

    // A host without the hook: bob's review lands on top of carol's (fetched in as an admin
    // would, no receive hooks run).
    await bob.git(
      ['fetch', '-q', 'origin', `+refs/breakglass/reviews/${id}:refs/breakglass/reviews/${id}`],
      {
        check: true,
      },
    );
    const onTop = await reviewCommit(bob, bobsText, carolsTip);
    await server.git(['fetch', '-q', bob.dir, `${onTop}:refs/breakglass/reviews/${id}`]);
    assert.equal(await server.ref(`refs/breakglass/reviews/${id}`), onTop);

    // R6: the audit keeps carol's verdict and reports bob's review as a problem.
    const audit = await carol.bg(['audit', server.gitDir, '--format', 'json']);
    const report = JSON.parse(audit.stdout);
    const row = report.rows.find((x: { ticket: string }) => x.ticket === id);
    assert.ok(row, audit.stderr);
    assert.equal(row.review.status, 'reviewed', JSON.stringify([row.review, report.problems]));
    assert.equal(row.review.reviewer, 'carol');
    assert.equal(row.review.outcome, 'justified');
    assert.ok(
      report.problems.some(
        (p: { kind: string; message: string }) =>
          p.kind === 'review' && /bob approved ticket/.test(p.message),
      ),
      JSON.stringify(report.problems),
    );
    assert.match(audit.stderr, /warning: 1 problem\(s\) reading the records/);
  });
});
