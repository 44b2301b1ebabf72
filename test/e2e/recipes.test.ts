// Every server recipe of docs/server-setup.md §5, followed as written on the real server
// (issue 12 §2): the server bundle unpacked as /opt/git-breakglass would be, hooks installed by
// the repository's owner, a real Unix account per server. Each recipe carries one break-glass
// push end to end (ticket requested and approved with the CLI over the same transport, push
// accepted, note on the server) and refuses a direct push. Loopback only; a recipe whose server
// is not installed skips and says why.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ensureAccount,
  freePort,
  htpasswd,
  httpUrls,
  missing,
  Recipe,
  runAs,
  sshCommand,
  startApache,
  type Developer,
} from '../helpers/recipes.ts';
import { cleanEnv, run, sshdConfig, type RunResult } from '../helpers/server.ts';

/** A server-side git command on a repository another account owns. */
function serverGit(gitDir: string, args: readonly string[]): Promise<RunResult> {
  return run('git', ['-c', 'safe.directory=*', '--git-dir', gitDir, ...args], { env: cleanEnv() });
}

/**
 * DESIGN §1 over the recipe's transport: a direct push to main is refused; Alice requests a
 * ticket with the CLI, Bob fetches and approves it, Alice's push with it is accepted with the
 * banner, and the server holds the note naming the ticket and Alice.
 */
