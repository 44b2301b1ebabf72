// SSH keys in tests: real ssh-keygen / ssh-agent, and software signers for the SSHSIG forms
// (the sk- FIDO form is made from a software Ed25519 key: no hardware in CI).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import {
  publicKeyFromWire,
  signingKeyFromSeed,
  SK_SSH_ED25519,
  sshString,
  SSH_ED25519,
  type PublicKey,
  type SigningKey,
  type SshSigner,
} from '../../src/ticket/keys.ts';
import {
  encodeSshSig,
  skSignedData,
  sshSigSignedData,
  SSHSIG_HASH,
} from '../../src/ticket/sshsig.ts';
import { createHash, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';

export function tmp(prefix = 'bg-ssh-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Runs a program; returns status, stdout, stderr (never throws). */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, {
    input: opts.input,
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    encoding: 'latin1',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A new ssh-ed25519 key made by ssh-keygen: private key path and its public key line. */
export function sshKeygenKey(
  dir: string,
  name: string,
  passphrase = '',
): { path: string; pub: string } {
  const path = join(dir, name);
  const r = run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', name, '-f', path]);
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  return { path, pub: readFileSync(path + '.pub', 'latin1').trim() };
}

/** `SHA256:...` as ssh-keygen -l prints it for a public key line. */
export function sshKeygenFingerprint(pubLine: string): string {
  const dir = tmp();
  const file = join(dir, 'k.pub');
  writeFileSync(file, pubLine + '\n');
  const r = run('ssh-keygen', ['-l', '-E', 'sha256', '-f', file]);
  if (r.status !== 0) throw new Error(`ssh-keygen -l failed: ${r.stderr}`);
  return r.stdout.split(' ')[1]!;
}

export interface SoftSshKey extends SshSigner {
  readonly line: string;
  /** Signs with chosen fields, for hostile cases. */
  blob(
    message: Buffer,
    o?: { namespace?: string; hash?: string; signHash?: 'sha256' | 'sha512'; flags?: number },
  ): Buffer;
}

/**
 * A software OpenSSH key from a seed: `ssh-ed25519`, or `sk-ssh-ed25519@openssh.com` signing the
 * FIDO form with chosen flags (default: user presence).
 */
export function softSshKey(seedText: string, sk = false, application = 'ssh:'): SoftSshKey {
  const key = signingKeyFromSeed(createHash('sha256').update(seedText).digest());
  const type = sk ? SK_SSH_ED25519 : SSH_ED25519;
  const wire = Buffer.concat([
    sshString(type),
    sshString(key.publicKey.raw),
    ...(sk ? [sshString(application)] : []),
  ]);
  const publicKey: PublicKey = publicKeyFromWire(wire, (m) => {
    throw new Error(m);
  });
  const blob: SoftSshKey['blob'] = (message, o = {}) => {
    const namespace = o.namespace ?? 'git-breakglass';
    const hash = o.hash ?? SSHSIG_HASH;
    const signHash = o.signHash ?? 'sha512';
    // The signed data, built by hand so the hash inside can differ from the one declared.
    const signed =
      signHash === 'sha512' && hash === SSHSIG_HASH
        ? sshSigSignedData(namespace, message)
        : Buffer.concat([
            Buffer.from('SSHSIG'),
            sshString(namespace),
            sshString(''),
            sshString(hash),
            sshString(createHash(signHash).update(message).digest()),
          ]);
    let sig: Buffer;
    if (sk) {
      const flags = o.flags ?? 0x01;
      const counter = 7;
      const raw = nacl.sign.detached(
        skSignedData(application, flags, counter, signed),
        key.secretKey,
      );
      const fc = Buffer.alloc(5);
      fc.writeUInt8(flags, 0);
      fc.writeUInt32BE(counter, 1);
      sig = Buffer.concat([sshString(type), sshString(raw), fc]);
    } else {
      sig = Buffer.concat([sshString(type), sshString(nacl.sign.detached(signed, key.secretKey))]);
    }
    return encodeSshSig({ publicKey: wire, namespace, hashAlgorithm: hash, signature: sig });
  };
  return {
    publicKey,
    line: `${type} ${wire.toString('base64')} ${seedText}`,
    blob,
    signSsh: (namespace, message) => blob(message, { namespace }),
  };
}

/** A real ssh-agent on a socket in `dir`; `stop` ends exactly that process. */
export async function startAgent(dir: string): Promise<{ sock: string; stop(): void }> {
  const sock = join(dir, 'agent.sock');
  const child = spawn('ssh-agent', ['-D', '-a', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  // -D prints the environment lines once the socket is listening.
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', () => resolve());
  });
  return { sock, stop: () => child.kill('SIGTERM') };
}

/** Encodes a 32-byte big-endian scalar as an SSH mpint (RFC 4251 §5). */
function mpint(v: Buffer): Buffer {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  const t = v.subarray(i);
  return sshString(t[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), t]) : t);
}

