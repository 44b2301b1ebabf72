// DESIGN §1 / issue 2 "Done when": alice requests, bob approves, verify passes; then every way
// the ticket can be wrong is rejected with its code.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseEnvelope, serializeEnvelope } from '../../src/ticket/dsse.ts';
import { signEd25519 } from '../../src/ticket/keys.ts';
import { pae } from '../../src/ticket/dsse.ts';
import { keys, policyYaml } from '../helpers/fixtures.ts';
import { errorCode, hasStack, requestArgs, Sandbox } from './harness.ts';

describe('bg-sign ticket flow (alice requests, bob approves)', () => {
  let sb: Sandbox;
  let r: Record<string, string>;
  let id: string;
  let head: string;

  before(async () => {
    sb = await Sandbox.create();
    r = await sb.repos(['alice', 'bob', 'mallory']);
    head = sb.git(r.alice!, ['rev-parse', 'HEAD']);
    const req = await sb.as('alice', r.alice!, requestArgs(['--push']));
    assert.equal(req.code, 0, req.stderr);
    id = req.stdout.trim();
    assert.match(id, /^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
  });
  after(() => sb.cleanup());

  it('stores the ticket on refs/breakglass/tickets/<id> and pushes it', () => {
    const ref = `refs/breakglass/tickets/${id}`;
    assert.equal(sb.git(r.origin!, ['cat-file', '-t', ref]), 'commit');
    const env = parseEnvelope(sb.git(r.alice!, ['cat-file', 'blob', `${ref}:ticket.json`]));
    const payload = JSON.parse(env.payload.toString()) as Record<string, unknown>;
    assert.equal(payload.requester, 'alice');
    assert.equal(payload.repository, 'acme/api');
    // --commit HEAD is stored as the full commit id; bare `main` as refs/heads/main.
    assert.deepEqual(payload.scope, {
      refs: ['refs/heads/main'],
      actions: ['push'],
      commits: [head],
    });
    // No git identity is configured: the commit is made as the principal.
    assert.equal(
      sb.git(r.alice!, ['log', '-1', '--format=%an <%ae>', ref]),
      'alice <alice@breakglass.invalid>',
    );
  });

  it('is pending until approved: verify exits 1 with APPROVALS_MISSING', async () => {
    const v = await sb.run(r.alice!, ['verify', id]);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /APPROVALS_MISSING \[T3\]/);
  });

  it('refuses alice approving her own ticket (SELF_APPROVAL)', async () => {
    const a = await sb.as('alice', r.alice!, ['approve', id]);
    assert.equal(a.code, 1);
    assert.equal(errorCode(a.stderr), 'SELF_APPROVAL');
    assert.ok(!hasStack(a.stderr), a.stderr);
  });

  it('refuses an approver without the approver role (APPROVER_ROLE) or not in the policy', async () => {
    const dave = await sb.as('dave', r.alice!, ['approve', id]);
    assert.equal(dave.code, 1);
    assert.equal(errorCode(dave.stderr), 'APPROVER_ROLE');
    const mallory = await sb.as('mallory', r.alice!, ['approve', id]);
    assert.equal(mallory.code, 1);
    assert.equal(errorCode(mallory.stderr), 'PRINCIPAL_UNKNOWN');
  });

  it('bob approves from his own clone (fetching the ticket first) and pushes', async () => {
    const a = await sb.as('bob', r.bob!, ['approve', id, '--push']);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /approved ticket .* as bob/);
    const tip = `refs/breakglass/tickets/${id}`;
    // The approval is a new commit on top of the request.
    assert.equal(sb.git(r.origin!, ['rev-list', '--count', tip]), '2');
    const again = await sb.as('bob', r.bob!, ['approve', id]);
    assert.equal(again.code, 1);
    assert.equal(errorCode(again.stderr), 'ALREADY_APPROVED');
  });

  it('verify passes once approved, with a one-line summary', async () => {
    const f = await sb.run(r.alice!, ['fetch']);
    assert.equal(f.code, 0, f.stderr);
    const v = await sb.run(r.alice!, ['verify', id, '--commit', 'HEAD', '--verbose']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.equal(v.stdout.trim().split('\n').length, 1);
    assert.match(v.stdout, /^valid: ticket .* allows push to refs\/heads\/main .*approved by bob/);
    // The policy came from the tip of the remote's default branch.
    assert.match(v.stderr, /policy: refs\/remotes\/origin\/main:\.breakglass\/policy\.yml/);
    const j = await sb.run(r.alice!, ['verify', id, '--json']);
    assert.equal(j.code, 0);
    const parsed = JSON.parse(j.stdout) as { valid: boolean; approvers: string[] };
    assert.equal(parsed.valid, true);
    assert.deepEqual(parsed.approvers, ['bob']);
  });

  it('show lists signers and which counted', async () => {
    const s = await sb.run(r.alice!, ['show', id, '--json']);
    assert.equal(s.code, 0, s.stderr);
    const j = JSON.parse(s.stdout) as {
      status: string;
      signers: { principal: string; role: string; keyid: string }[];
    };
    assert.equal(j.status, 'active');
    assert.deepEqual(
      j.signers.map((x) => [x.principal, x.role, x.keyid]),
      [
        ['alice', 'requester', keys.alice.publicKey.keyid],
        ['bob', 'approver', keys.bob.publicKey.keyid],
      ],
    );
  });

  // Commits a replacement ticket.json onto the ticket ref in mallory's clone, runs `check`, then
  // puts the ref back.
  async function tampered(
    mutate: (env: ReturnType<typeof parseEnvelope>) => ReturnType<typeof parseEnvelope> | string,
    check: () => Promise<void>,
  ): Promise<void> {
    const repo = r.mallory!;
    sb.git(repo, ['fetch', '-q', 'origin', '+refs/breakglass/*:refs/breakglass/*']);
    const ref = `refs/breakglass/tickets/${id}`;
    const old = sb.git(repo, ['rev-parse', ref]);
    const env = parseEnvelope(sb.git(repo, ['cat-file', 'blob', `${ref}:ticket.json`]));
    const next = mutate(env);
    const blob = sb.git(
      repo,
      ['hash-object', '-w', '--stdin'],
      typeof next === 'string' ? next : serializeEnvelope(next),
    );
    const tree = sb.git(repo, ['mktree'], `100644 blob ${blob}\tticket.json\n`);
    const commit = sb.git(repo, [
      '-c',
      'user.name=m',
      '-c',
      'user.email=m@x',
      'commit-tree',
      tree,
      '-p',
      old,
      '-m',
      'tamper',
    ]);
    sb.git(repo, ['update-ref', ref, commit, old]);
    try {
      await check();
    } finally {
      sb.git(repo, ['update-ref', ref, old]);
    }
  }

  it('rejects edited payload bytes (SIGNATURE_INVALID)', async () => {
    await tampered(
      (env) => ({
        ...env,
        payload: Buffer.from(
          env.payload.toString().replace('"refs/heads/main"', '"refs/heads/**"'),
        ),
      }),
      async () => {
        const v = await sb.run(r.mallory!, ['verify', id]);
        assert.equal(v.code, 1);
        assert.match(v.stdout, /SIGNATURE_INVALID \[A3\]/);
      },
    );
  });

  it("rejects a swapped approval signature (bob's signature over other bytes)", async () => {
    await tampered(
      (env) => ({
        ...env,
        signatures: env.signatures.map((s) =>
          s.keyid === keys.bob.publicKey.keyid
            ? {
                keyid: s.keyid,
                sig: signEd25519(keys.bob, pae(env.payloadType, Buffer.from('{"other":"ticket"}'))),
              }
            : s,
        ),
      }),
      async () => {
        const v = await sb.run(r.mallory!, ['verify', id]);
        assert.equal(v.code, 1);
        assert.match(
          v.stdout,
          /APPROVALS_MISSING \[T3\].*1 signature\(s\) verify under no trusted key/,
        );
      },
    );
  });

  it("rejects a requester signature swapped for mallory's (REQUESTER_SIGNATURE_MISSING)", async () => {
    await tampered(
      (env) => ({
        ...env,
        signatures: env.signatures.map((s) =>
          s.keyid === keys.alice.publicKey.keyid
            ? { keyid: s.keyid, sig: signEd25519(keys.mallory, pae(env.payloadType, env.payload)) }
            : s,
        ),
      }),
      async () => {
        const v = await sb.run(r.mallory!, ['verify', id]);
        assert.equal(v.code, 1);
        assert.match(v.stdout, /REQUESTER_SIGNATURE_MISSING \[T1\]/);
      },
    );
  });

  it('rejects a ticket.json that is not an envelope (ENVELOPE_MALFORMED), without a crash', async () => {
    await tampered(
      () => '{"payloadType": "x", "payl',
      async () => {
        const v = await sb.run(r.mallory!, ['verify', id]);
        assert.equal(v.code, 1);
        assert.match(v.stdout, /ENVELOPE_MALFORMED/);
        assert.ok(!hasStack(v.stdout + v.stderr));
      },
    );
  });

  it("rejects the ticket when bob's key is removed from the policy (APPROVALS_MISSING)", async () => {
    const file = join(sb.dir, 'policy-without-bob.yml');
    await writeFile(file, policyYaml({ omitBob: true }));
    const v = await sb.run(r.alice!, ['verify', id, '--policy', file]);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /APPROVALS_MISSING \[T3\]/);
  });

  it('refuses a request with a TTL over maxTtl (TTL_TOO_LONG) and writes nothing', async () => {
    const before = sb.git(r.alice!, ['for-each-ref', 'refs/breakglass/tickets/']);
    const q = await sb.as('alice', r.alice!, requestArgs([], { ttl: '61m' }));
    assert.equal(q.code, 1);
    assert.equal(errorCode(q.stderr), 'TTL_TOO_LONG');
    assert.equal(sb.git(r.alice!, ['for-each-ref', 'refs/breakglass/tickets/']), before);
  });

  it('rejects a ticket whose lifetime is over a stricter policy maxTtl (TTL_TOO_LONG [T11])', async () => {
    const file = join(sb.dir, 'policy-short.yml');
    await writeFile(file, policyYaml({ maxTtl: '10m' }));
    const v = await sb.run(r.alice!, ['verify', id, '--policy', file]);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /TTL_TOO_LONG \[T11\]/);
  });

  it('refuses a request for more uses than the policy maxUses (USES_TOO_MANY) and writes nothing', async () => {
    // The reproduction: --max-uses 1000 under maxUses 1 was signed, approved and used 5 times.
    const before = sb.git(r.alice!, ['for-each-ref', 'refs/breakglass/tickets/']);
    const q = await sb.as('alice', r.alice!, requestArgs(['--max-uses', '1000']));
    assert.equal(q.code, 1);
    assert.equal(errorCode(q.stderr), 'USES_TOO_MANY');
    assert.match(q.stderr, /--max-uses 1000 is over the policy's maxUses of 1/);
    assert.equal(sb.git(r.alice!, ['for-each-ref', 'refs/breakglass/tickets/']), before);
  });

  it('a ticket over the ceiling (made under a laxer policy) is refused by approve and verify (T15)', async () => {
    const lax = join(sb.dir, 'policy-lax.yml');
    await writeFile(lax, policyYaml({ maxUses: 5 }));
    const q = await sb.as('alice', r.alice!, requestArgs(['--max-uses', '5', '--policy', lax]));
    assert.equal(q.code, 0, q.stderr);
    const greedy = q.stdout.trim();
    sb.git(r.alice!, ['push', '-q', 'origin', `refs/breakglass/tickets/${greedy}`]);
    sb.git(r.bob!, ['fetch', '-q', 'origin', '+refs/breakglass/*:refs/breakglass/*']);
    const a = await sb.as('bob', r.bob!, ['approve', greedy]);
    assert.equal(a.code, 1);
    assert.equal(errorCode(a.stderr), 'USES_TOO_MANY');
    const v = await sb.run(r.alice!, ['verify', greedy]);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /USES_TOO_MANY \[T15\]/);
    // list and show call it invalid: no approval can fix it.
    const listed = JSON.parse((await sb.run(r.alice!, ['list', '--json'])).stdout) as {
      tickets: { id: string; status: string }[];
    };
    assert.equal(listed.tickets.find((t) => t.id === greedy)?.status, 'invalid');
    // Under the policy that allows 5 uses, only the approval is missing.
    const laxVerify = await sb.run(r.alice!, ['verify', greedy, '--policy', lax]);
    assert.doesNotMatch(laxVerify.stdout, /USES_TOO_MANY/);
    assert.match(laxVerify.stdout, /APPROVALS_MISSING/);
  });

  it('rejects use after expiry (--at, TICKET_EXPIRED)', async () => {
    const v = await sb.run(r.alice!, ['verify', id, '--at', '2099-01-01T00:00:00Z']);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /TICKET_EXPIRED \[T10\]/);
  });

  it('rejects the wrong ref, action and commit, listing every failed rule', async () => {
    const ref = await sb.run(r.alice!, ['verify', id, '--ref', 'release/1']);
    assert.equal(ref.code, 1);
    assert.match(ref.stdout, /SCOPE_REF \[T6\]/);
    const action = await sb.run(r.alice!, ['verify', id, '--action', 'force-push']);
    assert.equal(action.code, 1);
    assert.match(action.stdout, /SCOPE_ACTION \[T7\]/);
    const commit = await sb.run(r.alice!, ['verify', id, '--commit', 'HEAD~1']);
    assert.equal(commit.code, 1);
    assert.match(commit.stdout, /SCOPE_COMMIT \[T8\]/);
    // A full id is taken as given, even for a commit this clone does not have.
    const absent = await sb.run(r.alice!, ['verify', id, '--commit', 'f'.repeat(40)]);
    assert.equal(absent.code, 1);
    assert.match(absent.stdout, /SCOPE_COMMIT \[T8\]/);
    assert.equal((await sb.run(r.alice!, ['verify', id, '--commit', head])).code, 0);
    const all = await sb.run(r.alice!, [
      'verify',
      id,
      '--ref',
      'dev',
      '--action',
      'delete',
      '--commit',
      'HEAD~1',
      '--at',
      '2099-01-01T00:00:00Z',
    ]);
    assert.equal(all.code, 1);
    for (const code of ['SCOPE_REF', 'SCOPE_ACTION', 'SCOPE_COMMIT', 'TICKET_EXPIRED']) {
      assert.match(all.stdout, new RegExp(`  ${code} \\[T\\d+\\]`));
    }
  });

  it('checks the holder against --pusher (HOLDER_MISMATCH)', async () => {
    assert.equal((await sb.run(r.alice!, ['verify', id, '--pusher', 'alice-gh'])).code, 0);
    const v = await sb.run(r.alice!, ['verify', id, '--pusher', 'bob']);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /HOLDER_MISMATCH \[T14\]/);
  });

  it('a delayed start (--not-before) is not yet valid, and counts toward maxTtl', async () => {
    const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
    const later = await sb.as(
      'alice',
      r.alice!,
      requestArgs(['--not-before', iso(Date.now() + 20 * 60_000)]),
    );
    assert.equal(later.code, 0, later.stderr);
    const v = await sb.run(r.alice!, ['verify', later.stdout.trim()]);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /TICKET_NOT_YET_VALID \[T9\]/);
    const tooLate = await sb.as(
      'alice',
      r.alice!,
      requestArgs(['--not-before', iso(Date.now() + 50 * 60_000)]),
    );
    assert.equal(tooLate.code, 1);
    assert.equal(errorCode(tooLate.stderr), 'TTL_TOO_LONG');
  });
});
