// Every server recipe of docs/server-setup.md §5, followed as written on the real server
// (issue 12 §2): the server bundle unpacked as /opt/git-breakglass would be, hooks installed by
// the repository's owner, a real Unix account per server. Each recipe carries one break-glass
// push end to end (ticket requested and approved with the CLI over the same transport, push
// accepted, note on the server) and refuses a direct push. Loopback only; a recipe whose server
// is not installed skips and says why.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ensureAccount,
  freePort,
  missing,
  Recipe,
  runAs,
  sshCommand,
  type Developer,
} from '../helpers/recipes.ts';
import { cleanEnv, run, type RunResult } from '../helpers/server.ts';

/** A server-side git command on a repository another account owns. */
function serverGit(gitDir: string, args: readonly string[]): Promise<RunResult> {
  return run('git', ['-c', 'safe.directory=*', '--git-dir', gitDir, ...args], { env: cleanEnv() });
}

/**
 * DESIGN §1 over the recipe's transport: a direct push to main is refused; Alice requests a
 * ticket with the CLI, Bob fetches and approves it, Alice's push with it is accepted with the
 * banner, and the server holds the note naming the ticket and Alice.
 */
async function breakGlass(alice: Developer, bob: Developer, url: string, gitDir: string) {
  await alice.clone(url);
  await bob.clone(url);
  await writeFile(join(alice.dir, 'fix.txt'), 'hotfix\n');
  await alice.git(['add', 'fix.txt'], { check: true });
  await alice.git(['commit', '-qm', 'Fix payment timeout'], { check: true });
  const head = (await alice.git(['rev-parse', 'HEAD'], { check: true })).stdout.trim();

  const direct = await alice.git(['push', 'origin', 'HEAD:main']);
  assert.notEqual(direct.code, 0, `a direct push to main must be refused:\n${direct.stderr}`);
  assert.match(direct.stderr, /TICKET_REQUIRED/);
  assert.match(direct.stderr, /pusher alice \(principal alice/, 'the server knows who pushed');

  const req = await alice.bg([
    'request',
    '--ref',
    'main',
    '--action',
    'push',
    '--commit',
    'HEAD',
    '--ttl',
    '15m',
    '--reason',
    'INC-4711 payment outage hotfix',
    '--push',
    '--json',
  ]);
  assert.equal(req.code, 0, req.stderr);
  const id = (JSON.parse(req.stdout) as { id: string }).id;

  const fetched = await bob.bg(['fetch']);
  assert.equal(fetched.code, 0, fetched.stderr);
  const approved = await bob.bg(['approve', id, '--push']);
  assert.equal(approved.code, 0, approved.stderr);

  const ok = await alice.git(['push', '-o', `breakglass=${id}`, 'origin', 'HEAD:main']);
  assert.equal(ok.code, 0, `the ticketed push must be accepted:\n${ok.stderr}`);
  assert.match(ok.stderr, /BREAK-GLASS PUSH ACCEPTED/);
  assert.match(ok.stderr, new RegExp(id));
  assert.match(ok.stderr, /this push is recorded/);
  assert.equal((await serverGit(gitDir, ['rev-parse', 'main'])).stdout.trim(), head);
  const note = await serverGit(gitDir, ['notes', '--ref=breakglass', 'show', head]);
  assert.equal(note.code, 0, `no note on ${head}: ${note.stderr}`);
  assert.match(note.stdout, new RegExp(`^Break-glass-Ticket: ${id}$`, 'm'));
  assert.match(note.stdout, /^Break-glass-Pusher: alice$/m);
  assert.match(note.stdout, /^Break-glass-Approvers: bob SHA256:/m);
  return { id, head };
}

/** htpasswd lines for alice and bob (apache2-utils' htpasswd, bcrypt). */
async function htpasswd(file: string): Promise<void> {
  await run('htpasswd', ['-cbB', file, 'alice', 'alice-secret'], { check: true });
  await run('htpasswd', ['-bB', file, 'bob', 'bob-secret'], { check: true });
  await chmod(file, 0o644);
}

const httpUrl = (port: number, user: 'alice' | 'bob', repo: string) =>
  `http://${user}:${user}-secret@127.0.0.1:${port}/git/${repo}`;

describe('recipe: OpenSSH, one git account whose login shell is git-shell', () => {
  const skip = missing({
    '/usr/sbin/sshd': 'openssh-server',
    '/usr/bin/git-shell': 'git',
  });
  let recipe: Recipe;
  let gitDir: string;
  let port: number;
  const keys = new Map<string, string>();
  before(async () => {
    if (skip) return;
    recipe = await Recipe.create('ssh');
    await ensureAccount('git', { shell: '/usr/bin/git-shell' });
    await mkdir(join(recipe.root, 'srv'), { mode: 0o755 });
    gitDir = await recipe.repository(join(recipe.root, 'srv/api.git'), 'git');

    // docs/server-setup.md §5 "Plain Git over ssh": environment= per key, allowed by
    // PermitUserEnvironment for REMOTE_USER only (git-shell runs no forced command).
    // sshd reads authorized_keys as the account logging in: git must be able to read it.
    const dir = join(recipe.root, 'sshd');
    await mkdir(dir, { mode: 0o755 });
    const lines: string[] = [];
    for (const user of ['alice', 'bob']) {
      const [file, pub] = await recipe.sshKey(user);
      keys.set(user, file);
      lines.push(
        `environment="REMOTE_USER=${user}",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding ${pub}`,
      );
    }
    await writeFile(join(dir, 'authorized_keys'), lines.join('\n') + '\n', { mode: 0o644 });
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_ed25519')], {
      check: true,
    });
    port = await freePort();
    await writeFile(
      join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host_ed25519')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        'AllowUsers git',
        'PermitUserEnvironment REMOTE_USER',
        'StrictModes no',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'PrintMotd no',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    await mkdir('/run/sshd', { recursive: true });
    await recipe.start('sshd', '/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], {
      port,
    });
  });
  after(async () => {
    await recipe?.close();
  });

  it(
    'identifies each key, refuses a direct push, carries a break-glass push end to end',
    { skip: skip ? `skipped: ${skip}` : false },
    async () => {
      const shell = await run('getent', ['passwd', 'git'], { check: true });
      assert.match(
        shell.stdout.trim(),
        /:\/usr\/bin\/git-shell$/,
        'the git account logs in to git-shell',
      );
      const url = `ssh://git@127.0.0.1:${port}${gitDir}`;
      const alice = await recipe.developer('alice', {
        GIT_SSH_COMMAND: sshCommand(keys.get('alice')!),
      });
      const bob = await recipe.developer('bob', { GIT_SSH_COMMAND: sshCommand(keys.get('bob')!) });
      await breakGlass(alice, bob, url, gitDir);
    },
  );
});

