// tickets.requireSignedPush through the real hook (docs/rules.md PC1-PC4): a break-glass push
// must carry a `git push --signed` certificate (gpg.format=ssh) made with a key of the ticket's
// holder. install-hooks set receive.certNonceSeed, so git issues nonces.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { adversarialPolicy, Arena, craftTicket, keys, payloadObject } from './harness.ts';
import { sshKeygenKey, tmp, writeOpenSshPrivateKey } from '../helpers/ssh.ts';

describe('adversarial: signed pushes (tickets.requireSignedPush)', () => {
  let arena: Arena;
  let hotfix: string;
  let dir: string;

  before(async () => {
    arena = await Arena.create({
      tweaks: {
        raw: adversarialPolicy().replace(
          /^(\s*)approvals: 1$/m,
          '$1approvals: 1\n$1requireSignedPush: true',
        ),
      },
    });
    hotfix = await arena.commitOn(arena.alice);
    dir = tmp('bg-signed-push-');
    // alice's and bob's policy keys as OpenSSH key files; mallory's key is in no policy.
    writeOpenSshPrivateKey(join(dir, 'alice'), keys.alice);
    writeOpenSshPrivateKey(join(dir, 'bob'), keys.bob);
    sshKeygenKey(dir, 'mallory');
  });
  after(async () => {
    await arena?.close();
  });

  /** git config for `push --signed` with `key`, through the environment. */
  const signingEnv = (key: string): NodeJS.ProcessEnv => ({
    GIT_CONFIG_COUNT: '3',
    GIT_CONFIG_KEY_0: 'gpg.format',
    GIT_CONFIG_VALUE_0: 'ssh',
    GIT_CONFIG_KEY_1: 'user.signingkey',
    GIT_CONFIG_VALUE_1: join(dir, key),
    GIT_CONFIG_KEY_2: 'push.gpgSign',
    GIT_CONFIG_VALUE_2: 'true',
  });

  async function pushTicket(signedBy: string | null) {
    const t = craftTicket(payloadObject(), [keys.alice, keys.bob]);
    const c = await arena.envelopeCommit(arena.alice, t.text);
    return arena.push(
      arena.alice,
      [`${c}:refs/breakglass/tickets/${t.id}`, `${hotfix}:refs/heads/main`],
      { tickets: [t.id], ...(signedBy ? { env: signingEnv(signedBy) } : {}) },
    );
  }

  it('an unsigned break-glass push: PUSH_CERT_REQUIRED, naming the command that works', async () => {
    const r = await arena.hostile(() => pushTicket(null), {
      code: 'PUSH_CERT_REQUIRED',
      rule: 'PC4',
    });
    assert.match(r.stderr, /push --signed -o breakglass=/);
  });

  it("a push signed with another principal's key (bob's): PUSH_CERT_INVALID", async () => {
    const r = await arena.hostile(() => pushTicket('bob'), {
      code: 'PUSH_CERT_INVALID',
      rule: 'PC4',
    });
    assert.match(r.stderr, /signed by bob .* held by alice/);
  });

  it('a push signed with a key outside the policy: PUSH_CERT_INVALID', async () => {
    const r = await arena.hostile(() => pushTicket('mallory'), {
      code: 'PUSH_CERT_INVALID',
      rule: 'PC4',
    });
    assert.match(r.stderr, /does not list/);
  });

  it("control: signed with the holder's key, the same push is accepted", async () => {
    const r = await pushTicket('alice');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /BREAK-GLASS PUSH ACCEPTED/);
    assert.equal(await arena.tip(), hotfix);
  });
});
