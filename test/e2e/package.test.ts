// The package as an adopter gets it (issue 12 §1): `npm pack` from a fresh copy of the sources
// builds first and ships only what runs; `npm install -g` of the tarball gives working
// `bg-sign`, `git-breakglass` and `git breakglass`, with its man page; `npm run dist:server`
// writes the server bundle the recipes in docs/server-setup.md unpack to /opt/git-breakglass.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanEnv, REPO_ROOT, run } from '../helpers/server.ts';

/** The sources as a fresh clone has them (tracked and new files, nothing ignored, no dist/). */
async function freshCopy(to: string): Promise<void> {
  const files = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: REPO_ROOT,
    check: true,
  });
  for (const f of files.stdout.split('\0').filter(Boolean)) {
    if (!existsSync(join(REPO_ROOT, f))) continue; // deleted in the work tree, not yet committed
    await mkdir(dirname(join(to, f)), { recursive: true });
    await cp(join(REPO_ROOT, f), join(to, f));
  }
  // The dependencies a fresh clone gets from `npm ci`, without the network.
  await symlink(join(REPO_ROOT, 'node_modules'), join(to, 'node_modules'));
}

describe('npm pack + npm install -g', () => {
  let root: string;
  let src: string;
  let tarball: string;
  let prefix: string;
  const env = () =>
    cleanEnv({
      HOME: join(root, 'home'),
      npm_config_cache: join(root, 'npm-cache'),
      npm_config_update_notifier: 'false',
      PATH: `${join(prefix, 'bin')}:${process.env.PATH}`,
    });
  before(async () => {
    root = await mkdtemp(join(os.tmpdir(), 'bg-pack-'));
    src = join(root, 'src');
    prefix = join(root, 'prefix');
    await mkdir(join(root, 'home'));
    await freshCopy(src);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('packs from a fresh copy: builds first, ships dist/, hooks/, docs, README, LICENSE only', async () => {
    assert.equal(existsSync(join(src, 'dist')), false, 'a fresh copy has no dist/');
    const r = await run('npm', ['pack', '--json', '--pack-destination', root], {
      cwd: src,
      env: env(),
    });
    assert.equal(r.code, 0, r.stderr);
    const [info] = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as [
      { filename: string; files: { path: string }[] },
    ];
    tarball = join(root, info.filename);
    const paths = info.files.map((f) => f.path).sort();
    for (const p of paths) {
      assert.match(
        p,
        /^(dist\/(bg-sign\.js|bg-hook(-full)?\.cjs|man\/[\w-]+\.1)|hooks\/[\w-]+|docs\/[\w-]+\.md|README\.md|LICENSE|package\.json)$/,
        `unexpected file in the package: ${p}`,
      );
    }
    for (const p of [
      'dist/bg-sign.js',
      'dist/bg-hook.cjs',
      'dist/man/git-breakglass.1',
      'hooks/pre-receive',
      'hooks/post-receive',
      'docs/server-setup.md',
      'LICENSE',
    ]) {
      assert.ok(paths.includes(p), `${p} is in the package`);
    }
    const pkg = JSON.parse(await readFile(join(src, 'package.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(pkg.private, undefined, 'the package can be published');
    assert.deepEqual(pkg.dependencies ?? {}, {}, 'everything is bundled: no runtime dependencies');
    const license = await readFile(join(src, 'LICENSE'), 'utf8');
    assert.equal(pkg.license, 'Apache-2.0');
    assert.match(license, /Apache License\s+Version 2\.0, January 2004/);
    assert.match(license, /END OF TERMS AND CONDITIONS/);
  });

  it('installs with npm install -g: bg-sign, git-breakglass, git breakglass and the man page work', async () => {
    assert.ok(tarball, 'the pack step ran');
    const r = await run(
      'npm',
      ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', tarball],
      { cwd: root, env: env() },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /EBADENGINE/);
    const installed = join(prefix, 'lib/node_modules/git-breakglass');
    assert.deepEqual(
      existsSync(join(installed, 'node_modules'))
        ? await readdir(join(installed, 'node_modules'))
        : [],
      [],
      'no runtime dependencies are installed',
    );

    const help = await run('bg-sign', ['--help'], { cwd: root, env: env() });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^bg-sign <command> \[options\]/);
    assert.match(help.stdout, /bg-sign install-hooks <git-dir>/);

    const viaGit = await run('git', ['breakglass', '-h'], { cwd: root, env: env() });
    assert.equal(viaGit.code, 0, viaGit.stderr);
    assert.match(viaGit.stdout, /^git breakglass <command> \[options\]/);
    assert.match(viaGit.stdout, /git breakglass request/);

    const version = await run('git-breakglass', ['--version'], { cwd: root, env: env() });
    assert.equal(version.stdout.trim(), '0.1.0');

    // npm links the man pages into <prefix>/share/man/man1; man finds them from PATH.
    assert.ok(existsSync(join(prefix, 'share/man/man1/git-breakglass.1')));
    assert.ok(existsSync(join(prefix, 'share/man/man1/bg-sign.1')));
    const man = await run('sh', ['-c', 'command -v man'], { env: env() });
    if (man.code === 0) {
      const page = await run('git', ['breakglass', '--help'], {
        cwd: root,
        env: { ...env(), MANPAGER: 'cat', PAGER: 'cat', MANWIDTH: '100' },
      });
      assert.equal(page.code, 0, page.stderr);
      assert.match(page.stdout, /GIT-BREAKGLASS\(1\)/);
      assert.match(page.stdout, /install-hooks/);
    }

    const completion = await run('bg-sign', ['completion'], { cwd: root, env: env() });
    assert.match(
      completion.stdout,
      /complete -o bashdefault -o default -F _bg-sign_yargs_completions bg-sign/,
    );
    const words = await run('bg-sign', ['--get-yargs-completions', 'bg-sign', 'req'], {
      cwd: root,
      env: env(),
    });
    assert.match(words.stdout, /^request$/m);
  });
});

describe('npm run dist:server', () => {
  let out: string;
  before(async () => {
    out = await mkdtemp(join(os.tmpdir(), 'bg-dist-server-'));
  });
  after(async () => {
    await rm(out, { recursive: true, force: true });
  });

  it('writes a self-contained bundle: launchers, every shim with the bundle baked in, man pages', async () => {
    const r = await run(
      process.execPath,
      ['scripts/dist-server.mjs', '--out', out, '--prefix', '/opt/git-breakglass'],
      { cwd: REPO_ROOT, env: cleanEnv() },
    );
    assert.equal(r.code, 0, r.stderr);
    const root = join(out, 'git-breakglass');
    const shims = (await readdir(join(REPO_ROOT, 'hooks'))).sort();
    assert.deepEqual((await readdir(join(root, 'hooks'))).sort(), shims, 'every file in hooks/');
    for (const shim of shims) {
      const text = await readFile(join(root, 'hooks', shim), 'utf8');
      if (/^bundle_default=/m.test(text)) {
        assert.match(text, /^bundle_default='\/opt\/git-breakglass\/lib\/bg-sign\.js'$/m, shim);
      }
    }
    for (const f of [
      'lib/bg-sign.js',
      'lib/bg-hook.cjs',
      'lib/bg-hook-full.cjs',
      'share/man/man1/bg-sign.1',
      'share/bash-completion/completions/bg-sign',
      'share/doc/git-breakglass/LICENSE',
    ]) {
      assert.ok(existsSync(join(root, f)), `${f} is in the bundle`);
    }
    const v = await run(join(root, 'bin/bg-sign'), ['--version'], { env: cleanEnv() });
    assert.equal(v.stdout.trim(), '0.1.0', v.stderr);
    const g = await run(join(root, 'bin/git-breakglass'), ['--help'], { env: cleanEnv() });
    assert.match(g.stdout, /^git breakglass <command>/);
    // Completion as a shell runs it: bash with git's own completion script, the bundle's file,
    // and bin/ on PATH, for `bg-sign req<TAB>` and `git breakglass request --re<TAB>`.
    const gitCompletion = '/usr/share/bash-completion/completions/git';
    if (existsSync(gitCompletion)) {
      const script = [
        `source ${gitCompletion}`,
        `source ${join(root, 'share/bash-completion/completions/bg-sign')}`,
        'COMP_WORDS=(bg-sign req); COMP_CWORD=1',
        '_bg-sign_yargs_completions; echo "bg-sign: ${COMPREPLY[*]}"',
        'COMP_WORDS=(git breakglass request --re); COMP_CWORD=3',
        'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}',
        '__git_wrap__git_main; echo "git: ${COMPREPLY[*]}"',
      ].join('\n');
      const c = await run('bash', ['-c', script], {
        env: cleanEnv({ PATH: `${join(root, 'bin')}:${process.env.PATH}` }),
      });
      assert.match(c.stdout, /^bg-sign: request$/m, c.stderr);
      assert.match(c.stdout, /^git: .*--ref .*--reason .*--remote/m, c.stderr);
    }
    const list = await run('tar', ['-tzf', join(out, 'git-breakglass-server-0.1.0.tar.gz')]);
    assert.match(list.stdout, /^git-breakglass\/bin\/bg-sign$/m);
    assert.match(list.stdout, /^git-breakglass\/hooks\/pre-receive$/m);
  });
});
