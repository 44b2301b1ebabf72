// Issue 14 part 1 through the CLI: alice signs with her OpenSSH key file found through git's
// `user.signingkey`, bob approves with a key held by a real ssh-agent; every signature is then
// also accepted by real `ssh-keygen -Y verify` with allowed signers written from the policy.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parsePolicy, type Policy } from '../../src/policy/policy.ts';
import { pae, parseEnvelope } from '../../src/ticket/dsse.ts';
import { armourSshSig, SSHSIG_NAMESPACE } from '../../src/ticket/sshsig.ts';
import { keys, policyYaml } from '../helpers/fixtures.ts';
import { run, sshKeygenKey, startAgent } from '../helpers/ssh.ts';
import { errorCode, requestArgs, Sandbox } from './harness.ts';

describe('bg-sign with SSH keys (file key via git config, ssh-agent)', () => {
  let sb: Sandbox;
  let agent: { sock: string; stop(): void };
  let alice: { path: string; pub: string };
  let bob: { path: string; pub: string };
  let policy: Policy;
  const r: Record<string, string> = {};
  let id: string;

  before(async () => {
    sb = await Sandbox.create();
    const sshDir = join(sb.dir, 'ssh');
    mkdirSync(sshDir);
    alice = sshKeygenKey(sshDir, 'alice_ed25519');
    bob = sshKeygenKey(sshDir, 'bob_ed25519');
    agent = await startAgent(sb.dir);
    const add = run('ssh-add', [bob.path], { env: { ...sb.env, SSH_AUTH_SOCK: agent.sock } });
    assert.equal(add.status, 0, add.stderr);
    // The fixture policy, with alice's and bob's keys replaced by their OpenSSH lines.
    const yaml = policyYaml()
      .replace(`"${keys.alice.publicKey.text}", "${keys.alice2.publicKey.text}"`, `"${alice.pub}"`)
      .replace(`"${keys.bob.publicKey.text}"`, `"${bob.pub}"`);
    policy = parsePolicy(yaml);
    const repos = await sb.repos([]);
    const seed = join(sb.dir, 'seed');
    writeFileSync(join(seed, '.breakglass', 'policy.yml'), yaml);
    sb.git(seed, ['add', '.']);
    sb.commit(seed, 'policy: OpenSSH keys');
    sb.git(seed, ['push', '-q', 'origin', 'main']);
    r.origin = repos.origin!;
    for (const name of ['alice', 'bob']) {
      r[name] = join(sb.dir, name);
      sb.git(sb.dir, ['clone', '-q', r.origin, r[name]]);
    }
    sb.git(r.alice!, ['config', 'gpg.format', 'ssh']);
    sb.git(r.alice!, ['config', 'user.signingkey', alice.path]);
  });
  after(async () => {
    agent.stop();
    await sb.cleanup();
  });

  it("alice requests with no --key: git's user.signingkey (gpg.format=ssh) signs via ssh-keygen", async () => {
    const req = await sb.run(r.alice!, [...requestArgs(['--push']), '--verbose']);
    assert.equal(req.code, 0, req.stderr);
    id = req.stdout.trim().split('\n')[0]!;
    assert.match(req.stderr, /key: .*alice_ed25519 \(SHA256:/);
    assert.match(req.stderr, /signing as alice/);
  });

  it('bob approves with --key <his public key line>: ssh-agent signs', async () => {
    const withoutAgent = await sb.run(r.bob!, ['approve', id, '--key', bob.pub]);
    assert.equal(withoutAgent.code, 1);
    assert.equal(errorCode(withoutAgent.stderr), 'KEY_MISSING');
    const a = await sb.run(r.bob!, ['approve', id, '--push', '--key', bob.pub], {
      SSH_AUTH_SOCK: agent.sock,
    });
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /approved ticket .* as bob/);
  });

  it('verify passes, and real ssh-keygen -Y verify accepts every signature', async () => {
    assert.equal((await sb.run(r.alice!, ['fetch'])).code, 0);
    const v = await sb.run(r.alice!, ['verify', id, '--commit', 'HEAD']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /approved by bob/);
    const env = parseEnvelope(
      sb.git(r.alice!, ['cat-file', 'blob', `refs/breakglass/tickets/${id}:ticket.json`]),
    );
    assert.equal(env.signatures.length, 2);
    const allowed = [...policy.principals.values()]
      .flatMap((p) =>
        p.keys.map(
          (k) =>
            `${p.name} namespaces="${SSHSIG_NAMESPACE}" ${k.type} ${k.wire.toString('base64')}`,
        ),
      )
      .join('\n');
    writeFileSync(join(sb.dir, 'allowed_signers'), allowed + '\n');
    const message = pae(env.payloadType, env.payload);
    for (const [i, who] of ['alice', 'bob'].entries()) {
      const file = join(sb.dir, `sig${i}`);
      writeFileSync(file, armourSshSig(env.signatures[i]!.sig));
      const res = run(
        'ssh-keygen',
        [
          '-Y',
          'verify',
          '-f',
          join(sb.dir, 'allowed_signers'),
          '-I',
          who,
          '-n',
          SSHSIG_NAMESPACE,
          '-s',
          file,
        ],
        { input: message },
      );
      assert.equal(res.status, 0, res.stderr);
    }
  });

  it('keygen --ssh prints the ssh-keygen commands and writes no key', async () => {
    const k = await sb.run(sb.dir, ['keygen', '--ssh']);
    assert.equal(k.code, 0, k.stderr);
    assert.match(k.stdout, /ssh-keygen -t ed25519 /);
    assert.match(k.stdout, /git config --global gpg\.format ssh/);
    assert.ok(!existsSync(join(sb.env.XDG_CONFIG_HOME!, 'breakglass', 'ed25519.key')));
  });
});
