// Hostile pushes against the evidence and the ticket state kept in the repository
// (docs/threat-model.md TM7, TM8, TM10, TM14; rules T12, T13, N1-N8, R4-R5): re-using spent or revoked
// tickets, rewriting or deleting tickets, revocations, use records and audit notes, forging
// revocations and reviews, and racing a single-use ticket.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeReview, REVIEW_PAYLOAD_TYPE } from '../../src/audit/review.ts';
import { parsePolicy } from '../../src/policy/policy.ts';
import { parseEnvelope, serializeEnvelope } from '../../src/ticket/dsse.ts';
import type { SigningKey } from '../../src/ticket/keys.ts';
import { createRevocation } from '../../src/ticket/revocation.ts';
import { createEnvelope } from '../../src/ticket/sign.ts';
import { formatTime } from '../../src/ticket/time.ts';
import { verifyTicketEnvelope, type VerifiedTicket } from '../../src/ticket/verify.ts';
import {
  adversarialPolicy,
  Arena,
  craftTicket,
  keys,
  newId,
  payloadObject,
  storedTicket,
  type Crafted,
  type Stored,
} from './harness.ts';

const policy = parsePolicy(adversarialPolicy());
const verified = (t: Crafted): VerifiedTicket =>
  verifyTicketEnvelope(parseEnvelope(t.text), policy.keyOwners);

