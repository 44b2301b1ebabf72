// The server recipes of docs/server-setup.md, run as written on the real servers (OpenSSH with
// git-shell, Apache + git http-backend, nginx + fcgiwrap, gitolite3), on loopback, as real Unix
// accounts. Everything a recipe starts is stopped by `close()`; its files live in one temp folder.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { encodeSigningKeyFile } from '../../src/ticket/keys.ts';
import { policyYaml } from './fixtures.ts';
import {
  cleanEnv,
  freePort,
  killGroup,
  REPO_ROOT,
  run,
  track,
  USERS,
  waitForPort,
  type RunResult,
  type User,
} from './server.ts';

/** Why recipes that need real accounts can't run here, or null. */
export function rootUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (real accounts, servers that switch users)';
  return null;
}

/** Why a program a recipe needs is missing, or null. */
export function missing(paths: Record<string, string>): string | null {
  const why = rootUnavailable();
  if (why) return why;
  for (const [path, pkg] of Object.entries(paths)) {
    if (!existsSync(path)) return `${path} is not installed (.ci/run installs ${pkg})`;
  }
  return null;
}

/** A Unix account, created if absent (CI runs as root on a throwaway machine). */
export async function ensureAccount(
  name: string,
  o: { shell: string; home?: string; groups?: string[] },
): Promise<void> {
  const exists = (await run('id', ['-u', name])).code === 0;
  if (!exists) {
    // A group of that name left behind (by a removed account) becomes the account's group.
    const group = (await run('getent', ['group', name])).code === 0;
    await run(
      'useradd',
      [
        '--system',
        ...(group ? ['--gid', name] : ['--user-group']),
        '--shell',
        o.shell,
        '--home-dir',
        o.home ?? '/nonexistent',
        ...(o.home ? ['--create-home'] : ['--no-create-home']),
        name,
      ],
      { check: true },
    );
  } else {
    await run('usermod', ['--shell', o.shell, ...(o.home ? ['--home', o.home] : []), name], {
      check: true,
    });
  }
  // "!" (locked) makes sshd without PAM refuse even key logins; "*" only means "no password".
  await run('usermod', ['-p', '*', name], { check: true });
  for (const g of o.groups ?? []) await run('usermod', ['-aG', g, name], { check: true });
}

/** Runs a command as another account (runuser keeps our environment clean of theirs). */
export function runAs(user: string, cmd: string, args: readonly string[], env = cleanEnv()) {
  return run('runuser', ['-u', user, '--', cmd, ...args], { env, cwd: '/' });
}

/** A recipe's world: a temp root every account can traverse, the server bundle in it. */
export class Recipe {
  private readonly children: ChildProcess[] = [];
  private clones = 0;

  private constructor(
    readonly root: string,
    /** The unpacked server bundle (`npm run dist:server`), as /opt/git-breakglass would be. */
    readonly opt: string,
  ) {}

  static async create(name: string): Promise<Recipe> {
    const root = await mkdtemp(join(os.tmpdir(), `bg-recipe-${name}-`));
    await chmod(root, 0o755);
    const r = await run(
      process.execPath,
      [
        join(REPO_ROOT, 'scripts/dist-server.mjs'),
        '--out',
        root,
        '--prefix',
        join(root, 'git-breakglass'),
        '--node',
        process.execPath,
      ],
      { cwd: REPO_ROOT, env: cleanEnv() },
    );
    if (r.code !== 0) throw new Error(`dist:server failed: ${r.stderr}`);
    return new Recipe(root, join(root, 'git-breakglass'));
  }

  /** `/opt/git-breakglass/bin/bg-sign`. */
  get bgSign(): string {
    return join(this.opt, 'bin/bg-sign');
  }

