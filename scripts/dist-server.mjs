// `npm run dist:server`: the server bundle for hosts without npm (docs/server-setup.md §1).
// Writes dist-server/git-breakglass/ and dist-server/git-breakglass-server-<version>.tar.gz:
//
//   bin/bg-sign, bin/git-breakglass   launchers: node + lib/bg-sign.js
//   lib/                              the built bundles (bg-sign.js, bg-hook.cjs, bg-hook-full.cjs)
//   hooks/                            every shim in hooks/, its bundle default = <prefix>/lib/bg-sign.js
//   share/man/man1/                   bg-sign.1, git-breakglass.1
//   share/bash-completion/completions/bg-sign, share/zsh/site-functions/_bg-sign
//   share/doc/git-breakglass/         README.md, LICENSE, docs/*.md
//
// Options: --prefix DIR (where the admin unpacks it; default /opt/git-breakglass), --node PATH
// (baked into the launchers and shims; default: found on PATH at run time), --out DIR, and
// --policy FILE, --identity MODE, --timeout 4s baked into the shims as the defaults of
// breakglass.policy/.identity/.timeout where the hooks have no git config (GHES, Gitaly).
// Run `npm run build` first (the npm script does).
import { execFileSync } from 'node:child_process';
import { chmod, cp, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    prefix: { type: 'string', default: '/opt/git-breakglass' },
    node: { type: 'string', default: '' },
    out: { type: 'string', default: 'dist-server' },
    // Baked into the shims for hosts with no git config (GHES, Gitaly); see config.ts.
    policy: { type: 'string', default: '' },
    identity: { type: 'string', default: '' },
    timeout: { type: 'string', default: '' },
  },
});
const prefix = values.prefix.replace(/\/+$/, '');
if (!isAbsolute(prefix)) throw new Error('--prefix must be an absolute path');
if (values.node && !isAbsolute(values.node)) throw new Error('--node must be an absolute path');
if (values.policy && !isAbsolute(values.policy))
  throw new Error('--policy must be an absolute path');
if (values.identity && !['auto', 'unix', 'none'].includes(values.identity)) {
  throw new Error('--identity must be auto, unix or none');
}
if (values.timeout && !/^\d{1,3}(s|m)?$/.test(values.timeout)) {
  throw new Error('--timeout must be seconds or a duration like 4s, 1m');
}
const pkg = JSON.parse(await readFile('package.json', 'utf8'));
const out = resolve(values.out);
const root = join(out, 'git-breakglass');

function shQuote(s) {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

await rm(root, { recursive: true, force: true });
await mkdir(join(root, 'bin'), { recursive: true });

// lib/: what `npm run build` wrote (the CLI, the hooks' fast entries and their chunks).
const lib = join(root, 'lib');
await mkdir(lib);
for (const f of ['bg-sign.js', 'bg-hook.cjs', 'bg-hook-full.cjs'])
  await cp(join('dist', f), join(lib, f));
await chmod(join(lib, 'bg-sign.js'), 0o755);
// Run as git-breakglass.js, the CLI prints "git breakglass ..." in its usage lines.
await symlink('bg-sign.js', join(lib, 'git-breakglass.js'));

// bin/: launchers. They resolve their own location, so a symlink in /usr/local/bin works.
const launcher = (name) => `#!/bin/sh
# git-breakglass launcher (server bundle ${pkg.version}): runs lib/${name}.js with Node.
node_default=${shQuote(values.node)}
here=$(dirname "$(readlink -f "$0")")
node=$node_default
[ -n "$node" ] || node=$(command -v node 2>/dev/null) || node=
if [ -z "$node" ] || [ ! -x "$node" ]; then
  echo "${name}: Node.js 20 or newer is needed (not found on PATH)" >&2
  exit 2
fi
exec "$node" "$here/../lib/${name}.js" "$@"
`;
for (const name of ['bg-sign', 'git-breakglass']) {
  await writeFile(join(root, 'bin', name), launcher(name), { mode: 0o755 });
}

// hooks/: every shim, with the bundle (and Node, if given) baked in as the defaults, so a forge
// recipe (GitLab, Gitea, gitolite, GHES) copies a file that works without git config.
await mkdir(join(root, 'hooks'));
for (const f of await readdir('hooks')) {
  let text = await readFile(join('hooks', f), 'utf8');
  text = text.replace(
    /^bundle_default=''$/m,
    `bundle_default=${shQuote(`${prefix}/lib/bg-sign.js`)}`,
  );
  for (const key of ['node', 'policy', 'identity', 'timeout']) {
    if (values[key]) {
      text = text.replace(
        new RegExp(`^${key}_default=''$`, 'm'),
        `${key}_default=${shQuote(values[key])}`,
      );
    }
  }
  await writeFile(join(root, 'hooks', f), text, { mode: 0o755 });
}

// share/: man pages, shell completion, documentation.
await cp('dist/man', join(root, 'share/man/man1'), { recursive: true });
const completion = (shell) =>
  execFileSync(process.execPath, ['dist/bg-sign.js', 'completion'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, SHELL: shell },
  });
await mkdir(join(root, 'share/bash-completion/completions'), { recursive: true });
// git's own bash completion calls _git_<command> for `git breakglass ...`: hand it the same
// completions (words/cword/__gitcomp_nl come from git's completion script).
const gitCompletion = `
_git_breakglass()
{
    local IFS=$'\\n'
    __gitcomp_nl "$(bg-sign --get-yargs-completions bg-sign "\${words[@]:2:$((cword - 1))}" 2>/dev/null)"
}
`;
await writeFile(
  join(root, 'share/bash-completion/completions/bg-sign'),
  completion('/bin/bash') + gitCompletion,
);
await mkdir(join(root, 'share/zsh/site-functions'), { recursive: true });
await writeFile(join(root, 'share/zsh/site-functions/_bg-sign'), completion('/bin/zsh'));
const doc = join(root, 'share/doc/git-breakglass');
await mkdir(doc, { recursive: true });
for (const f of ['README.md', 'LICENSE']) await cp(f, join(doc, f));
await cp('docs', join(doc, 'docs'), { recursive: true });
await writeFile(
  join(root, 'VERSION'),
  [
    `git-breakglass ${pkg.version}`,
    `prefix ${prefix}`,
    `node ${values.node || '(from PATH)'}`,
    ...['policy', 'identity', 'timeout'].flatMap((k) => (values[k] ? [`${k} ${values[k]}`] : [])),
    '',
  ].join('\n'),
);

const tarball = join(out, `git-breakglass-server-${pkg.version}.tar.gz`);
execFileSync('tar', [
  '-C',
  out,
  '--owner=0',
  '--group=0',
  '--numeric-owner',
  '-czf',
  tarball,
  'git-breakglass',
]);
console.log(`wrote ${root}/ and ${tarball}`);
console.log(`install: sudo tar -C ${prefix.replace(/\/[^/]+$/, '') || '/'} -xzf ${tarball}`);
