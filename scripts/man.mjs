// Writes dist/man/bg-sign.1 and dist/man/git-breakglass.1 from the built CLI's own --help
// (one source for both: the man page can't drift from the help). `git breakglass --help` runs
// `man git-breakglass`; package.json's "man" links both into <prefix>/share/man/man1 on
// `npm install -g`, where man finds them through PATH (<prefix>/bin -> <prefix>/share/man).
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';

const BUNDLE = 'dist/bg-sign.js';
const pkg = JSON.parse(await readFile('package.json', 'utf8'));

function help(args) {
  return execFileSync(process.execPath, [BUNDLE, ...args, '--help'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, LANG: 'C', NO_COLOR: '1', COLUMNS: '100' },
  }).trimEnd();
}

/** Text as roff: backslashes escaped, hyphens literal, no line read as a request. */
function roff(text) {
  return text
    .split('\n')
    .map((l) => l.replace(/\\/g, '\\e').replace(/-/g, '\\-'))
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

const top = help([]);
// "  bg-sign <name> ..." lines of the top-level help's Commands section.
const section = top.slice(top.indexOf('Commands:'), top.indexOf('\nOptions:'));
const names = [...section.matchAll(/^ {2}bg-sign ([a-z-]+)/gm)].map((m) => m[1]);
if (names.length < 10) throw new Error(`man: found only ${names.length} commands in --help`);

function page(name) {
  // SOURCE_DATE_EPOCH keeps a rebuild byte-identical (reproducible-builds.org).
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  const date = new Date(Number.isFinite(epoch) ? epoch * 1000 : Date.now())
    .toISOString()
    .slice(0, 10);
  const out = [
    `.TH ${name.toUpperCase()} 1 "${date}" "git-breakglass ${pkg.version}" "git-breakglass manual"`,
    '.SH NAME',
    `${name} \\- ${pkg.description[0].toLowerCase()}${pkg.description.slice(1)}`,
    '.SH SYNOPSIS',
    name === 'git-breakglass'
      ? '.B git breakglass\n.I command\n[\\fIoptions\\fR]'
      : `.B ${name}\n.I command\n[\\fIoptions\\fR]`,
    '.SH DESCRIPTION',
    'Tickets that open a protected Git branch for one approved, recorded push, and the server',
    'hooks that enforce them. Each command below is shown as its',
    '.B \\-\\-help',
    'prints it.',
    name === 'git-breakglass'
      ? 'Installed as git\\-breakglass, every command also runs as\n.BR "git breakglass" .'
      : '',
    '.SH OVERVIEW',
    '.nf',
    roff(top),
    '.fi',
    '.SH COMMANDS',
  ];
  for (const c of names) {
    out.push(`.SS ${c}`, '.nf', roff(help([c])), '.fi');
  }
  out.push(
    '.SH ENVIRONMENT',
    '.TP',
    '.B BG_SIGN_KEY',
    'private key file when \\-\\-key is not given',
    '.TP',
    '.B NO_COLOR',
    'no colour even on a terminal',
    '.SH FILES',
    '.TP',
    '.I $XDG_CONFIG_HOME/breakglass/ed25519.key',
    'the default signing key (0600)',
    '.TP',
    '.I .breakglass/policy.yml',
    'the policy on the default branch',
    '.SH EXIT STATUS',
    '0 success, 1 denied or invalid, 2 usage error.',
    '.SH SEE ALSO',
    '.BR git (1),',
    '.BR githooks (5);',
    'README.md and docs/ in the package.',
  );
  return (
    out
      .filter((l) => l !== '')
      .join('\n')
      .replace(/\$0/g, name) + '\n'
  );
}

await mkdir('dist/man', { recursive: true });
for (const name of ['bg-sign', 'git-breakglass']) {
  await writeFile(`dist/man/${name}.1`, page(name));
}
