// End-to-end harness: a real bare repository with the hooks installed, developer clones with
// isolated HOME/XDG_CONFIG_HOME, and real transports (file://, git daemon, sshd on loopback).
// Everything lives in one temp folder that `close()` removes; every process it starts is killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeEnvelope } from '../../src/git/store.ts';
import { installHooks } from '../../src/server/install.ts';
import type { Action } from '../../src/ticket/payload.ts';
import { encodeSigningKeyFile, type SigningKey } from '../../src/ticket/keys.ts';
import type { TicketPayloadJson } from '../../src/ticket/payload.ts';
import {
  addSignature,
  buildTicketPayload,
  createTicketEnvelope,
  formatTicketId,
  type TicketRequest,
} from '../../src/ticket/sign.ts';
import { keys, policyYaml } from './fixtures.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The CLI bundle (`npm run build`; `BG_E2E_BUNDLE` tests another build); the hooks run it. */
export const BUNDLE = process.env.BG_E2E_BUNDLE
  ? resolve(process.env.BG_E2E_BUNDLE)
  : join(REPO_ROOT, 'dist/bg-sign.js');
export const SSHD = '/usr/sbin/sshd';

export type Transport = 'file' | 'git' | 'ssh';
export type User = 'alice' | 'bob' | 'carol';
export const USERS: Record<User, SigningKey> = {
  alice: keys.alice,
  bob: keys.bob,
  carol: keys.carol,
};

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to completion (never throws on exit status; `check` makes it). */
export function run(
  cmd: string,
  args: readonly string[],
  o: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; check?: boolean } = {},
): Promise<RunResult> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', rej);
    child.stdin.on('error', () => {});
    child.stdin.end(o.input ?? '');
    child.on('close', (code) => {
      const r = { code: code ?? 1, stdout, stderr };
      if (o.check && r.code !== 0) {
        rej(new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${stdout}\n${stderr}`));
      } else res(r);
    });
  });
}

/** A minimal environment: no inherited git or breakglass settings leak into a test. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C',
    TZ: 'UTC',
    NO_COLOR: '1',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    ...extra,
  };
}

/** A TCP port on loopback that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => res(port));
    });
  });
}

export async function waitForPort(port: number, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null)
      throw new Error(`${what} exited (${child.exitCode}) before listening`);
    const ok = await new Promise<boolean>((res) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        res(true);
      });
      c.once('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what} did not listen on port ${port}`);
}

// Daemons still running when the test process exits (a crashed test, an interrupted run) are
// killed with it, so nothing keeps listening on a loopback port afterwards.
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

export function track(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

export function killGroup(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
      return res();
    }
    child.once('exit', () => res());
    try {
      process.kill(-child.pid, 'SIGTERM'); // the daemon and the children it forked
    } catch {
      child.kill('SIGTERM');
    }
    setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 2000).unref();
  });
}

/** Why the ssh transport can't be tested here, or null when it can. */
export function sshUnavailable(): string | null {
  if (!existsSync(SSHD)) return `${SSHD} is not installed (.ci/run installs openssh-server)`;
  if (process.getuid?.() !== 0) return 'sshd must run as root to serve git over ssh';
  return null;
}

export interface ServerOptions {
  /** Policy YAML (default: the fixtures' policy for acme/api). */
  readonly policy?: string;
  /** Pin the policy with `--policy` (default) or commit it as `.breakglass/policy.yml` on main. */
  readonly pin?: boolean;
  /** The bundle the hooks run (default dist/bg-sign.js; the shim tests pass a stand-in). */
  readonly bundle?: string;
  /** Branches created (at the seed commit) before the hooks go in, e.g. release/1. */
  readonly branches?: readonly string[];
  /** `git config breakglass.identity` on the server (auto|unix|none). */
  readonly identity?: string;
  /** Skip installing the hooks (install-hooks tests do it themselves). */
  readonly noHooks?: boolean;
}

/** A developer's clone with their own HOME, keys and identity. */
export class DevClone {
  constructor(
    readonly server: TestServer,
    readonly user: User,
    readonly dir: string,
    readonly home: string,
    readonly env: NodeJS.ProcessEnv,
    readonly url: string,
  ) {}

  /** Runs git in the clone. */
  git(args: readonly string[], o: { check?: boolean; input?: string } = {}): Promise<RunResult> {
    return run('git', args, { cwd: this.dir, env: this.env, ...o });
  }

  /** Runs the real CLI bundle in the clone. */
  bg(args: readonly string[], o: { check?: boolean; input?: string } = {}): Promise<RunResult> {
    return run(process.execPath, [BUNDLE, ...args], { cwd: this.dir, env: this.env, ...o });
  }