/**
 * A software ECDSA P-256 key (`ecdsa-sha2-nistp256`, or `sk-ecdsa-sha2-nistp256@openssh.com`
 * signing the FIDO form): a fresh random key per call.
 */
export function softEcdsaKey(comment: string, sk = false, application = 'ssh:'): SoftSshKey {
  const { privateKey, publicKey: pub } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = pub.export({ format: 'jwk' });
  const point = Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x!, 'base64url'),
    Buffer.from(jwk.y!, 'base64url'),
  ]);
  const type = sk ? 'sk-ecdsa-sha2-nistp256@openssh.com' : 'ecdsa-sha2-nistp256';
  const wire = Buffer.concat([
    sshString(type),
    sshString('nistp256'),
    sshString(point),
    ...(sk ? [sshString(application)] : []),
  ]);
  const publicKey = publicKeyFromWire(wire, (m) => {
    throw new Error(m);
  });
  const blob: SoftSshKey['blob'] = (message, o = {}) => {
    const namespace = o.namespace ?? 'git-breakglass';
    const signed = sshSigSignedData(namespace, message);
    const flags = o.flags ?? 0x01;
    const toSign = sk ? skSignedData(application, flags, 9, signed) : signed;
    const rs = cryptoSign('sha256', toSign, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    const inner = Buffer.concat([mpint(rs.subarray(0, 32)), mpint(rs.subarray(32))]);
    const fc = Buffer.alloc(5);
    fc.writeUInt8(flags, 0);
    fc.writeUInt32BE(9, 1);
    const sig = Buffer.concat([sshString(type), sshString(inner), ...(sk ? [fc] : [])]);
    return encodeSshSig({ publicKey: wire, namespace, hashAlgorithm: 'sha512', signature: sig });
  };
  return {
    publicKey,
    line: `${type} ${wire.toString('base64')} ${comment}`,
    blob,
    signSsh: (namespace, message) => blob(message, { namespace }),
  };
}

/**
 * Writes one of our Ed25519 signing keys as an unencrypted OpenSSH private key file
 * (PROTOCOL.key), so git and ssh-keygen sign with a key the fixture policy already lists.
 */
export function writeOpenSshPrivateKey(path: string, key: SigningKey, comment = 'test'): void {
  const pub = Buffer.concat([sshString(SSH_ED25519), sshString(key.publicKey.raw)]);
  const check = Buffer.alloc(4, 0x5a);
  let priv = Buffer.concat([
    check,
    check,
    sshString(SSH_ED25519),
    sshString(key.publicKey.raw),
    sshString(Buffer.from(key.secretKey)),
    sshString(comment),
  ]);
  const pad: number[] = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = Buffer.concat([priv, Buffer.from(pad)]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    Buffer.from([0, 0, 0, 1]),
    sshString(pub),
    sshString(priv),
  ]);
  const b64 = body
    .toString('base64')
    .match(/.{1,70}/g)!
    .join('\n');
  writeFileSync(
    path,
    `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`,
    { mode: 0o600 },
  );
}