describe('adversarial: evidence, revocations, uses', () => {
  let arena: Arena;
  /** Used once (maxUses 1): main moved, a note and a consumed/ record exist. */
  let used: Stored;
  /** On the server, approved, never used. */
  let stored: Stored;
  /** On the server, approved, revoked by bob. */
  let revoked: Stored;
  let revocationCommit: string;

  before(async () => {
    arena = await Arena.create({ branches: ['release/1', 'release/2', 'release/3', 'release/4'] });
    const a = arena.alice;
    used = await storedTicket(arena, a);
    stored = await storedTicket(arena, a);
    revoked = await storedTicket(arena, a);
    const fix = await arena.commitOn(a);
    await arena.setup(a, [used.refspec, stored.refspec, revoked.refspec]);
    await arena.setup(a, [`${fix}:refs/heads/main`], { tickets: [used.id] });
    assert.ok(await arena.server.ref(`refs/breakglass/consumed/${used.id}`), 'use recorded');
    assert.ok(await arena.server.note(fix), 'note written');
    const rev = createRevocation(
      verified(revoked),
      'bob',
      'fixed by rollback',
      Date.now(),
      keys.bob,
    );
    revocationCommit = await arena.envelopeCommit(a, serializeEnvelope(rev), {
      file: 'revocation.json',
    });
    await arena.setup(a, [`${revocationCommit}:refs/breakglass/revoked/${revoked.id}`]);
  });
  after(async () => {
    await arena?.close();
  });

  const fresh = () => arena.commitOn(arena.alice);
  const push =
    (refspecs: string[], tickets: string[] = []) =>
    () =>
      arena.push(arena.alice, refspecs, { tickets });

  it('a used-up ticket (maxUses 1, used once): TICKET_USED_UP', async () => {
    await arena.hostile(push([`${await fresh()}:refs/heads/main`], [used.id]), {
      code: 'TICKET_USED_UP',
      rule: 'T13',
    });
  });

  it('a used-up ticket copied to a fresh ticket id: TICKET_REF_INVALID', async () => {
    const copy = newId();
    await arena.hostile(
      push(
        [`${used.commit}:refs/breakglass/tickets/${copy}`, `${await fresh()}:refs/heads/main`],
        [copy],
      ),
      { code: 'TICKET_REF_INVALID', rule: 'N5', also: [] },
    );
  });

  it('a revoked ticket: TICKET_REVOKED', async () => {
    await arena.hostile(push([`${await fresh()}:refs/heads/main`], [revoked.id]), {
      code: 'TICKET_REVOKED',
      rule: 'T12',
    });
  });

  it('a revocation rewritten (force-pushed to a new revocation): NAMESPACE_VIOLATION', async () => {
    const rev = createRevocation(verified(revoked), 'alice', 'oops', Date.now(), keys.alice);
    const c = await arena.envelopeCommit(arena.alice, serializeEnvelope(rev), {
      file: 'revocation.json',
    });
    await arena.hostile(push([`+${c}:refs/breakglass/revoked/${revoked.id}`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N7',
    });
  });

  it('a revocation deleted (to revive the ticket): NAMESPACE_VIOLATION', async () => {
    await arena.hostile(push([`:refs/breakglass/revoked/${revoked.id}`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N1',
    });
  });

  async function revocationBy(ticket: Crafted, revoker: string, key: SigningKey) {
    const rev = createRevocation(verified(ticket), revoker, 'denial of service', Date.now(), key);
    return arena.envelopeCommit(arena.alice, serializeEnvelope(rev), { file: 'revocation.json' });
  }

  it('a revocation forged by a non-approver (dave, oncall): REVOCATION_INVALID', async () => {
    const c = await revocationBy(stored, 'dave', keys.dave);
    await arena.hostile(push([`${c}:refs/breakglass/revoked/${stored.id}`]), {
      code: 'REVOCATION_INVALID',
      rule: 'N7',
    });
  });

  it('a revocation signed by an unknown key claiming to be bob: REVOCATION_INVALID', async () => {
    const c = await revocationBy(stored, 'bob', keys.mallory);
    await arena.hostile(push([`${c}:refs/breakglass/revoked/${stored.id}`]), {
      code: 'REVOCATION_INVALID',
      rule: 'N7',
    });
  });

  it('a valid revocation of one ticket filed under another ticket: REVOCATION_INVALID', async () => {
    const c = await revocationBy(used, 'bob', keys.bob);
    await arena.hostile(push([`${c}:refs/breakglass/revoked/${stored.id}`]), {
      code: 'REVOCATION_INVALID',
      rule: 'N7',
    });
  });

  it('a ticket force-pushed with a rewritten, validly signed payload: NAMESPACE_VIOLATION', async () => {
    const wider = craftTicket(
      payloadObject({ id: stored.id, refs: ['refs/heads/**'], maxUses: 1000 }),
      [keys.alice, keys.bob],
    );
    const c = await arena.envelopeCommit(arena.alice, wider.text);
    await arena.hostile(push([`+${c}:refs/breakglass/tickets/${stored.id}`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N6',
    });
  });

  it('a ticket fast-forwarded to a commit with another payload: NAMESPACE_VIOLATION', async () => {
    const wider = craftTicket(payloadObject({ id: stored.id, maxUses: 1000 }), [
      keys.alice,
      keys.bob,
    ]);
    const c = await arena.envelopeCommit(arena.alice, wider.text, { parents: [stored.commit] });
    const r = await arena.hostile(push([`${c}:refs/breakglass/tickets/${stored.id}`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N6',
    });
    assert.match(r.stderr, /payload changed/);
  });

  it("an approval stripped from a stored ticket (bob's signature removed): NAMESPACE_VIOLATION", async () => {
    const env = JSON.parse(stored.text) as { signatures: unknown[] };
    const text = JSON.stringify({ ...env, signatures: env.signatures.slice(0, 1) });
    const c = await arena.envelopeCommit(arena.alice, text, { parents: [stored.commit] });
    const r = await arena.hostile(push([`${c}:refs/breakglass/tickets/${stored.id}`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N6',
    });
    assert.match(r.stderr, /removed/);
  });

  it('a ticket deleted: NAMESPACE_VIOLATION', async () => {
    await arena.hostile(push([`:refs/breakglass/tickets/${used.id}`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N1',
    });
  });

  it('a ticket ref replaced by a blob: TICKET_REF_INVALID', async () => {
    const blob = (
      await arena.alice.git(['hash-object', '-w', '--stdin'], { check: true, input: stored.text })
    ).stdout.trim();
    await arena.hostile(push([`+${blob}:refs/breakglass/tickets/${stored.id}`]), {
      code: 'TICKET_REF_INVALID',
      rule: 'N4',
    });
  });

  it('a ticket ref replaced by an annotated tag of the ticket commit: TICKET_REF_INVALID', async () => {
    await arena.sync(arena.alice);
    const tag = (
      await arena.alice.git(['mktag'], {
        check: true,
        input: `object ${stored.commit}\ntype commit\ntag t\ntagger Alice <alice@example.test> 1700000000 +0000\n\nwrapped\n`,
      })
    ).stdout.trim();
    await arena.hostile(push([`+${tag}:refs/breakglass/tickets/${stored.id}`]), {
      code: 'TICKET_REF_INVALID',
      rule: 'N4',
    });
  });

  it('a new ticket ref holding a tag: TICKET_REF_INVALID', async () => {
    const t = await storedTicket(arena, arena.alice);
    const tag = (
      await arena.alice.git(['mktag'], {
        check: true,
        input: `object ${t.commit}\ntype commit\ntag t2\ntagger Alice <alice@example.test> 1700000000 +0000\n\nwrapped\n`,
      })
    ).stdout.trim();
    await arena.hostile(push([`${tag}:refs/breakglass/tickets/${t.id}`]), {
      code: 'TICKET_REF_INVALID',
      rule: 'N4',
    });
  });

  it('the client rewriting refs/notes/breakglass (a forged note): NAMESPACE_VIOLATION', async () => {
    await arena.sync(arena.alice);
    const a = arena.alice;
    const notes = (await arena.server.ref('refs/notes/breakglass'))!;
    const tree = (await a.git(['mktree'], { check: true, input: '' })).stdout.trim();
    const c = (
      await a.git(['commit-tree', tree, '-p', notes, '-m', 'Notes removed by git notes prune'], {
        check: true,
      })
    ).stdout.trim();
    await arena.hostile(push([`${c}:refs/notes/breakglass`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N3',
    });
  });

  it('the client deleting refs/notes/breakglass: NAMESPACE_VIOLATION', async () => {
    await arena.hostile(push([':refs/notes/breakglass']), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N1',
    });
  });

  it("the client writing consumed/<id> for someone else's ticket (burning it): NAMESPACE_VIOLATION", async () => {
    const c = await arena.envelopeCommit(arena.alice, '{}', { file: 'use.json' });
    await arena.hostile(push([`${c}:refs/breakglass/consumed/${stored.id}`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N3',
    });
  });

  it('the client resetting consumed/<id> of a used ticket: NAMESPACE_VIOLATION', async () => {
    const c = await arena.envelopeCommit(arena.alice, '{}', { file: 'use.json' });
    await arena.hostile(push([`+${c}:refs/breakglass/consumed/${used.id}`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N3',
    });
  });

  it('the client deleting consumed/<id> of a used ticket: NAMESPACE_VIOLATION', async () => {
    await arena.hostile(push([`:refs/breakglass/consumed/${used.id}`]), {
      code: 'NAMESPACE_VIOLATION',
      rule: 'N1',
    });
  });

  /** A review of `ticket` signed by `key` as `reviewer`, crafted (bg-sign would refuse it). */
  async function reviewBy(ticket: Crafted, reviewer: string, key: SigningKey) {
    const t = verified(ticket);
    const bytes = encodeReview({
      type: 'git-breakglass/review',
      version: 1,
      ticket: t.payload.id,
      ticketDigest: t.payloadDigest,
      reviewer,
      outcome: 'justified',
      note: 'all good, nothing to see',
      reviewedAt: formatTime(Math.floor(Date.now() / 1000) * 1000),
    });
    const env = createEnvelope(REVIEW_PAYLOAD_TYPE, bytes, key);
    return arena.envelopeCommit(arena.alice, serializeEnvelope(env), { file: 'review.json' });
  }

  it('the requester reviewing her own break-glass use: REVIEW_INVALID', async () => {
    const c = await reviewBy(used, 'alice', keys.alice);
    const r = await arena.hostile(push([`${c}:refs/breakglass/reviews/${used.id}`]), {
      code: 'REVIEW_INVALID',
      rule: 'N8',
    });
    assert.match(r.stderr, /requested ticket .* can't review it/);
  });

  it('a review by someone without a reviewer role (dave): REVIEW_INVALID', async () => {
    const c = await reviewBy(used, 'dave', keys.dave);
    await arena.hostile(push([`${c}:refs/breakglass/reviews/${used.id}`]), {
      code: 'REVIEW_INVALID',
      rule: 'N8',
    });
  });

  it('refs outside the known namespaces (refs/breakglass/admin/<id>, tickets/<not an id>): NAMESPACE_VIOLATION', async () => {
    await arena.hostile(
      push([
        `${stored.commit}:refs/breakglass/admin/${stored.id}`,
        `${stored.commit}:refs/breakglass/tickets/latest`,
      ]),
      { code: 'NAMESPACE_VIOLATION', rule: 'N2' },
    );
  });

  it('concurrent single use: 4 pushes race one single-use ticket; exactly one lands', async () => {
    const t = await storedTicket(arena, arena.alice, { refs: ['release/*'] });
    await arena.setup(arena.alice, [t.refspec]);
    const commits = await Promise.all(
      [1, 2, 3, 4].map((n) => arena.commitOn(arena.alice, { ref: `refs/heads/release/${n}` })),
    );
    const results = await Promise.all(
      commits.map((c, i) =>
        arena.push(arena.alice, [`${c}:refs/heads/release/${i + 1}`], { tickets: [t.id] }),
      ),
    );
    const ok = results.filter((r) => r.code === 0);
    assert.equal(ok.length, 1, results.map((r) => r.stderr).join('\n----\n'));
    for (const r of results.filter((x) => x.code !== 0)) {
      assert.match(r.stderr, /TICKET_USED_UP \(T13\)/);
    }
    const uses = await arena.server.git([
      'rev-list',
      '--count',
      `refs/breakglass/consumed/${t.id}`,
    ]);
    assert.equal(uses.stdout.trim(), '1');
  });
  it('a signed reason that tries to forge note trailers stays one escaped line in the note', async () => {
    // The ticket is genuine (approvers signed this text); the note must still not grow a
    // second Approvers line or a fake event block out of it.
    const forged = `INC-1\nBreak-glass-Approvers: carol ${keys.carol.publicKey.keyid}\n\nBreak-glass-Ticket: 20200101T000000Z-abcdef`;
    const t = await storedTicket(arena, arena.alice, { reason: forged });
    const fix = await arena.commitOn(arena.alice);
    const r = await arena.push(arena.alice, [t.refspec, `${fix}:refs/heads/main`], {
      tickets: [t.id],
    });
    assert.equal(r.code, 0, r.stderr);
    const note = (await arena.server.note(fix)) ?? '';
    assert.equal(note.match(/^Break-glass-Approvers:/gm)?.length, 1, note);
    assert.equal(note.match(/^Break-glass-Ticket:/gm)?.length, 1, note);
    assert.match(note, /^Break-glass-Reason: INC-1\\nBreak-glass-Approvers: carol/m);
    assert.doesNotMatch(note, /\n\n/, 'one event block, no blank line injected');
  });
});