  /** Commits one file change on the current branch; returns the new commit id. */
  async commit(file: string, content: string, message = `change ${file}`): Promise<string> {
    const path = join(this.dir, file);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
    await this.git(['add', '--', file], { check: true });
    await this.git(['commit', '-q', '-m', message], { check: true });
    return this.head();
  }

  /** `n` distinct commits on top of `parent` (one git process each, no checkout). */
  async commitsOn(parent: string, n: number, label: string): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await this.git(
        ['commit-tree', `${parent}^{tree}`, '-p', parent, '-m', `${label} ${i}`],
        {
          check: true,
        },
      );
      out.push(r.stdout.trim());
    }
    return out;
  }

  /** The current HEAD commit. */
  async head(): Promise<string> {
    return (await this.git(['rev-parse', 'HEAD'], { check: true })).stdout.trim();
  }

  /** `git push` with optional `-o breakglass=<id>` options (never throws). */
  push(
    refspecs: readonly string[],
    o: { tickets?: readonly string[]; force?: boolean; env?: NodeJS.ProcessEnv } = {},
  ) {
    const opts = (o.tickets ?? []).flatMap((t) => ['-o', `breakglass=${t}`]);
    const args = ['push', ...(o.force ? ['--force'] : []), ...opts, this.url, ...refspecs];
    return run('git', args, { cwd: this.dir, env: { ...this.env, ...o.env } });
  }

  /**
   * Makes a signed ticket in the clone with the library (requester = this user), approved by
   * `approvers`, and stores it under refs/breakglass/tickets/<id>. Returns the id; push it with
   * `pushTickets`.
   */
  async makeTicket(t: TicketSpec = {}): Promise<string> {
    const now = Date.now();
    const id = formatTicketId(now, randomBytes(5).toString('hex'));
    const request: TicketRequest = {
      id,
      nonce: randomBytes(16).toString('base64'),
      now: Math.floor(now / 1000) * 1000 - 1000,
      repository: t.repository ?? 'acme/api',
      requester: this.user,
      holder: t.holder ?? this.user,
      refs: t.refs ?? ['refs/heads/main'],
      actions: t.actions ?? ['push'],
      ...(t.commits ? { commits: t.commits } : {}),
      reason: t.reason ?? 'INC-4711 payment outage hotfix',
      ttlMs: t.ttlMs ?? 15 * 60_000,
      maxUses: t.maxUses ?? 1,
    };
    let env = createTicketEnvelope(request, USERS[this.user]);
    for (const a of t.approvers ?? ['bob']) env = addSignature(env, USERS[a]);
    await writeEnvelope({ cwd: this.dir, env: this.env }, 'tickets', id, env, `ticket ${id}`, {
      name: this.user,
      email: `${this.user}@example.test`,
    });
    this.tickets.set(id, buildTicketPayload(request));
    return id;
  }

  /** The payloads of the tickets this clone made, by id. */
  readonly tickets = new Map<string, TicketPayloadJson>();

  /** Pushes ticket refs to the server in one push. */
  pushTickets(ids: readonly string[]): Promise<RunResult> {
    return this.git(['push', this.url, ...ids.map((id) => `refs/breakglass/tickets/${id}`)]);
  }
}

export interface TicketSpec {
  readonly holder?: string;
  readonly refs?: readonly string[];
  readonly actions?: readonly Action[];
  readonly commits?: readonly string[];
  readonly approvers?: readonly User[];
  readonly maxUses?: number;
  readonly ttlMs?: number;
  readonly reason?: string;
  readonly repository?: string;
}

/**
 * sshd_config for a test sshd on a loopback port: its own host key, authorized_keys and pid file
 * in `dir`, public keys only, and `REMOTE_USER` taken from the key's `environment=` option (the
 * recipe docs/server-setup.md gives). `extra` adds lines (who may log in).
 */
export function sshdConfig(dir: string, port: number, extra: readonly string[]): string {
  return [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host_ed25519')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    ...extra,
    'PermitUserEnvironment REMOTE_USER',
    'StrictModes no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'PrintMotd no',
    'LogLevel ERROR',
    '',
  ].join('\n');
}

/** A bare server repository in a temp folder, with its transports. */
export class TestServer {
  private daemon: ChildProcess | null = null;
  private daemonPort = 0;
  private sshd: ChildProcess | null = null;
  private sshPort = 0;
  private clones = 0;
  readonly sshKeys = new Map<User, string>();

  private constructor(
    readonly root: string,
    readonly gitDir: string,
    readonly policyFile: string,
    readonly seed: string,
  ) {}