describe('recipe: Apache + git http-backend with basic auth', () => {
  const skip = missing({
    '/usr/sbin/apache2': 'apache2',
    '/usr/lib/apache2/modules/mod_cgi.so': 'apache2',
    '/usr/bin/htpasswd': 'apache2-utils',
  });
  let recipe: Recipe;
  let gitDir: string;
  let port: number;
  before(async () => {
    if (skip) return;
    recipe = await Recipe.create('apache');
    const srv = join(recipe.root, 'srv');
    await mkdir(srv, { mode: 0o755 });
    // Hooks run as www-data: the repository is www-data's (see the shared set-up below).
    gitDir = await recipe.repository(join(srv, 'api.git'), 'www-data');
    await runAs('www-data', 'git', ['--git-dir', gitDir, 'config', 'http.receivepack', 'true']);
    const dir = join(recipe.root, 'apache');
    await mkdir(dir, { mode: 0o755 });
    await htpasswd(join(dir, 'git.htpasswd'));
    port = await freePort();
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
        '',
      ].join('\n'),
    );
    await recipe.start(
      'apache2',
      '/usr/sbin/apache2',
      ['-f', join(dir, 'httpd.conf'), '-DFOREGROUND'],
      {
        port,
      },
    );
  });
  after(async () => {
    await recipe?.close();
  });

  it(
    'identifies the HTTP user, refuses a direct push, carries a break-glass push end to end',
    { skip: skip ? `skipped: ${skip}` : false },
    async () => {
      const alice = await recipe.developer('alice');
      const bob = await recipe.developer('bob');
      await breakGlass(alice, bob, httpUrl(port, 'alice', 'api.git'), gitDir);
      // The clone URLs carry each person's credentials, so bob's CLI pushes as bob.
      assert.match(bob.env.HOME!, /home-bob/);
    },
  );
});

