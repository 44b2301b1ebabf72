// Push certificates from a real `git push --signed` (gpg.format=ssh) over file://: parsed
// strictly, verified natively under the policy's keys in namespace "git", matched to the push
// (docs/rules.md PC1-PC3; the hook applies them under tickets.requireSignedPush, PC4).
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parsePolicy, type Policy } from '../../src/policy/policy.ts';
import {
  checkPushCertMatches,
  parsePushCert,
  verifyPushCert,
  type PushCert,
} from '../../src/server/push-cert.ts';
import { policyYaml, keys, throwsCode } from '../helpers/fixtures.ts';
import { run, sshKeygenKey, tmp } from '../helpers/ssh.ts';

describe('git push certificates (PC1-PC3)', () => {
  let dir: string;
  let alice: { path: string; pub: string };
  let mallory: { path: string; pub: string };
  let policy: Policy;
  let certBytes: Buffer;
  let cert: PushCert;
  let stdin: { oldSha: string; newSha: string; ref: string }[];
  let nonceStatus: string;

  /** Pushes HEAD to main signed with `key`; returns the certificate the hook saw. */
  function signedPush(key: string, n: number): { cert: Buffer; stdin: string; nonce: string } {
    const env = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: dir };
    const c = join(dir, 'client');
    const git = (args: string[]) => {
      const r = run('git', args, { cwd: c, env });
      assert.equal(r.status, 0, `git ${args.join(' ')}: ${r.stderr}`);
    };
    git([
      '-c',
      'user.name=A',
      '-c',
      'user.email=a@e',
      'commit',
      '-q',
      '--allow-empty',
      '-m',
      `c${n}`,
    ]);
    git([
      '-c',
      'gpg.format=ssh',
      '-c',
      `user.signingkey=${key}`,
      'push',
      '-q',
      '--signed',
      '-o',
      'breakglass=20261129T031200Z-7f3a9c',
      join(dir, 'srv.git'),
      'HEAD:refs/heads/main',
    ]);
    return {
      cert: readFileSync(join(dir, 'cert.bin')),
      stdin: readFileSync(join(dir, 'stdin.txt'), 'latin1'),
      nonce: readFileSync(join(dir, 'nonce.txt'), 'latin1').trim(),
    };
  }

  const lines = (s: string) =>
    s
      .trim()
      .split('\n')
      .map((l) => {
        const [oldSha, newSha, ref] = l.split(' ');
        return { oldSha: oldSha!, newSha: newSha!, ref: ref! };
      });

  before(() => {
    dir = tmp('bg-pushcert-');
    alice = sshKeygenKey(dir, 'alice');
    mallory = sshKeygenKey(dir, 'mallory');
    policy = parsePolicy(
      policyYaml().replace(
        `"${keys.alice.publicKey.text}", "${keys.alice2.publicKey.text}"`,
        `"${alice.pub}"`,
      ),
    );
    const srv = join(dir, 'srv.git');
    assert.equal(run('git', ['init', '-q', '--bare', srv]).status, 0);
    // git issues nonces (and offers push certificates) only with a seed.
    run('git', ['-C', srv, 'config', 'receive.certNonceSeed', 'test-seed']);
    run('git', ['-C', srv, 'config', 'receive.advertisePushOptions', 'true']);
    const hook = join(srv, 'hooks', 'pre-receive');
    writeFileSync(
      hook,
      `#!/bin/sh\ngit cat-file blob "$GIT_PUSH_CERT" > "${dir}/cert.bin"\n` +
        `echo "$GIT_PUSH_CERT_NONCE_STATUS" > "${dir}/nonce.txt"\ncat > "${dir}/stdin.txt"\n`,
    );
    chmodSync(hook, 0o755);
    assert.equal(run('git', ['init', '-q', join(dir, 'client')]).status, 0);
    const pushed = signedPush(alice.path, 1);
    certBytes = pushed.cert;
    cert = parsePushCert(certBytes);
    stdin = lines(pushed.stdin);
    nonceStatus = pushed.nonce;
  });

  it("parses git's certificate and verifies alice's signature natively", () => {
    assert.deepEqual(cert.updates, stdin);
    assert.deepEqual(cert.pushOptions, ['breakglass=20261129T031200Z-7f3a9c']);
    assert.equal(nonceStatus, 'OK');
    assert.deepEqual(verifyPushCert(cert, policy.keyOwners).principal, 'alice');
    checkPushCertMatches(cert, stdin, nonceStatus);
  });

  it('a certificate by a key outside the policy: PUSH_CERT_INVALID', () => {
    const other = parsePushCert(signedPush(mallory.path, 2).cert);
    throwsCode(() => verifyPushCert(other, policy.keyOwners), 'PUSH_CERT_INVALID', /does not list/);
  });

  it('a certificate whose update lines were changed: PUSH_CERT_INVALID', () => {
    const text = certBytes.toString('utf8');
    const u = cert.updates[0]!;
    const edited = text.replace(`${u.ref}\n`, 'refs/heads/release/1\n');
    assert.notEqual(edited, text);
    throwsCode(
      () => verifyPushCert(parsePushCert(Buffer.from(edited)), policy.keyOwners),
      'PUSH_CERT_INVALID',
      /does not verify/,
    );
    throwsCode(
      () => checkPushCertMatches(cert, [{ ...u, ref: 'refs/heads/release/1' }], 'OK'),
      'PUSH_CERT_INVALID',
      /differ/,
    );
  });

  it('a replayed certificate (nonce status not OK): PUSH_CERT_INVALID', () => {
    for (const status of ['BAD', 'STALE', 'MISSING', undefined]) {
      throwsCode(() => checkPushCertMatches(cert, stdin, status), 'PUSH_CERT_INVALID', /nonce/);
    }
  });

  it('a git-breakglass-namespace signature is not a push signature: PUSH_CERT_INVALID', () => {
    const body = cert.signed;
    const r = run('ssh-keygen', ['-q', '-Y', 'sign', '-n', 'git-breakglass', '-f', alice.path], {
      input: body,
    });
    assert.equal(r.status, 0, r.stderr);
    const forged = Buffer.concat([body, Buffer.from(r.stdout, 'latin1')]);
    throwsCode(
      () => verifyPushCert(parsePushCert(forged), policy.keyOwners),
      'PUSH_CERT_INVALID',
      /namespace/,
    );
  });

  it('malformed certificates: PUSH_CERT_INVALID or SSHSIG_MALFORMED', () => {
    const text = certBytes.toString('utf8');
    const sigAt = text.indexOf('-----BEGIN SSH SIGNATURE-----');
    const cases: [string, string][] = [
      [text.replace('certificate version 0.1', 'certificate version 0.2'), 'PUSH_CERT_INVALID'],
      [text.replace(/\n\n/, '\n'), 'PUSH_CERT_INVALID'],
      [text.slice(0, sigAt), 'PUSH_CERT_INVALID'],
      [text + 'trailing\n', 'SSHSIG_MALFORMED'],
      [text + text.slice(sigAt), 'PUSH_CERT_INVALID'],
      [text.replace(/\n\n.*\n/, '\n\nnot an update line\n'), 'PUSH_CERT_INVALID'],
    ];
    for (const [bad, code] of cases) {
      throwsCode(() => parsePushCert(Buffer.from(bad)), code as 'PUSH_CERT_INVALID');
    }
    throwsCode(() => parsePushCert(Buffer.alloc(70_000, 0x61)), 'INPUT_TOO_LARGE');
  });
});