  /** Creates the server repository (seeded, hooks installed unless `noHooks`). */
  static async create(o: ServerOptions = {}): Promise<TestServer> {
    const root = await mkdtemp(join(os.tmpdir(), 'bg-e2e-'));
    const gitDir = join(root, 'server.git');
    const policyFile = join(root, 'policy.yml');
    const env = cleanEnv({ HOME: join(root, 'home-admin') });
    await mkdir(env.HOME!, { recursive: true });
    const policy = o.policy ?? policyYaml();
    await writeFile(policyFile, policy);
    await run('git', ['init', '-q', '--bare', '--initial-branch=main', gitDir], {
      env,
      check: true,
    });

    // Seed main (and any branches) before the hooks exist: this is the repository as it was.
    const work = join(root, 'seed');
    await run('git', ['init', '-q', '--initial-branch=main', work], { env, check: true });
    const g = (args: string[]) => run('git', args, { cwd: work, env, check: true });
    await writeFile(join(work, 'README.md'), '# acme/api\n');
    if (o.pin === false) {
      await mkdir(join(work, '.breakglass'));
      await writeFile(join(work, '.breakglass/policy.yml'), policy);
    }
    await g(['add', '-A']);
    await g([
      '-c',
      'user.name=admin',
      '-c',
      'user.email=admin@example.test',
      'commit',
      '-qm',
      'initial',
    ]);
    const seed = (await g(['rev-parse', 'HEAD'])).stdout.trim();
    await g([
      'push',
      '-q',
      gitDir,
      'main',
      ...(o.branches ?? []).map((b) => `main:refs/heads/${b}`),
    ]);

    const server = new TestServer(root, gitDir, policyFile, seed);
    if (o.identity) await server.git(['config', 'breakglass.identity', o.identity]);
    if (!o.noHooks) {
      await installHooks({
        gitDir,
        bundle: o.bundle ?? BUNDLE,
        ...(o.pin === false ? {} : { policy: policyFile }),
        env,
      });
    }
    return server;
  }

  /** Runs git against the server repository. */
  git(args: readonly string[], o: { check?: boolean } = { check: true }): Promise<RunResult> {
    return run('git', ['--git-dir', this.gitDir, ...args], {
      env: cleanEnv({ HOME: join(this.root, 'home-admin') }),
      ...o,
    });
  }

  /** A ref's value on the server, or null. */
  async ref(name: string): Promise<string | null> {
    const r = await this.git(['rev-parse', '--verify', '--quiet', name], { check: false });
    return r.code === 0 ? r.stdout.trim() : null;
  }

  /** All refs on the server as `sha ref` lines. */
  async refs(): Promise<string> {
    return (await this.git(['for-each-ref', '--format=%(objectname) %(refname)'])).stdout;
  }

  /** The breakglass note on a commit, or null. */
  async note(commit: string): Promise<string | null> {
    const r = await this.git(['notes', '--ref=breakglass', 'show', commit], { check: false });
    return r.code === 0 ? r.stdout : null;
  }

