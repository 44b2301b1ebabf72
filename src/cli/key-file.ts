import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { BreakglassError } from '../errors.ts';
import {
  decodeSigningKeyFile,
  encodeSigningKeyFile,
  parseSshPublicKeyLine,
  type DocumentKey,
  type SigningKey,
} from '../ticket/keys.ts';
import {
  agentSigner,
  gitSshSigningKey,
  isOpenSshPrivateKey,
  isSshPublicKeyLine,
  publicKeyOfPrivateKeyFile,
  sshKeygenSigner,
} from './ssh-key.ts';

/** `$XDG_CONFIG_HOME/breakglass/ed25519.key` (XDG default `~/.config`). */
export function defaultKeyPath(env: NodeJS.ProcessEnv): string {
  const base =
    env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/')
      ? env.XDG_CONFIG_HOME
      : join(env.HOME || homedir(), '.config');
  return join(base, 'breakglass', 'ed25519.key');
}

/** Where the signing key is: `--key FILE`, else `BG_SIGN_KEY`, else the default file. */
export function resolveKeyPath(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
  cwd: string,
): { path: string; from: string } {
  if (flag) return { path: resolve(cwd, flag), from: '--key' };
  if (env.BG_SIGN_KEY) return { path: resolve(cwd, env.BG_SIGN_KEY), from: 'BG_SIGN_KEY' };
  return { path: defaultKeyPath(env), from: 'default key file' };
}

/**
 * Loads the signing key (S6): `--key` (a file, or a literal OpenSSH public key line for
 * ssh-agent), else `BG_SIGN_KEY`, else git's `user.signingkey` when `gpg.format` is `ssh`, else
 * the default file. A file is our key file, an OpenSSH private key or an OpenSSH public key;
 * a missing file says how to make one.
 */
export async function loadSigningKey(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<{ key: DocumentKey; path: string; warning?: string }> {
  if (flag && isSshPublicKeyLine(flag)) {
    return { key: agentSigner(flag, env), path: 'ssh-agent' };
  }
  if (!flag && !env.BG_SIGN_KEY) {
    const git = await gitSshSigningKey(cwd, env);
    if (git && 'literal' in git) {
      return { key: agentSigner(git.literal, env), path: 'ssh-agent (git user.signingkey)' };
    }
    if (git) return loadKeyFile(git.path, 'git config user.signingkey', env);
  }
  const { path, from } = resolveKeyPath(flag, env, cwd);
  return loadKeyFile(path, from, env);
}

async function loadKeyFile(
  path: string,
  from: string,
  env: NodeJS.ProcessEnv,
): Promise<{ key: DocumentKey; path: string; warning?: string }> {
  let text: string;
  let mode: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new BreakglassError('KEY_INVALID', `${path} is not a file`);
    if (st.size > 4096)
      throw new BreakglassError('KEY_INVALID', `${path}: too large for a key file`);
    mode = st.mode;
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new BreakglassError('KEY_MISSING', `no signing key at ${path} (${from})`, {
        hint: 'create one with "bg-sign keygen", or pass --key FILE / set BG_SIGN_KEY',
      });
    }
    if (e instanceof BreakglassError) throw e;
    throw new BreakglassError(
      'KEY_MISSING',
      `cannot read signing key ${path}: ${(e as Error).message}`,
    );
  }
  if (isSshPublicKeyLine(text)) {
    // The agent holds the private half; ssh-keygen finds it there by this public key.
    return { key: sshKeygenSigner(path, parseSshPublicKeyLine(text, path), env), path };
  }
  const key: DocumentKey = isOpenSshPrivateKey(text)
    ? sshKeygenSigner(path, publicKeyOfPrivateKeyFile(text, path), env)
    : decodeSigningKeyFile(text, path);
  // Like ssh: a private key others can read is worth a warning (not a refusal: CI secrets
  // are often written with a loose umask).
  const warning =
    (mode & 0o077) !== 0
      ? `${path} is readable by others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${path}`
      : undefined;
  return { key, path, ...(warning ? { warning } : {}) };
}

/**
 * Writes a private key file with mode 0600 (its directory 0700 when we create it). Without
 * `force` an existing file is never touched (KEY_EXISTS); with it, the new file replaces the old
 * one atomically.
 */
export async function writeKeyFile(path: string, key: SigningKey, force: boolean): Promise<void> {
  const dir = dirname(path);
  const made = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (made !== undefined) await chmod(dir, 0o700);
  const text = encodeSigningKeyFile(key);
  if (!force) {
    let handle;
    try {
      handle = await open(path, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new BreakglassError('KEY_EXISTS', `${path} already exists; not overwriting it`, {
          hint: 'use --out FILE for another key, or --force to replace this one (the old key is lost)',
        });
      }
      throw e;
    }
    try {
      await handle.writeFile(text);
      await handle.chmod(0o600);
    } finally {
      await handle.close();
    }
    return;
  }
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.chmod(0o600);
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
