import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { BreakglassError } from '../errors.ts';
import { decodeBase64Strict } from '../ticket/base64.ts';
import {
  parseSshPublicKeyLine,
  publicKeyFromWire,
  WireReader,
  type PublicKey,
  type SshSigner,
} from '../ticket/keys.ts';
import { dearmourSshSig, parseSshSig } from '../ticket/sshsig.ts';

/**
 * OpenSSH keys at the CLI edge (docs/rules.md S6): the private key never enters this process;
 * `ssh-keygen -Y sign` signs, which also drives ssh-agent, passphrases and hardware keys.
 */

const PRIVATE_BEGIN = '-----BEGIN OPENSSH PRIVATE KEY-----';
const PRIVATE_END = '-----END OPENSSH PRIVATE KEY-----';

/** True for text that is an OpenSSH public key line we might accept. */
export function isSshPublicKeyLine(text: string): boolean {
  return /^(ssh-ed25519|sk-ssh-ed25519@openssh\.com|ecdsa-sha2-nistp256|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/.test(
    text.trim(),
  );
}

/** True for an OpenSSH private key file (`openssh-key-v1`). */
export function isOpenSshPrivateKey(text: string): boolean {
  return text.trimStart().startsWith(PRIVATE_BEGIN);
}

/**
 * The public key stored in clear in an `openssh-key-v1` private key file (PROTOCOL.key), so an
 * encrypted key needs no passphrase until it signs.
 */
export function publicKeyOfPrivateKeyFile(text: string, source: string): PublicKey {
  const fail = (message: string): never => {
    throw new BreakglassError('KEY_INVALID', `${source}: ${message}`);
  };
  const body = text.trim();
  if (!body.startsWith(PRIVATE_BEGIN) || !body.endsWith(PRIVATE_END)) {
    fail('not an OpenSSH private key');
  }
  const b64 = body.slice(PRIVATE_BEGIN.length, -PRIVATE_END.length).replace(/\s+/g, '');
  const bytes = decodeBase64Strict(b64, source, 'KEY_INVALID', 16 * 1024);
  const magic = Buffer.from('openssh-key-v1\0');
  if (!bytes.subarray(0, magic.length).equals(magic)) fail('not an openssh-key-v1 file');
  const r = new WireReader(bytes.subarray(magic.length), fail);
  r.string('cipher name', 64);
  r.string('kdf name', 64);
  r.string('kdf options', 1024);
  if (r.u32('key count') !== 1) fail('holds more than one key');
  return publicKeyFromWire(Buffer.from(r.string('public key', 1024)), fail);
}

/**
 * A signer that runs `ssh-keygen -Y sign -n <namespace> -f <file>` on the message. `file` is a
 * private key (ssh-keygen asks for its passphrase on the terminal, or uses the agent if it holds
 * the key) or a public key (the agent must hold its private half). The blob that comes back is
 * checked: it parses strictly and is made with the expected key in the asked namespace.
 */
export function sshKeygenSigner(
  file: string,
  publicKey: PublicKey,
  env: NodeJS.ProcessEnv,
): SshSigner {
  return {
    publicKey,
    signSsh(namespace: string, message: Buffer): Buffer {
      let out: Buffer;
      try {
        out = execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-n', namespace, '-f', file], {
          input: message,
          env,
          // stderr stays the user's: passphrase and "touch your key" prompts show there.
          stdio: ['pipe', 'pipe', 'inherit'],
          maxBuffer: 64 * 1024,
        });
      } catch (e) {
        const err = e as NodeJS.ErrnoException & { status?: number };
        throw new BreakglassError(
          'KEY_MISSING',
          err.code === 'ENOENT'
            ? 'ssh-keygen is not installed (OpenSSH 8.2 or later signs with SSH keys)'
            : `ssh-keygen -Y sign -f ${file} failed${err.status ? ` (exit ${err.status})` : ''}`,
          {
            hint: 'for a public key, its private half must be in your agent (ssh-add -l); for a private key file, check its passphrase',
          },
        );
      }
      const blob = dearmourSshSig(out.toString('latin1'));
      const sig = parseSshSig(blob);
      if (!sig.publicKey.wire.equals(publicKey.wire) || sig.namespace !== namespace) {
        throw new BreakglassError(
          'SSHSIG_KEY_MISMATCH',
          `ssh-keygen signed with ${sig.publicKey.keyid}, expected ${publicKey.keyid}`,
        );
      }
      return blob;
    },
  };
}

/** A signer for a literal public key line: its private half is in ssh-agent. */
export function agentSigner(line: string, env: NodeJS.ProcessEnv): SshSigner {
  const publicKey = parseSshPublicKeyLine(line, 'public key');
  return {
    publicKey,
    signSsh(namespace: string, message: Buffer): Buffer {
      // ssh-keygen wants the public key in a file; a private temporary directory holds it.
      const dir = mkdtempSync(join(tmpdir(), 'bg-sign-'));
      try {
        const file = join(dir, 'key.pub');
        writeFileSync(file, publicKey.text + '\n', { mode: 0o600 });
        return sshKeygenSigner(file, publicKey, env).signSsh(namespace, message);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * git's SSH signing key, when `gpg.format` is `ssh`: `user.signingkey` is a file (private or
 * public key; `~/` expanded) or a literal key (`key::ssh-ed25519 AAAA...`, or the bare line).
 */
export async function gitSshSigningKey(
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ literal: string } | { path: string } | undefined> {
  const get = async (name: string): Promise<string | undefined> => {
    try {
      const { stdout } = await promisify(execFile)('git', ['config', '--get', name], {
        cwd,
        env,
      });
      return stdout.trim() || undefined;
    } catch {
      return undefined; // unset, or not in a repository and no global value
    }
  };
  if ((await get('gpg.format')) !== 'ssh') return undefined;
  const value = await get('user.signingkey');
  if (!value) return undefined;
  const literal = value.startsWith('key::') ? value.slice('key::'.length) : value;
  if (isSshPublicKeyLine(literal)) return { literal };
  const home = env.HOME || homedir();
  return { path: value.startsWith('~/') ? join(home, value.slice(2)) : resolve(cwd, value) };
}