  /**
   * Every file under `$GIT_DIR/breakglass/` (reservations, journal), by relative path, with what
   * `of` says of it; directories too (as `dir/`) when `o.dirs` gives them a value.
   */
  async walkState<T>(
    of: (file: string) => Promise<T>,
    o: { dirs?: T } = {},
  ): Promise<Record<string, T>> {
    const base = join(this.gitDir, 'breakglass');
    const out: Record<string, T> = {};
    const walk = async (d: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(d, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          if (o.dirs !== undefined) out[relative(base, p) + '/'] = o.dirs;
          await walk(p);
        } else out[relative(base, p)] = await of(p);
      }
    };
    await walk(base);
    return out;
  }

  /** Files under `$GIT_DIR/breakglass/` (reservations, journal) with their sizes. */
  stateFiles(): Promise<Record<string, number>> {
    return this.walkState(async (p) => (await stat(p)).size);
  }

  /** Everything a rejected push must leave alone: refs (incl. notes) and the hook's state files. */
  async snapshot(): Promise<{ refs: string; state: Record<string, number> }> {
    return { refs: await this.refs(), state: await this.stateFiles() };
  }

  /** The URL for a transport (starting the daemon or sshd on first use). */
  async url(t: Transport): Promise<string> {
    if (t === 'file') return `file://${this.gitDir}`;
    if (t === 'git') return `git://127.0.0.1:${await this.startDaemon()}/server.git`;
    return `ssh://${os.userInfo().username}@127.0.0.1:${await this.startSshd()}${this.gitDir}`;
  }

  /** `git daemon --enable=receive-pack` on a loopback port; hooks run as this user. */
  async startDaemon(): Promise<number> {
    if (this.daemon) return this.daemonPort;
    const port = await freePort();
    const child = track(
      spawn(
        'git',
        [
          'daemon',
          '--reuseaddr',
          '--listen=127.0.0.1',
          `--port=${port}`,
          `--base-path=${this.root}`,
          '--export-all',
          '--enable=receive-pack',
          '--informative-errors',
          this.root,
        ],
        { env: cleanEnv({ HOME: join(this.root, 'home-admin') }), detached: true, stdio: 'ignore' },
      ),
    );
    this.daemon = child;
    this.daemonPort = port;
    await waitForPort(port, child, 'git daemon');
    return port;
  }

  /**
   * sshd on a loopback port with its own host key and authorized_keys: each user's key sets
   * REMOTE_USER (`environment=`, allowed by `PermitUserEnvironment REMOTE_USER`), as the plain-ssh
   * recipe of docs/server-setup.md identifies people.
   */
  async startSshd(): Promise<number> {
    if (this.sshd) return this.sshPort;
    const why = sshUnavailable();
    if (why) throw new Error(why);
    const dir = join(this.root, 'sshd');
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o700);
    const keygen = (file: string, comment: string) =>
      run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {
        check: true,
      });
    await keygen(join(dir, 'host_ed25519'), 'host');
    const authorized: string[] = [];
    for (const user of Object.keys(USERS) as User[]) {
      const key = join(dir, `id_${user}`);
      await keygen(key, user);
      this.sshKeys.set(user, key);
      const pub = (await run('cat', [`${key}.pub`], { check: true })).stdout.trim();
      authorized.push(
        `environment="REMOTE_USER=${user}",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding ${pub}`,
      );
    }
    await writeFile(join(dir, 'authorized_keys'), authorized.join('\n') + '\n', { mode: 0o600 });
    const port = await freePort();
    const config = sshdConfig(dir, port, ['PermitRootLogin yes']);
    await writeFile(join(dir, 'sshd_config'), config);
    await mkdir('/run/sshd', { recursive: true }); // privilege separation directory (Debian)
    const child = track(
      spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], {
        detached: true,
        stdio: 'ignore',
        env: cleanEnv(),
      }),
    );
    this.sshd = child;
    this.sshPort = port;
    await waitForPort(port, child, 'sshd');
    return port;
  }

  /** Clones the server as a developer over a transport. */
  async clone(user: User, transport: Transport = 'file'): Promise<DevClone> {
    const n = ++this.clones;
    const home = join(this.root, `home-${user}-${n}`);
    const dir = join(this.root, `${user}-${n}`);
    const xdg = join(home, '.config');
    await mkdir(join(xdg, 'breakglass'), { recursive: true });
    const keyFile = join(xdg, 'breakglass', 'ed25519.key');
    await writeFile(keyFile, encodeSigningKeyFile(USERS[user], user), { mode: 0o600 });
    await writeFile(
      join(home, '.gitconfig'),
      `[user]\n\tname = ${user}\n\temail = ${user}@example.test\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n`,
    );
    const env = cleanEnv({
      HOME: home,
      XDG_CONFIG_HOME: xdg,
      BG_SIGN_KEY: keyFile,
      // Over file:// the hook inherits the client's environment: this names the pusher, as a
      // web server's REMOTE_USER would. git daemon and sshd set their own (see startSshd).
      REMOTE_USER: user,
    });
    if (transport === 'ssh') {
      await this.startSshd();
      env.GIT_SSH_COMMAND = [
        'ssh',
        '-F /dev/null',
        `-i ${this.sshKeys.get(user)}`,
        '-o IdentitiesOnly=yes',
        '-o BatchMode=yes',
        '-o StrictHostKeyChecking=no',
        '-o UserKnownHostsFile=/dev/null',
        '-o LogLevel=ERROR',
      ].join(' ');
    }
    const url = await this.url(transport);
    await run('git', ['clone', '-q', url, dir], { env, check: true });
    return new DevClone(this, user, dir, home, env, url);
  }

  /** Stops the daemon and sshd and removes the temp folder. */
  async close(): Promise<void> {
    if (this.daemon) await killGroup(this.daemon);
    if (this.sshd) await killGroup(this.sshd);
    this.daemon = this.sshd = null;
    await rm(this.root, { recursive: true, force: true });
  }
}

/** Runs `fn` with a fresh server and always cleans up. */
export async function withServer<T>(
  o: ServerOptions,
  fn: (s: TestServer) => Promise<T>,
): Promise<T> {
  const s = await TestServer.create(o);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}
