// Test harness for the bg-sign CLI: real git repositories in a temp folder (a bare "origin" and
// clones), an isolated HOME/XDG_CONFIG_HOME, and the BUILT bundle run as a child process.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSigningKeyFile, type SigningKey } from '../../src/ticket/keys.ts';
import { keys, policyYaml, type PolicyOptions } from '../helpers/fixtures.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BUNDLE = join(ROOT, 'dist', 'bg-sign.js');

/** Builds dist/bg-sign.js when it is missing or older than any source file (one builder at a time). */
export function ensureBundle(): void {
  const fresh = () =>
    existsSync(BUNDLE) && statSync(BUNDLE).mtimeMs >= newestSource(join(ROOT, 'src'));
  if (fresh()) return;
  const lock = join(ROOT, 'dist', '.build-lock');
  mkdirSync(dirname(lock), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Another test file is building: wait until it has finished (the lock is gone), then
      // re-check, so nobody runs a half-written bundle.
      // A lock older than two minutes was left by a killed run.
      while (existsSync(lock)) {
        if (Date.now() - statSync(lock).mtimeMs > 120_000) rmdirSync(lock);
        else spawnSync('sleep', ['0.2']);
      }
      if (fresh()) return;
    }
  }
  try {
    const r = spawnSync(process.execPath, ['scripts/build.mjs', 'cli'], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    if (r.status !== 0) throw new Error('building dist/bg-sign.js failed');
  } finally {
    rmdirSync(lock);
  }
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A temp world: HOME, XDG config, key files for the fixture cast, repositories. */
export class Sandbox {
  readonly env: NodeJS.ProcessEnv;

  private constructor(readonly dir: string) {
    this.env = {
      PATH: process.env.PATH,
      HOME: join(dir, 'home'),
      XDG_CONFIG_HOME: join(dir, 'xdg'),
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_TERMINAL_PROMPT: '0',
      LANG: 'C',
      TZ: 'UTC',
    };
  }

  /** Makes the folders and writes a key file per fixture principal (keys/<name>.key). */
  static async create(): Promise<Sandbox> {
    ensureBundle();
    const dir = await mkdtemp(join(tmpdir(), 'bg-cli-'));
    const sb = new Sandbox(dir);
    mkdirSync(sb.env.HOME!, { recursive: true });
    mkdirSync(join(dir, 'keys'), { recursive: true });
    for (const [name, key] of Object.entries(keys)) await sb.writeKey(name, key);
    return sb;
  }

  /** Path of a fixture principal's key file. */
  key(name: keyof typeof keys | string): string {
    return join(this.dir, 'keys', `${name}.key`);
  }

  async writeKey(name: string, key: SigningKey): Promise<void> {
    await writeFile(this.key(name), encodeSigningKeyFile(key), { mode: 0o600 });
    await chmod(this.key(name), 0o600);
  }

  /** Runs git (throws on failure) and returns trimmed stdout. */
  git(cwd: string, args: string[], input?: string): string {
    const r = spawnSync('git', args, { cwd, env: this.env, input, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout.trim();
  }

  /** Commits with a fixed test identity (the sandbox has no global git identity on purpose). */
  commit(cwd: string, message: string): string {
    this.git(cwd, [
      '-c',
      'user.name=Test',
      '-c',
      'user.email=test@example.com',
      'commit',
      '-q',
      '--allow-empty',
      '-m',
      message,
    ]);
    return this.git(cwd, ['rev-parse', 'HEAD']);
  }

  /**
   * A bare origin whose main holds `.breakglass/policy.yml` and two commits, and a clone per
   * name (`origin/HEAD` set, as `git clone` does).
   */
  async repos(names: string[], policy: PolicyOptions = {}): Promise<Record<string, string>> {
    const origin = join(this.dir, 'origin.git');
    this.git(this.dir, ['init', '-q', '--bare', '-b', 'main', origin]);
    const seed = join(this.dir, 'seed');
    this.git(this.dir, ['clone', '-q', origin, seed]);
    this.git(seed, ['checkout', '-q', '-b', 'main']);
    mkdirSync(join(seed, '.breakglass'));
    await writeFile(join(seed, '.breakglass', 'policy.yml'), policyYaml(policy));
    this.git(seed, ['add', '.']);
    this.commit(seed, 'policy');
    this.commit(seed, 'second commit');
    this.git(seed, ['push', '-q', 'origin', 'main']);
    const out: Record<string, string> = { origin };
    for (const name of names) {
      out[name] = join(this.dir, name);
      this.git(this.dir, ['clone', '-q', origin, out[name]]);
    }
    return out;
  }

  /** Runs the built bg-sign in `cwd`. */
  run(cwd: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(process.execPath, [BUNDLE, ...args], {
        cwd,
        env: { ...this.env, ...extraEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
    });
  }

  /** Runs bg-sign signing with a fixture principal's key. */
  as(
    name: string,
    cwd: string,
    args: string[],
    extraEnv: NodeJS.ProcessEnv = {},
  ): Promise<RunResult> {
    return this.run(cwd, args, { BG_SIGN_KEY: this.key(name), ...extraEnv });
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A standard ticket request for main, pinned to HEAD; `over` replaces options by name. */
export function requestArgs(extra: string[] = [], over: Record<string, string> = {}): string[] {
  const opts: Record<string, string> = {
    ref: 'main',
    action: 'push',
    commit: 'HEAD',
    ttl: '15m',
    reason: 'INC-4711 payment outage hotfix',
    ...over,
  };
  return [
    'request',
    ...Object.entries(opts).flatMap(([k, v]) => (v === '' ? [] : [`--${k}`, v])),
    ...extra,
  ];
}

/** The one-line error contract: `bg-sign: CODE: message`, no stack trace. */
export function errorCode(stderr: string): string | undefined {
  return /^bg-sign: ([A-Z_]+): /m.exec(stderr)?.[1];
}

/** True if text looks like a JavaScript stack trace. */
export function hasStack(text: string): boolean {
  return /^\s+at .+\(.*:\d+:\d+\)$/m.test(text) || /\n\s+at /.test(text);
}