describe('recipe: nginx + fcgiwrap + git http-backend', () => {
  const skip = missing({
    '/usr/sbin/nginx': 'nginx',
    '/usr/sbin/fcgiwrap': 'fcgiwrap',
    '/usr/bin/htpasswd': 'apache2-utils',
  });
  let recipe: Recipe;
  let gitDir: string;
  let port: number;
  before(async () => {
    if (skip) return;
    recipe = await Recipe.create('nginx');
    const srv = join(recipe.root, 'srv');
    await mkdir(srv, { mode: 0o755 });
    gitDir = await recipe.repository(join(srv, 'api.git'), 'www-data');
    await runAs('www-data', 'git', ['--git-dir', gitDir, 'config', 'http.receivepack', 'true']);
    const dir = join(recipe.root, 'nginx');
    await mkdir(dir, { mode: 0o755 });
    await run('chown', ['www-data:', dir], { check: true });
    await htpasswd(join(dir, 'git.htpasswd'));
    const socket = join(dir, 'fcgiwrap.sock');
    // fcgiwrap runs as www-data (Debian's fcgiwrap.service does the same).
    const fcgi = await recipe.start('fcgiwrap', 'runuser', [
      '-u',
      'www-data',
      '--',
      '/usr/sbin/fcgiwrap',
      '-s',
      `unix:${socket}`,
    ]);
    for (let i = 0; i < 200 && !existsSync(socket); i++) {
      if (fcgi.exitCode !== null) throw new Error('fcgiwrap exited before listening');
      await new Promise((r) => setTimeout(r, 25));
    }
    port = await freePort();
    await writeFile(
      join(dir, 'nginx.conf'),
      `user www-data;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events {}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  fastcgi_temp_path ${dir}/fastcgi;
  proxy_temp_path ${dir}/proxy;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    # The recipe, as docs/server-setup.md gives it:
    location ~ ^/git(/.*)$ {
      client_max_body_size 0;
      auth_basic "Git";
      auth_basic_user_file ${dir}/git.htpasswd;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
      fastcgi_param GIT_PROJECT_ROOT ${srv};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $1;
      fastcgi_param REMOTE_USER $remote_user;
      fastcgi_param PATH /usr/local/bin:/usr/bin:/bin;
      fastcgi_pass unix:${socket};
    }
  }
}
`,
    );
    await recipe.start(
      'nginx',
      '/usr/sbin/nginx',
      ['-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'],
      { port },
    );
  });
  after(async () => {
    await recipe?.close();
  });

  it(
    'identifies the HTTP user, refuses a direct push, carries a break-glass push end to end',
    { skip: skip ? `skipped: ${skip}` : false },
    async () => {
      const alice = await recipe.developer('alice');
      const bob = await recipe.developer('bob');
      await breakGlass(alice, bob, httpUrl(port, 'alice', 'api.git'), gitDir);
    },
  );
});

describe('a server whose HEAD names master (gitolite, older git) and a first push of main', () => {
  it('refuses with POLICY_MISSING, names the server HEAD as the fix, and accepts once it is set', async () => {
    const recipe = await Recipe.create('head');
    try {
      const gitDir = join(recipe.root, 'api.git');
      await run('git', ['init', '-q', '--bare', '--initial-branch=master', gitDir], {
        env: cleanEnv(),
        check: true,
      });
      const inst = await run(recipe.bgSign, ['install-hooks', gitDir], { env: cleanEnv() });
      assert.equal(inst.code, 0, inst.stderr);
      const alice = await recipe.developer('alice', { REMOTE_USER: 'alice' });
      await mkdir(join(alice.dir, '.breakglass'), { recursive: true });
      await alice.git(['init', '-q', '--initial-branch=main', alice.dir], { check: true });
      const { policyYaml } = await import('../helpers/fixtures.ts');
      await writeFile(join(alice.dir, '.breakglass/policy.yml'), policyYaml());
      await alice.git(['add', '-A'], { check: true });
      await alice.git(['commit', '-qm', 'policy'], { check: true });
      const r = await alice.git(['push', `file://${gitDir}`, 'main']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /POLICY_MISSING/);
      assert.match(
        r.stderr,
        /this push creates refs\/heads\/main, but the server's default branch \(HEAD\) is refs\/heads\/master/,
      );
      assert.match(r.stderr, /symbolic-ref HEAD refs\/heads\/main/);
      assert.match(r.stderr, /init\.defaultBranch main/);
      await run('git', ['--git-dir', gitDir, 'symbolic-ref', 'HEAD', 'refs/heads/main'], {
        env: cleanEnv(),
        check: true,
      });
      const ok = await alice.git(['push', `file://${gitDir}`, 'main']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stderr, /adopts the policy/);
      assert.ok(await readFile(join(gitDir, 'HEAD'), 'utf8'));
    } finally {
      await recipe.close();
    }
  });
});