  /**
   * A bare repository owned by `owner`, seeded with main carrying `.breakglass/policy.yml` (the
   * default recipe: the policy lives in the repository), hooks installed by its owner.
   */
  async repository(
    path: string,
    owner: string,
    o: { install?: boolean; shared?: string } = {},
  ): Promise<string> {
    const env = cleanEnv({ HOME: join(this.root, 'home-admin') });
    await mkdir(env.HOME!, { recursive: true });
    // `shared`: a group that writes it too (git init --shared=group, then chgrp).
    await run(
      'git',
      [
        'init',
        '-q',
        '--bare',
        '--initial-branch=main',
        ...(o.shared ? ['--shared=group'] : []),
        path,
      ],
      { env, check: true },
    );
    const seed = join(this.root, `seed-${this.clones++}`);
    await run('git', ['init', '-q', '--initial-branch=main', seed], { env, check: true });
    await mkdir(join(seed, '.breakglass'));
    await writeFile(join(seed, '.breakglass/policy.yml'), policyYaml());
    await writeFile(join(seed, 'README.md'), '# acme/api\n');
    const g = (args: string[]) => run('git', args, { cwd: seed, env, check: true });
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
    await g(['push', '-q', path, 'main']);
    await run('chown', ['-R', `${owner}:${o.shared ?? ''}`, path], { check: true });
    if (o.install !== false) {
      // As docs/server-setup.md §3 says: the repository's owner runs install-hooks.
      const r = await runAs(owner, this.bgSign, ['install-hooks', path]);
      if (r.code !== 0) throw new Error(`install-hooks as ${owner} failed: ${r.stderr}${r.stdout}`);
    }
    return path;
  }

  /** Starts a server process in its own process group; `close()` stops it. */
  async start(
    what: string,
    cmd: string,
    args: readonly string[],
    o: { port?: number; env?: NodeJS.ProcessEnv } = {},
  ): Promise<ChildProcess> {
    const child = track(
      spawn(cmd, args, {
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe'],
        env: o.env ?? cleanEnv(),
      }),
    );
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d.slice(0, 4000)));
    this.children.push(child);
    if (o.port) {
      try {
        await waitForPort(o.port, child, what);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${stderr}`, { cause: e });
      }
    }
    return child;
  }

  /** A developer: HOME with their signing key and git identity; `extra` env for the transport. */
  async developer(user: User, extra: NodeJS.ProcessEnv = {}): Promise<Developer> {
    const home = join(this.root, `home-${user}-${++this.clones}`);
    const xdg = join(home, '.config');
    await mkdir(join(xdg, 'breakglass'), { recursive: true });
    const keyFile = join(xdg, 'breakglass', 'ed25519.key');
    await writeFile(keyFile, encodeSigningKeyFile(USERS[user], user), { mode: 0o600 });
    await writeFile(
      join(home, '.gitconfig'),
      `[user]\n\tname = ${user}\n\temail = ${user}@example.test\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n`,
    );
    const env = cleanEnv({ HOME: home, XDG_CONFIG_HOME: xdg, BG_SIGN_KEY: keyFile, ...extra });
    return new Developer(this, user, join(home, 'clone'), env);
  }

  /** An ed25519 key pair for ssh, returned as [private key file, public key line]. */
  async sshKey(name: string): Promise<[string, string]> {
    const dir = join(this.root, 'ssh-keys');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, name);
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file], {
      check: true,
    });
    const pub = (await run('cat', [`${file}.pub`], { check: true })).stdout.trim();
    return [file, pub];
  }

  /** Stops every server it started and removes the temp folder. */
  async close(): Promise<void> {
    for (const c of this.children.reverse()) await killGroup(c);
    // BG_RECIPE_KEEP=1 keeps the folder (server logs, repositories) to look into a failure.
    if (process.env.BG_RECIPE_KEEP) console.error(`kept ${this.root}`);
    else await rm(this.root, { recursive: true, force: true });
  }
}

/** The client side of a recipe: git and the installed `bg-sign` with a person's HOME and key. */
export class Developer {
  constructor(
    readonly recipe: Recipe,
    readonly user: User,
    readonly dir: string,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  git(args: readonly string[], o: { check?: boolean } = {}): Promise<RunResult> {
    return run('git', args, { cwd: existsSync(this.dir) ? this.dir : '/', env: this.env, ...o });
  }

  bg(args: readonly string[]): Promise<RunResult> {
    return run(this.recipe.bgSign, args, { cwd: this.dir, env: this.env });
  }

  clone(url: string): Promise<RunResult> {
    return run('git', ['clone', '-q', url, this.dir], { env: this.env, check: true });
  }
}

/** ssh for git: this key only, no agent, no host key prompts. */
export function sshCommand(keyFile: string): string {
  return [
    'ssh',
    '-F /dev/null',
    `-i ${keyFile}`,
    '-o IdentitiesOnly=yes',
    '-o BatchMode=yes',
    '-o StrictHostKeyChecking=no',
    '-o UserKnownHostsFile=/dev/null',
    '-o LogLevel=ERROR',
  ].join(' ');
}

/** htpasswd lines for alice and bob (apache2-utils' htpasswd, bcrypt). */
export async function htpasswd(file: string): Promise<void> {
  await run('htpasswd', ['-cbB', file, 'alice', 'alice-secret'], { check: true });
  await run('htpasswd', ['-bB', file, 'bob', 'bob-secret'], { check: true });
  await chmod(file, 0o644);
}

/** Each person's clone URL for api.git, with their basic-auth credentials. */
export const httpUrls = (port: number, repo = 'api.git') => ({
  alice: `http://alice:alice-secret@127.0.0.1:${port}/git/${repo}`,
  bob: `http://bob:bob-secret@127.0.0.1:${port}/git/${repo}`,
});