async function breakGlass(
  alice: Developer,
  bob: Developer,
  url: string | { alice: string; bob: string },
  gitDir: string,
) {
  // Over http each person's URL carries their own credentials; over ssh their key tells.
  await alice.clone(typeof url === 'string' ? url : url.alice);
  await bob.clone(typeof url === 'string' ? url : url.bob);
  await writeFile(join(alice.dir, 'fix.txt'), `hotfix from ${alice.dir}\n`);
  await alice.git(['add', 'fix.txt'], { check: true });
  await alice.git(['commit', '-qm', 'Fix payment timeout'], { check: true });
  const head = (await alice.git(['rev-parse', 'HEAD'], { check: true })).stdout.trim();

  const direct = await alice.git(['push', 'origin', 'HEAD:main']);
  assert.notEqual(direct.code, 0, `a direct push to main must be refused:\n${direct.stderr}`);
  // TICKET_REQUIRED, or (on a later round) why the pusher's earlier tickets don't cover it.
  assert.match(direct.stderr, /refs\/heads\/main: fast-forward \S+ needs a ticket for: push/);
  assert.match(direct.stderr, /pre-receive hook declined/);
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
  // The server tells the two apart: Bob's own direct push is refused as Bob's.
  await writeFile(join(bob.dir, 'bob.txt'), `bob was here ${bob.dir}\n`);
  await bob.git(['add', 'bob.txt'], { check: true });
  await bob.git(['commit', '-qm', 'Bob tries main'], { check: true });
  const bobs = await bob.git(['push', 'origin', 'HEAD:main']);
  assert.notEqual(bobs.code, 0, bobs.stderr);
  assert.match(bobs.stderr, /pusher bob \(principal bob/);

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

/**
 * sshd for the git-shell recipe (docs/server-setup.md §5 "Plain Git over ssh"): the `git`
 * account, each person's key with environment="REMOTE_USER=<login>", allowed by
 * `PermitUserEnvironment REMOTE_USER` (git-shell runs no forced command). Fills `keys`.
 */
async function startGitShellSshd(recipe: Recipe, keys: Map<string, string>): Promise<number> {
  await ensureAccount('git', { shell: '/usr/bin/git-shell' });
  // sshd reads authorized_keys as the account logging in: git must be able to read it.
  const dir = join(recipe.root, 'sshd');
  await mkdir(dir, { mode: 0o755 });
  const lines: string[] = [];
  for (const user of ['alice', 'bob']) {
    const [file, pub] = await recipe.sshKey(`ssh-${user}`);
    keys.set(user, file);
    lines.push(
      `environment="REMOTE_USER=${user}",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding ${pub}`,
    );
  }
  await writeFile(join(dir, 'authorized_keys'), lines.join('\n') + '\n', { mode: 0o644 });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_ed25519')], {
    check: true,
  });
  const port = await freePort();
  await writeFile(join(dir, 'sshd_config'), sshdConfig(dir, port, ['AllowUsers git']));
  await mkdir('/run/sshd', { recursive: true });
  await recipe.start('sshd', '/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], {
    port,
  });
  return port;
}

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

    port = await startGitShellSshd(recipe, keys);
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
  let gitOwned: string;
  let port: number;
  before(async () => {
    if (skip) return;
    recipe = await Recipe.create('apache');
    const srv = join(recipe.root, 'srv');
    await mkdir(srv, { mode: 0o755 });
    // Hooks run as www-data: the simplest repository is www-data's.
    gitDir = await recipe.repository(join(srv, 'api.git'), 'www-data');
    await runAs('www-data', 'git', ['--git-dir', gitDir, 'config', 'http.receivepack', 'true']);
    // Another account's repository (git's), writable by www-data through the group: git
    // refuses it as "dubious" (HTTP 500) unless www-data trusts it (safe.directory).
    await ensureAccount('git', { shell: '/usr/bin/git-shell' });
    await run('usermod', ['-aG', 'git', 'www-data'], { check: true });
    gitOwned = await recipe.repository(join(srv, 'owned-by-git.git'), 'git', { shared: 'git' });
    await runAs('git', 'git', ['--git-dir', gitOwned, 'config', 'http.receivepack', 'true']);
    const wwwConfig = join(recipe.root, 'www-data.gitconfig');
    // git 2.39 (Debian 12) checks http-backend's repository as "." (its working directory),
    // so only "*" matches there; the web server's account serves GIT_PROJECT_ROOT only.
    await writeFile(wwwConfig, '[safe]\n\tdirectory = *\n', { mode: 0o644 });
    port = await startApache(recipe, srv, [`SetEnv GIT_CONFIG_GLOBAL ${wwwConfig}`]);
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
      await breakGlass(alice, bob, httpUrls(port), gitDir);
    },
  );

  it(
    "serves another account's repository once www-data trusts it (safe.directory)",
    { skip: skip ? `skipped: ${skip}` : false },
    async () => {
      const alice = await recipe.developer('alice');
      const bob = await recipe.developer('bob');
      await breakGlass(alice, bob, httpUrls(port, 'owned-by-git.git'), gitOwned);
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
      await breakGlass(alice, bob, httpUrls(port), gitDir);
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

describe('recipe: gitolite3 with repo-specific hooks', () => {
  const skip = missing({
    '/usr/sbin/sshd': 'openssh-server',
    '/usr/bin/gitolite': 'gitolite3',
  });
  let recipe: Recipe;
  let home: string;
  let port: number;
  const keys = new Map<string, string>();
  const asGitolite = (args: string[]) =>
    runAs('gitolite3', '/usr/bin/gitolite', args, cleanEnv({ HOME: home }));
  before(async () => {
    if (skip) return;
    recipe = await Recipe.create('gitolite');
    home = join(recipe.root, 'gitolite-home');
    await mkdir(home, { mode: 0o755 });
    // gitolite's account runs gitolite-shell through forced commands: it needs a real shell.
    await ensureAccount('gitolite3', { shell: '/bin/sh', home });
    await run('chown', ['gitolite3:', home], { check: true });
    for (const user of ['admin', 'alice', 'bob']) {
      const [file, pub] = await recipe.sshKey(user);
      keys.set(user, file);
      await writeFile(join(recipe.root, `${user}.pub`), pub + '\n', { mode: 0o644 });
    }
    const setup = await asGitolite(['setup', '-pk', join(recipe.root, 'admin.pub')]);
    assert.equal(setup.code, 0, setup.stderr);

    // docs/server-setup.md "gitolite": LOCAL_CODE, repo-specific-hooks, GIT_CONFIG_KEYS.
    const rcFile = join(home, '.gitolite.rc');
    let rc = await readFile(rcFile, 'utf8');
    rc = rc
      .replace(/^(\s*)# (LOCAL_CODE\s+=>\s+"\$ENV\{HOME\}\/local",)/m, '$1$2')
      .replace(/^(\s*)# ('repo-specific-hooks',)/m, '$1$2')
      .replace(/GIT_CONFIG_KEYS\s+=>\s+'',/, "GIT_CONFIG_KEYS => 'breakglass\\..* receive\\..*',");
    assert.match(rc, /^\s*LOCAL_CODE\s+=>/m);
    assert.match(rc, /^\s*'repo-specific-hooks',/m);
    await writeFile(rcFile, rc);
    const hooks = join(home, 'local/hooks/repo-specific');
    await mkdir(hooks, { recursive: true });
    await writeFile(
      join(hooks, 'breakglass-pre'),
      await readFile(join(recipe.opt, 'hooks/pre-receive'), 'utf8'),
      { mode: 0o755 },
    );
    await writeFile(
      join(hooks, 'breakglass-post'),
      await readFile(join(recipe.opt, 'hooks/post-receive'), 'utf8'),
      { mode: 0o755 },
    );
    // reference-transaction is not a repo-specific hook gitolite allows: common hooks (every
    // repository) carry it; it costs a `test -e` on pushes that are not break-glass.
    const common = join(home, 'local/hooks/common');
    await mkdir(common, { recursive: true });
    await writeFile(
      join(common, 'reference-transaction'),
      await readFile(join(recipe.opt, 'hooks/reference-transaction'), 'utf8'),
      { mode: 0o755 },
    );
    for (const user of ['alice', 'bob']) {
      await writeFile(
        join(home, '.gitolite/keydir', `${user}.pub`),
        await readFile(join(recipe.root, `${user}.pub`), 'utf8'),
      );
    }
    await writeFile(
      join(home, '.gitolite/conf/gitolite.conf'),
      (await readFile(join(home, '.gitolite/conf/gitolite.conf'), 'utf8')) +
        [
          '',
          'repo api',
          '    RW+ = alice bob',
          '    option hook.pre-receive  = breakglass-pre',
          '    option hook.post-receive = breakglass-post',
          '    config receive.advertisePushOptions = true',
          '',
        ].join('\n'),
    );
    await run('chown', ['-R', 'gitolite3:', home], { check: true });
    // Server-side edits of the conf are compiled like a push to gitolite-admin would.
    for (const args of [['compile'], ['trigger', 'POST_COMPILE'], ['setup']]) {
      const r = await asGitolite(args);
      assert.equal(r.code, 0, `gitolite ${args.join(' ')}: ${r.stderr}`);
    }

    const dir = join(recipe.root, 'sshd');
    await mkdir(dir, { mode: 0o755 });
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
        'AuthorizedKeysFile %h/.ssh/authorized_keys',
        `PidFile ${join(dir, 'sshd.pid')}`,
        'AllowUsers gitolite3',
        'StrictModes no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
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
    'first push of main meets HEAD on master with the right hint; after the fix, break-glass works end to end',
    { skip: skip ? `skipped: ${skip}` : false },
    async () => {
      const url = `ssh://gitolite3@127.0.0.1:${port}/api`;
      const gitDir = join(home, 'repositories/api.git');
      const ssh = (user: string) => ({ GIT_SSH_COMMAND: sshCommand(keys.get(user)!) });
      assert.equal(
        (await serverGit(gitDir, ['symbolic-ref', 'HEAD'])).stdout.trim(),
        'refs/heads/master',
        'gitolite creates repositories on master (git < 3.0 without init.defaultBranch)',
      );

      // The first push: main with the policy. HEAD names master, so it is refused with the fix.
      const first = await recipe.developer('alice', ssh('alice'));
      await first.clone(url);
      await mkdir(join(first.dir, '.breakglass'));
      const { policyYaml } = await import('../helpers/fixtures.ts');
      await writeFile(join(first.dir, '.breakglass/policy.yml'), policyYaml());
      await first.git(['add', '-A'], { check: true });
      await first.git(['commit', '-qm', 'policy'], { check: true });
      const refused = await first.git(['push', 'origin', 'HEAD:main']);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /POLICY_MISSING/);
      assert.match(refused.stderr, /symbolic-ref HEAD refs\/heads\/main/);
      // The documented fix, as the gitolite account on the server.
      const fix = await runAs(
        'gitolite3',
        'git',
        ['--git-dir', gitDir, 'symbolic-ref', 'HEAD', 'refs/heads/main'],
        cleanEnv({ HOME: home }),
      );
      assert.equal(fix.code, 0, fix.stderr);
      const adopted = await first.git(['push', 'origin', 'HEAD:main']);
      assert.equal(adopted.code, 0, adopted.stderr);
      assert.match(adopted.stderr, /adopts the policy/);

      const alice = await recipe.developer('alice', ssh('alice'));
      const bob = await recipe.developer('bob', ssh('bob'));
      await breakGlass(alice, bob, url, gitDir);
    },
  );
});

describe('recipe: one repository over ssh (git) and http (www-data), two Unix accounts', () => {
  // Needs issue 10 E6 (the hook's state under $GIT_DIR/breakglass/ honours
  // core.sharedRepository).
  const skip = missing({
    '/usr/sbin/sshd': 'openssh-server',
    '/usr/bin/git-shell': 'git',
    '/usr/sbin/apache2': 'apache2',
    '/usr/bin/htpasswd': 'apache2-utils',
  });
  let recipe: Recipe;
  let gitDir: string;
  let sshPort: number;
  let httpPort: number;
  const keys = new Map<string, string>();
  before(async () => {
    if (skip) return;
    recipe = await Recipe.create('shared');
    await ensureAccount('git', { shell: '/usr/bin/git-shell' });
    // docs/server-setup.md "ssh and http on one repository": a group both accounts are in,
    // a repository shared with it, and safe.directory for the web server's account.
    await run('usermod', ['-aG', 'git', 'www-data'], { check: true });
    const srv = join(recipe.root, 'srv');
    await mkdir(srv, { mode: 0o755 });
    gitDir = await recipe.repository(join(srv, 'api.git'), 'git', { shared: 'git' });
    await runAs('git', 'git', ['--git-dir', gitDir, 'config', 'http.receivepack', 'true']);
    const wwwConfig = join(recipe.root, 'www-data.gitconfig');
    await writeFile(wwwConfig, '[safe]\n\tdirectory = *\n', { mode: 0o644 }); // as above
    sshPort = await startGitShellSshd(recipe, keys);
    httpPort = await startApache(recipe, srv, [`SetEnv GIT_CONFIG_GLOBAL ${wwwConfig}`]);
  });
  after(async () => {
    await recipe?.close();
  });

  it(
    'break-glass pushes over ssh, then http, then ssh again all land with their notes',
    { skip: skip ? `skipped: ${skip}` : false },
    async () => {
      const sshUrl = `ssh://git@127.0.0.1:${sshPort}${gitDir}`;
      const ssh = (user: string) => ({ GIT_SSH_COMMAND: sshCommand(keys.get(user)!) });
      await breakGlass(
        await recipe.developer('alice', ssh('alice')),
        await recipe.developer('bob', ssh('bob')),
        sshUrl,
        gitDir,
      );
      await breakGlass(
        await recipe.developer('alice'),
        await recipe.developer('bob'),
        httpUrls(httpPort),
        gitDir,
      );
      await breakGlass(
        await recipe.developer('alice', ssh('alice')),
        await recipe.developer('bob', ssh('bob')),
        sshUrl,
        gitDir,
      );
    },
  );
});
