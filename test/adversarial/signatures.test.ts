// Hostile tickets against authenticity and approvals (docs/threat-model.md TM1, TM2, TM12; rules
// A1-A4, T1-T4, N4-N6): forged, edited, re-used or malformed signatures and envelopes, pushed together
// with the protected update they are meant to unlock, through the real hook.
// The policy here needs TWO approvals, and carol has two keys, so "fake a second approver"
// attacks have something to fake.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { REVOCATION_PAYLOAD_TYPE } from '../../src/ticket/revocation.ts';
import { TICKET_PAYLOAD_TYPE } from '../../src/ticket/payload.ts';
import { pae } from '../../src/ticket/dsse.ts';
import {
  Arena,
  carol2,
  craftTicket,
  envelopeText,
  keys,
  newId,
  payloadObject,
  sig,
  type Crafted,
  type Expect,
} from './harness.ts';
import type { SigningKey } from '../../src/ticket/keys.ts';

const { alice, alice2, bob, carol, dave, mallory, mergeBot } = keys;

describe('adversarial: signatures, approvals and envelopes', () => {
  let arena: Arena;
  let hotfix: string;
  /** A ticket already on the server, signed by its requester only (awaiting approvals). */
  let stored: Crafted;
  let storedCommit: string;

  before(async () => {
    arena = await Arena.create({ tweaks: { approvals: 2, carolTwoKeys: true } });
    hotfix = await arena.commitOn(arena.alice);
    stored = craftTicket(payloadObject(), [alice]);
    storedCommit = await arena.envelopeCommit(arena.alice, stored.text);
    await arena.setup(arena.alice, [`${storedCommit}:refs/breakglass/tickets/${stored.id}`]);
  });
  after(async () => {
    await arena?.close();
  });

  /** Pushes ticket.json `text` as a new ticket `id` together with main -> hotfix, naming it. */
  async function pushWithTicket(
    id: string,
    text: string | Buffer,
    e: Expect,
    o: { as?: string; main?: string; force?: boolean } = {},
  ) {
    const dev = arena.alice;
    const c = await arena.envelopeCommit(dev, text);
    return arena.hostile(
      () =>
        arena.push(
          dev,
          [
            `${c}:refs/breakglass/tickets/${id}`,
            `${o.force ? '+' : ''}${o.main ?? hotfix}:refs/heads/main`,
          ],
          { tickets: [id], ...(o.as ? { as: o.as } : {}) },
        ),
      e,
    );
  }

  const signed = (p: Record<string, unknown>, by: SigningKey[]) => craftTicket(p, by);

  it('payload edited after signing (reason rewritten): SIGNATURE_INVALID', async () => {
    const t = signed(payloadObject(), [alice, bob, carol]);
    const edited = t.text.replace(
      t.payload.toString('base64'),
      Buffer.from(
        t.payload.toString().replace('payment outage hotfix', 'routine cleanup'),
      ).toString('base64'),
    );
    assert.notEqual(edited, t.text);
    await pushWithTicket(t.id, edited, { code: 'SIGNATURE_INVALID', rule: 'N5' });
  });

  it('payload edited after signing (scope widened to refs/heads/**): SIGNATURE_INVALID', async () => {
    const p = payloadObject();
    const t = signed(p, [alice, bob, carol]);
    const wide = Buffer.from(
      JSON.stringify({
        ...p,
        scope: { refs: ['refs/heads/**'], actions: ['push', 'force-push', 'delete'] },
      }),
    );
    const edited = t.text.replace(t.payload.toString('base64'), wide.toString('base64'));
    await pushWithTicket(t.id, edited, { code: 'SIGNATURE_INVALID', rule: 'N5' });
  });

  it('approvals moved from another ticket onto a new ticket: SIGNATURE_INVALID', async () => {
    const donor = signed(payloadObject({ reason: 'a ticket bob and carol really approved' }), [
      alice,
      bob,
      carol,
    ]);
    const donorSigs = (JSON.parse(donor.text) as { signatures: unknown[] }).signatures.slice(1);
    const p = payloadObject();
    const payload = Buffer.from(JSON.stringify(p));
    const text = JSON.stringify({
      payloadType: TICKET_PAYLOAD_TYPE,
      payload: payload.toString('base64'),
      signatures: [sig(alice, TICKET_PAYLOAD_TYPE, payload), ...donorSigs],
    });
    await pushWithTicket(String(p.id), text, {
      code: 'SIGNATURE_INVALID',
      rule: 'N5',
      also: ['APPROVALS_MISSING'],
    });
  });

  it('an approval moved from another ticket onto a stored ticket: SIGNATURE_INVALID (N6)', async () => {
    const donor = signed(payloadObject(), [alice, bob]);
    const bobSig = (JSON.parse(donor.text) as { signatures: unknown[] }).signatures[1];
    const text = JSON.stringify({
      payloadType: TICKET_PAYLOAD_TYPE,
      payload: stored.payload.toString('base64'),
      signatures: [sig(alice, TICKET_PAYLOAD_TYPE, stored.payload), bobSig],
    });
    const c = await arena.envelopeCommit(arena.alice, text, { parents: [storedCommit] });
    await arena.hostile(
      () => arena.push(arena.alice, [`${c}:refs/breakglass/tickets/${stored.id}`]),
      { code: 'SIGNATURE_INVALID', rule: 'N6' },
    );
  });

  it("bob's signature duplicated to fake the second approver: APPROVALS_MISSING", async () => {
    const t = signed(payloadObject(), [alice, bob, bob]);
    const r = await pushWithTicket(t.id, t.text, { code: 'APPROVALS_MISSING', rule: 'T3' });
    assert.match(r.stderr, /has 1 \(bob\)/);
  });

  it("one person's two keys as two approvers (carol, carol2): APPROVALS_MISSING", async () => {
    const t = signed(payloadObject(), [alice, carol, carol2]);
    const r = await pushWithTicket(t.id, t.text, { code: 'APPROVALS_MISSING', rule: 'T3' });
    assert.match(r.stderr, /has 1 \(carol\)/);
  });

  it('the requester approving with her second key (alice2): APPROVALS_MISSING', async () => {
    const t = signed(payloadObject(), [alice, alice2, bob]);
    const r = await pushWithTicket(t.id, t.text, { code: 'APPROVALS_MISSING', rule: 'T3' });
    assert.match(r.stderr, /has 1 \(bob\)/);
  });

  it('an approver without the approver role (dave, oncall): APPROVALS_MISSING', async () => {
    const t = signed(payloadObject(), [alice, bob, dave]);
    const r = await pushWithTicket(t.id, t.text, { code: 'APPROVALS_MISSING', rule: 'T3' });
    assert.match(r.stderr, /dave signed without an approver role/);
  });

  it("approvers' signatures without the requester's: REQUESTER_SIGNATURE_MISSING", async () => {
    const t = signed(payloadObject(), [bob, carol]);
    await pushWithTicket(t.id, t.text, { code: 'REQUESTER_SIGNATURE_MISSING', rule: 'N5' });
  });

  it('a requester outside the policy (mallory) with real approvals: refused', async () => {
    const t = signed(payloadObject({ requester: 'mallory', holder: 'alice' }), [
      mallory,
      bob,
      carol,
    ]);
    await pushWithTicket(t.id, t.text, {
      code: 'REQUESTER_SIGNATURE_MISSING',
      rule: 'N5',
      also: ['PRINCIPAL_UNKNOWN'],
    });
  });

  it('a requester without a requester role (merge-bot) force-pushing: REQUESTER_ROLE', async () => {
    // Not a descendant of main: a force push, so merge-bot's normal path (P1) does not apply.
    const rewrite = await arena.commitOn(arena.alice, { orphan: true });
    const t = signed(
      payloadObject({ requester: 'merge-bot', holder: 'merge-bot', actions: ['force-push'] }),
      [mergeBot, bob, carol],
    );
    await pushWithTicket(
      t.id,
      t.text,
      { code: 'REQUESTER_ROLE', rule: 'T2' },
      { as: 'merge-bot', main: rewrite, force: true },
    );
  });

  it('a signature by a key the policy does not list (mallory): SIGNATURE_INVALID', async () => {
    const t = signed(payloadObject(), [alice, bob, mallory]);
    await pushWithTicket(t.id, t.text, {
      code: 'SIGNATURE_INVALID',
      rule: 'N5',
      also: ['APPROVALS_MISSING'],
    });
  });

  it("mallory's signature wearing carol's keyid: SIGNATURE_INVALID", async () => {
    const p = payloadObject();
    const payload = Buffer.from(JSON.stringify(p));
    const forged = { ...sig(mallory, TICKET_PAYLOAD_TYPE, payload), keyid: carol.publicKey.keyid };
    const text = envelopeText(TICKET_PAYLOAD_TYPE, payload, [
      sig(alice, TICKET_PAYLOAD_TYPE, payload),
      sig(bob, TICKET_PAYLOAD_TYPE, payload),
      forged,
    ]);
    await pushWithTicket(String(p.id), text, {
      code: 'SIGNATURE_INVALID',
      rule: 'N5',
      also: ['APPROVALS_MISSING'],
    });
  });

  it('wrong payloadType (a revocation type, validly signed): PAYLOAD_TYPE', async () => {
    const p = payloadObject();
    const t = craftTicket(p, [alice, bob, carol], REVOCATION_PAYLOAD_TYPE);
    await pushWithTicket(t.id, t.text, { code: 'PAYLOAD_TYPE', rule: 'N5' });
  });

  it('PAE confusion: signatures over the same bytes under another payloadType: SIGNATURE_INVALID', async () => {
    const p = payloadObject();
    const payload = Buffer.from(JSON.stringify(p));
    const other = pae(REVOCATION_PAYLOAD_TYPE, payload);
    const text = envelopeText(
      TICKET_PAYLOAD_TYPE,
      payload,
      [alice, bob, carol].map((k) => sig(k, TICKET_PAYLOAD_TYPE, payload, other)),
    );
    await pushWithTicket(String(p.id), text, { code: 'SIGNATURE_INVALID', rule: 'N5' });
  });

  it('PAE confusion: signatures over the raw payload (no PAE): SIGNATURE_INVALID', async () => {
    const p = payloadObject();
    const payload = Buffer.from(JSON.stringify(p));
    const text = envelopeText(
      TICKET_PAYLOAD_TYPE,
      payload,
      [alice, bob, carol].map((k) => sig(k, TICKET_PAYLOAD_TYPE, payload, payload)),
    );
    await pushWithTicket(String(p.id), text, { code: 'SIGNATURE_INVALID', rule: 'N5' });
  });

  it('canonicalisation confusion: signed pretty JSON, compact JSON in the envelope: SIGNATURE_INVALID', async () => {
    const p = payloadObject();
    const compact = Buffer.from(JSON.stringify(p));
    const pretty = pae(TICKET_PAYLOAD_TYPE, Buffer.from(JSON.stringify(p, null, 2)));
    const text = envelopeText(
      TICKET_PAYLOAD_TYPE,
      compact,
      [alice, bob, carol].map((k) => sig(k, TICKET_PAYLOAD_TYPE, compact, pretty)),
    );
    await pushWithTicket(String(p.id), text, { code: 'SIGNATURE_INVALID', rule: 'N5' });
  });

  it('invalid UTF-8 in ticket.json: ENVELOPE_MALFORMED', async () => {
    const t = signed(payloadObject(), [alice, bob, carol]);
    const bytes = Buffer.concat([
      Buffer.from(t.text.slice(0, 1)),
      Buffer.from([0xff, 0xfe]),
      Buffer.from(t.text.slice(1)),
    ]);
    await pushWithTicket(t.id, bytes, { code: 'ENVELOPE_MALFORMED', rule: 'N4' });
  });

  it('invalid UTF-8 inside the signed payload: PAYLOAD_MALFORMED', async () => {
    const p = payloadObject();
    const bytes = Buffer.from(JSON.stringify(p).replace('hotfix', 'hotfix\u0001'));
    // Replace the \u0001 marker by a lone continuation byte (not UTF-8), then sign those bytes.
    const at = bytes.indexOf(0x01);
    bytes[at] = 0x80;
    const t = craftTicket(bytes, [alice, bob, carol]);
    await pushWithTicket(String(p.id), t.text, { code: 'PAYLOAD_MALFORMED', rule: 'N5' });
  });

  it('a time without Z (2026-11-29T03:27:00): TIME_INVALID', async () => {
    const p = payloadObject();
    p.expiresAt = String(p.expiresAt).replace(/Z$/, '');
    const t = signed(p, [alice, bob, carol]);
    await pushWithTicket(t.id, t.text, { code: 'TIME_INVALID', rule: 'N5' });
  });

  it('a leap second (23:59:60) as expiresAt: TIME_INVALID', async () => {
    const p = payloadObject();
    p.expiresAt = `${String(p.expiresAt).slice(0, 10)}T23:59:60Z`;
    const t = signed(p, [alice, bob, carol]);
    await pushWithTicket(t.id, t.text, { code: 'TIME_INVALID', rule: 'N5' });
  });

  it('a time with an offset instead of Z (+00:00): TIME_INVALID', async () => {
    const p = payloadObject();
    p.notBefore = String(p.notBefore).replace(/Z$/, '+00:00');
    const t = signed(p, [alice, bob, carol]);
    await pushWithTicket(t.id, t.text, { code: 'TIME_INVALID', rule: 'N5' });
  });

  it('a 1 MB ticket.json: INPUT_TOO_LARGE', async () => {
    const t = signed(payloadObject(), [alice, bob, carol]);
    const big = t.text.replace('{', `{${' '.repeat(1024 * 1024)}`);
    await pushWithTicket(t.id, big, { code: 'INPUT_TOO_LARGE', rule: 'N4' });
  });

  it('33 signatures: INPUT_TOO_LARGE', async () => {
    const p = payloadObject();
    const payload = Buffer.from(JSON.stringify(p));
    const one = sig(alice, TICKET_PAYLOAD_TYPE, payload);
    const text = envelopeText(TICKET_PAYLOAD_TYPE, payload, Array(33).fill(one));
    await pushWithTicket(String(p.id), text, { code: 'INPUT_TOO_LARGE', rule: 'N4' });
  });

  it('a field given twice in the envelope (second payload): ENVELOPE_MALFORMED', async () => {
    const good = signed(payloadObject(), [alice, bob, carol]);
    const evil = Buffer.from(JSON.stringify(payloadObject({ refs: ['refs/heads/**'] })));
    const text = good.text.replace(/\n}\n$/, `,\n  "payload": "${evil.toString('base64')}"\n}\n`);
    await pushWithTicket(good.id, text, { code: 'ENVELOPE_MALFORMED', rule: 'N4' });
  });

  it('a field given twice in the signed payload (second holder): PAYLOAD_MALFORMED', async () => {
    const p = payloadObject();
    const bytes = Buffer.from(
      JSON.stringify(p).replace('"holder":"alice"', '"holder":"alice","holder":"dave"'),
    );
    const t = craftTicket(bytes, [alice, bob, carol]);
    await pushWithTicket(String(p.id), t.text, { code: 'PAYLOAD_MALFORMED', rule: 'N5' });
  });

  it('ticket.json nested 30,000 arrays deep: ENVELOPE_MALFORMED', async () => {
    const id = newId();
    await pushWithTicket(id, '['.repeat(30_000) + ']'.repeat(30_000), {
      code: 'ENVELOPE_MALFORMED',
      rule: 'N4',
    });
  });

  it('an unknown field in the signed payload ("admin": true): PAYLOAD_MALFORMED', async () => {
    const p = { ...payloadObject(), admin: true };
    const t = signed(p, [alice, bob, carol]);
    await pushWithTicket(t.id, t.text, { code: 'PAYLOAD_MALFORMED', rule: 'N5' });
  });

  it('payload version 2: VERSION_UNSUPPORTED', async () => {
    const p = { ...payloadObject(), version: 2 };
    const t = signed(p, [alice, bob, carol]);
    await pushWithTicket(t.id, t.text, { code: 'VERSION_UNSUPPORTED', rule: 'N5' });
  });

  it('a valid ticket stored under another id (copy to reset uses): TICKET_REF_INVALID', async () => {
    const t = signed(payloadObject(), [alice, bob, carol]);
    await pushWithTicket(newId(), t.text, { code: 'TICKET_REF_INVALID', rule: 'N5' });
  });

  // Control: the same harness and server accept an honest ticket, so the refusals above are
  // the hook's judgement, not a broken set-up. Runs last (it moves main).
  it('control: alice + bob + carol, pushed the same way, is accepted', async () => {
    const t = signed(payloadObject(), [alice, bob, carol]);
    const c = await arena.envelopeCommit(arena.alice, t.text);
    const r = await arena.push(
      arena.alice,
      [`${c}:refs/breakglass/tickets/${t.id}`, `${hotfix}:refs/heads/main`],
      { tickets: [t.id] },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /BREAK-GLASS PUSH ACCEPTED/);
    assert.equal(await arena.tip(), hotfix);
  });
});