/**
 * Apache with the http-backend recipe (docs/server-setup.md §5) serving `srv` under /git/, basic
 * auth for alice and bob. `extra` lines go into the server config (e.g. safe.directory).
 */
export async function startApache(
  recipe: Recipe,
  srv: string,
  extra: string[] = [],
): Promise<number> {
  const dir = join(recipe.root, 'apache');
  await mkdir(dir, { mode: 0o755 });
  await htpasswd(join(dir, 'git.htpasswd'));
  const port = await freePort();
  const mods = '/usr/lib/apache2/modules';
  // The modules Debian's default site enables, plus `a2enmod cgi` (prefork: mod_cgi).
  const modules = [
    'mpm_prefork',
    'authz_core',
    'authn_core',
    'authn_file',
    'auth_basic',
    'authz_user',
    'alias',
    'env',
    'cgi',
  ].map((m) => `LoadModule ${m}_module ${mods}/mod_${m}.so`);
  await writeFile(
    join(dir, 'httpd.conf'),
    [
      ...modules,
      'ServerName 127.0.0.1',
      `Listen 127.0.0.1:${port}`,
      `PidFile ${dir}/httpd.pid`,
      `ErrorLog ${dir}/error.log`,
      `DefaultRuntimeDir ${dir}`,
      `Mutex file:${dir} default`,
      'User www-data',
      'Group www-data',
      // The recipe, as docs/server-setup.md gives it:
      `SetEnv GIT_PROJECT_ROOT ${srv}`,
      'SetEnv GIT_HTTP_EXPORT_ALL',
      'ScriptAlias /git/ /usr/lib/git-core/git-http-backend/',
      '<Location /git/>',
      '  AuthType Basic',
      '  AuthName "Git"',
      `  AuthUserFile ${dir}/git.htpasswd`,
      '  Require valid-user',
      '</Location>',
      ...extra,
      '',
    ].join('\n'),
  );
  await recipe.start(
    'apache2',
    '/usr/sbin/apache2',
    ['-f', join(dir, 'httpd.conf'), '-DFOREGROUND'],
    { port },
  );
  return port;
}

/** A free loopback port. */
export { freePort };
