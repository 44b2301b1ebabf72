// Hostile SSH signatures through the real hook (docs/rules.md S1-S5, N5): bob approves with an
// sk-ssh-ed25519 key (FIDO form, made from a software key), carol with an ssh-ed25519 key; each
// hostile SSHSIG entry is refused with its own code, and the control push is accepted.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pae } from '../../src/ticket/dsse.ts';
import { TICKET_PAYLOAD_TYPE } from '../../src/ticket/payload.ts';
import { softSshKey } from '../helpers/ssh.ts';
import {
  adversarialPolicy,
  Arena,
  envelopeText,
  keys,
  payloadObject,
  sig,
  type Expect,
  type RawSig,
} from './harness.ts';

const bobSk = softSshKey('adversarial bob yubikey', true);
const carolSsh = softSshKey('adversarial carol ssh');
const mallorySsh = softSshKey('adversarial mallory ssh');

function policy(requireUserPresence: boolean): string {
  const text = adversarialPolicy()
    .replace(`"${keys.bob.publicKey.text}"`, `"${bobSk.line}"`)
    .replace(`"${keys.carol.publicKey.text}"`, `"${carolSsh.line}"`);
  return requireUserPresence
    ? text.replace(/^(\s*)approvals: 1$/m, '$1approvals: 1\n$1requireUserPresence: true')
    : text;
}

for (const strict of [false, true]) {
  describe(`adversarial: SSH signatures${strict ? ' (tickets.requireUserPresence)' : ''}`, () => {
    let arena: Arena;
    let hotfix: string;

    before(async () => {
      arena = await Arena.create({ tweaks: { raw: policy(strict) } });
      hotfix = await arena.commitOn(arena.alice);
    });
    after(async () => {
      await arena?.close();
    });

    /** A ticket signed by alice (raw Ed25519) plus the given SSHSIG entries. */
    function ticket(extra: (message: Buffer) => RawSig[]) {
      const p = payloadObject();
      const payload = Buffer.from(JSON.stringify(p));
      const message = pae(TICKET_PAYLOAD_TYPE, payload);
      const sigs = [sig(keys.alice, TICKET_PAYLOAD_TYPE, payload), ...extra(message)];
      return { id: String(p.id), text: envelopeText(TICKET_PAYLOAD_TYPE, payload, sigs) };
    }
    const entry = (keyid: string, blob: Buffer): RawSig => ({
      keyid,
      sig: blob.toString('base64'),
    });

    async function push(t: { id: string; text: string }) {
      const c = await arena.envelopeCommit(arena.alice, t.text);
      return arena.push(
        arena.alice,
        [`${c}:refs/breakglass/tickets/${t.id}`, `${hotfix}:refs/heads/main`],
        { tickets: [t.id] },
      );
    }
    // A refused approval also leaves the ticket one approval short on main (T3).
    const hostile = (t: { id: string; text: string }, e: Expect) =>
      arena.hostile(() => push(t), { also: ['APPROVALS_MISSING'], ...e });

    it('wrong namespace ("git", as commits are signed): SSHSIG_NAMESPACE', async () => {
      await hostile(
        ticket((m) => [entry(bobSk.publicKey.keyid, bobSk.blob(m, { namespace: 'git' }))]),
        { code: 'SSHSIG_NAMESPACE', rule: 'N5' },
      );
    });

    it('hash sha256 instead of sha512: SSHSIG_HASH', async () => {
      await hostile(
        ticket((m) => [
          entry(bobSk.publicKey.keyid, bobSk.blob(m, { hash: 'sha256', signHash: 'sha256' })),
        ]),
        { code: 'SSHSIG_HASH', rule: 'N5' },
      );
    });

    it("carol's blob under bob's keyid: SSHSIG_KEY_MISMATCH", async () => {
      await hostile(
        ticket((m) => [entry(bobSk.publicKey.keyid, carolSsh.blob(m))]),
        {
          code: 'SSHSIG_KEY_MISMATCH',
          rule: 'N5',
        },
      );
    });

    it('a key outside the policy: SIGNATURE_INVALID', async () => {
      await hostile(
        ticket((m) => [entry(mallorySsh.publicKey.keyid, mallorySsh.blob(m))]),
        {
          code: 'SIGNATURE_INVALID',
          rule: 'N5',
        },
      );
    });

    it('trailing bytes and a truncated blob: SSHSIG_MALFORMED', async () => {
      for (const cut of [
        (b: Buffer) => Buffer.concat([b, Buffer.from([0])]),
        (b: Buffer) => b.subarray(0, b.length - 1),
      ]) {
        await hostile(
          ticket((m) => [entry(bobSk.publicKey.keyid, cut(bobSk.blob(m)))]),
          {
            code: 'SSHSIG_MALFORMED',
          },
        );
      }
    });

    if (strict) {
      it('sk flags without user presence: USER_PRESENCE_REQUIRED (S5)', async () => {
        const r = await hostile(
          ticket((m) => [entry(bobSk.publicKey.keyid, bobSk.blob(m, { flags: 0 }))]),
          { code: 'USER_PRESENCE_REQUIRED', rule: 'S5' },
        );
        assert.match(r.stderr, /bob signed without user presence/);
      });

      it('an ssh-ed25519 approval (no authenticator): USER_PRESENCE_REQUIRED (S5)', async () => {
        await hostile(
          ticket((m) => [entry(carolSsh.publicKey.keyid, carolSsh.blob(m))]),
          {
            code: 'USER_PRESENCE_REQUIRED',
            rule: 'S5',
          },
        );
      });
    }

    it(`control: bob's sk approval with a touch${strict ? '' : ' (or carol ssh-ed25519)'} is accepted`, async () => {
      const r = await push(
        ticket((m) => [
          strict
            ? entry(bobSk.publicKey.keyid, bobSk.blob(m))
            : entry(carolSsh.publicKey.keyid, carolSsh.blob(m)),
        ]),
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /BREAK-GLASS PUSH ACCEPTED/);
      assert.equal(await arena.tip(), hotfix);
    });
  });
}
