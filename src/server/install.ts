// `bg-sign install-hooks`: puts the pre-receive/post-receive shims into a repository and records
// where Node and the bundle live, so a server needs nothing but Node and one file.
import { spawnSync } from 'node:child_process';
import { constants as fsc, statSync } from 'node:fs';
import { access, chmod, lstat, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { BreakglassError } from '../errors.ts';
import { parsePolicy } from '../policy/policy.ts';

/** The hooks we install. */
export const HOOK_NAMES = ['pre-receive', 'post-receive'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

/** Every shim carries this line; a hook without it belongs to someone else. */
export const SHIM_MARKER = '# git-breakglass hook shim';

/** Suffix of a pre-existing hook that our shim runs first (`--chain`). */
export const CHAINED_SUFFIX = '.chained';
/** Suffix of the copy kept when `--force` replaces a foreign hook. */
export const BACKUP_SUFFIX = '.breakglass-backup';

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The shim script for one hook. `bundle` and `node` are the install-time defaults written into
 * the copy; `git config breakglass.bundle` / `breakglass.node` override them. The files in
 * `hooks/` are this text with empty defaults (a test keeps them in sync).
 */
export function shimText(
  hook: HookName,
  defaults: { bundle?: string; node?: string } = {},
): string {
  const pre = hook === 'pre-receive';
  // pre-receive fails closed (exit 1 rejects the push); post-receive can't undo a push, so it
  // only warns and never reports failure.
  const fail = pre ? 'exit 1' : 'exit 0';
  const what = pre
    ? 'refusing the push (fail closed): protected refs need the git-breakglass hook'
    : "audit notes were NOT written; run 'bg-sign audit flush GIT_DIR' on the server";
  return `#!/bin/sh
${SHIM_MARKER} (${hook}); installed by "bg-sign install-hooks", safe to re-run.
# Runs "node <bundle> hook ${hook}" with git's stdin, arguments and environment.
# Where things are: git config breakglass.bundle / breakglass.node, else the defaults below.
bundle_default=${shQuote(defaults.bundle ?? '')}
node_default=${shQuote(defaults.node ?? '')}
# Settings for hosts with no git config of their own (GHES, Gitaly); npm run dist:server bakes them.
policy_default=''
identity_default=''
timeout_default=''

die() {
  echo "git-breakglass: $1" >&2
  echo "git-breakglass: ${what}" >&2
  ${fail}
}

# Exported only when the environment has none: git config > environment > these (config.ts).
[ -z "$policy_default" ] || [ -n "\${BREAKGLASS_POLICY-}" ] || { BREAKGLASS_POLICY=$policy_default; export BREAKGLASS_POLICY; }
[ -z "$identity_default" ] || [ -n "\${BREAKGLASS_IDENTITY-}" ] || { BREAKGLASS_IDENTITY=$identity_default; export BREAKGLASS_IDENTITY; }
[ -z "$timeout_default" ] || [ -n "\${BREAKGLASS_TIMEOUT-}" ] || { BREAKGLASS_TIMEOUT=$timeout_default; export BREAKGLASS_TIMEOUT; }

# One git process for both settings (this runs on every push); the last value of each wins.
bundle=
node=
while IFS= read -r line; do
  case $line in
    "breakglass.bundle "*) bundle=\${line#breakglass.bundle } ;;
    "breakglass.node "*) node=\${line#breakglass.node } ;;
  esac
done <<EOF
$(git config --get-regexp '^breakglass\\.(bundle|node)$' 2>/dev/null)
EOF
[ -n "$bundle" ] || bundle=$bundle_default
[ -n "$node" ] || node=$node_default
[ -n "$node" ] || node=$(command -v node 2>/dev/null) || node=

[ -n "$bundle" ] || die "no bundle configured (git config breakglass.bundle /path/to/bg-sign.js)"
[ -r "$bundle" ] || die "bundle $bundle is missing or unreadable"
# The hooks' own entries, built beside bg-sign.js, start faster (same arguments): bg-hook.cjs
# (needs bg-hook.js beside it), else bg-hook.js, else bg-sign.js itself.
case $bundle in */bg-sign.js)
  dir=\${bundle%/*}
  if [ -r "$dir/bg-hook.js" ]; then
    if [ -r "$dir/bg-hook.cjs" ]; then bundle=$dir/bg-hook.cjs; else bundle=$dir/bg-hook.js; fi
  fi ;;
esac
[ -n "$node" ] || die "node is not installed or not on PATH (git config breakglass.node /path/to/node)"
[ -x "$node" ] || die "node at $node is missing or not executable"

chained="$0${CHAINED_SUFFIX}"
if [ -x "$chained" ]; then
  # The hook that was here before runs first and sees the same input: buffer stdin once.
  tmp=$(mktemp "\${TMPDIR:-/tmp}/breakglass-${hook}.XXXXXX") || die "cannot create a temporary file"
  cat >"$tmp" || { rm -f "$tmp"; die "cannot buffer the hook input"; }
  "$chained" "$@" <"$tmp"
  status=$?
  if [ "$status" -ne 0 ]; then
${
  pre
    ? `    rm -f "$tmp"
    echo "git-breakglass: the chained hook $chained refused the push (exit $status)" >&2
    exit "$status"`
    : `    echo "git-breakglass: the chained hook $chained failed (exit $status)" >&2`
}
  fi
  exec <"$tmp"
  rm -f "$tmp"
fi

${pre ? 'exec "$node" "$bundle" hook pre-receive "$@"' : '"$node" "$bundle" hook post-receive "$@" || echo "git-breakglass: post-receive failed; pending events stay in the journal (bg-sign audit flush)" >&2\nexit 0'}
`;
}

export interface InstallOptions {
  /** A bare repository (or a work tree / .git dir). */
  readonly gitDir: string;
  /** Absolute path of the bg-sign bundle the hooks run. */
  readonly bundle: string;
  /** Node executable the hooks run (default: the one running now). */
  readonly node?: string;
  /** Policy file to pin (`git config breakglass.policy`). */
  readonly policy?: string;
  /** Keep an existing foreign hook and run it before ours. */
  readonly chain?: boolean;
  /** Replace an existing foreign hook (a backup copy is kept). */
  readonly force?: boolean;
  readonly env?: NodeJS.ProcessEnv;
}

export interface InstallReport {
  readonly gitDir: string;
  readonly hooksDir: string;
  readonly bare: boolean;
  /** One sentence per thing done, in order. */
  readonly actions: string[];
  /** Things the admin should know (not errors). */
  readonly warnings: string[];
}

function git(gitDir: string | null, args: string[], env: NodeJS.ProcessEnv, cwd?: string) {
  const r = spawnSync('git', gitDir ? ['--git-dir', gitDir, ...args] : args, {
    cwd,
    env,
    encoding: 'utf8',
  });
  if (r.error) {
    throw new BreakglassError('GIT_FAILED', `could not run git: ${r.error.message}`);
  }
  return { code: r.status ?? 1, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

function gitOk(gitDir: string, args: string[], env: NodeJS.ProcessEnv): string {
  const r = git(gitDir, args, env);
  if (r.code !== 0) {
    throw new BreakglassError('GIT_FAILED', `git ${args.join(' ')} failed: ${r.stderr}`);
  }
  return r.stdout;
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/** Resolves the repository's git dir without wandering up into an enclosing repository. */
function resolveGitDir(path: string, env: NodeJS.ProcessEnv): { gitDir: string; bare: boolean } {
  const abs = resolve(path);
  if (!statSync(abs, { throwIfNoEntry: false })?.isDirectory()) {
    throw new BreakglassError('USAGE', `${abs} is not a git repository (no such directory)`, {
      hint: 'create one with "git init --bare <dir>" or pass the path of an existing repository',
    });
  }
  const e: NodeJS.ProcessEnv = { ...env, GIT_CEILING_DIRECTORIES: dirname(abs) };
  delete e.GIT_DIR;
  delete e.GIT_WORK_TREE;
  const r = git(null, ['rev-parse', '--absolute-git-dir', '--is-bare-repository'], e, abs);
  if (r.code !== 0 && /dubious ownership/.test(r.stderr)) {
    // git refuses a repository another account owns (CVE-2022-24765); its own message names
    // the fix. The better one is to run as the owner, whose account the hooks will run as.
    const fix = /git config --global --add safe\.directory .*/.exec(r.stderr)?.[0];
    throw new BreakglassError('USAGE', r.stderr.replace(/^fatal: /, '').split('\n')[0]!, {
      hint: `run install-hooks as the account that owns ${abs} (sudo -u OWNER bg-sign install-hooks ...)${fix ? `, or trust it for this account: ${fix}` : ''}`,
    });
  }
  if (r.code !== 0) {
    throw new BreakglassError('USAGE', `${abs} is not a git repository`, {
      hint: 'create one with "git init --bare <dir>" or pass the path of an existing repository',
    });
  }
  const [gitDir, bare] = r.stdout.split('\n');
  return { gitDir: gitDir!, bare: bare === 'true' };
}

/**
 * Installs the shims into a repository's hooks directory and records the configuration.
 * Idempotent: our own shims are rewritten in place. A foreign hook is refused unless `chain`
 * (kept as `<hook>.chained` and run first) or `force` (replaced; a backup copy is kept).
 */
export async function installHooks(o: InstallOptions): Promise<InstallReport> {
  const env = o.env ?? process.env;
  const { gitDir, bare } = resolveGitDir(o.gitDir, env);
  const actions: string[] = [];
  const warnings: string[] = [];

  if (!isAbsolute(o.bundle)) throw new BreakglassError('USAGE', 'the bundle path must be absolute');
  await access(o.bundle, fsc.R_OK).catch(() => {
    throw new BreakglassError('USAGE', `bundle ${o.bundle} is missing or unreadable`);
  });
  const node = o.node ?? process.execPath;
  await access(node, fsc.X_OK).catch(() => {
    throw new BreakglassError('USAGE', `node ${node} is missing or not executable`);
  });

  let policyPath: string | undefined;
  if (o.policy !== undefined) {
    policyPath = resolve(o.policy);
    let text: string;
    try {
      text = await readFile(policyPath, 'utf8');
    } catch {
      throw new BreakglassError('POLICY_MISSING', `policy file ${policyPath} can't be read`);
    }
    parsePolicy(text, policyPath); // refuse to pin a policy the hook would reject
  }

  const hooksDir = resolve(gitDir, gitOk(gitDir, ['rev-parse', '--git-path', 'hooks'], env));
  await mkdir(hooksDir, { recursive: true });

  // Decide for every hook before touching anything, so a refusal leaves the repository as it was.
  const plans: { hook: HookName; path: string; foreign: boolean }[] = [];
  for (const hook of HOOK_NAMES) {
    const path = join(hooksDir, hook);
    let foreign = false;
    if (await exists(path)) {
      const text = await readFile(path, 'utf8').catch(() => '');
      foreign = !text.includes(SHIM_MARKER);
    }
    if (foreign && !o.chain && !o.force) {
      throw new BreakglassError(
        'USAGE',
        `${path} already exists and is not a git-breakglass hook`,
        {
          hint: 'pass --chain to keep it and run it before the break-glass check, or --force to replace it (a backup copy is kept)',
        },
      );
    }
    plans.push({ hook, path, foreign });
  }

  for (const { hook, path, foreign } of plans) {
    if (foreign && o.chain) {
      const target = path + CHAINED_SUFFIX;
      if (await exists(target)) {
        throw new BreakglassError(
          'USAGE',
          `${target} already exists; move one of the two hooks away first`,
        );
      }
      await rename(path, target);
      actions.push(`kept the existing ${hook} hook as ${target}; it runs first`);
    } else if (foreign) {
      await rename(path, path + BACKUP_SUFFIX);
      actions.push(`replaced the existing ${hook} hook (backup: ${path + BACKUP_SUFFIX})`);
    }
    const text = shimText(hook, { bundle: o.bundle, node });
    const before = await readFile(path, 'utf8').catch(() => null);
    if (before !== text) {
      // Write beside and rename, so a push arriving meanwhile never runs half a script.
      const tmp = `${path}.tmp-${process.pid}`;
      await writeFile(tmp, text, { mode: 0o755 });
      await chmod(tmp, 0o755);
      await rename(tmp, path);
      actions.push(`${before === null || foreign ? 'installed' : 'updated'} ${path}`);
    } else {
      await chmod(path, 0o755);
      actions.push(`${path} is up to date`);
    }
    if (await exists(path + CHAINED_SUFFIX)) {
      if (!actions.some((a) => a.includes(path + CHAINED_SUFFIX))) {
        actions.push(`${path + CHAINED_SUFFIX} stays chained (runs first)`);
      }
    }
  }

  const settings: [string, string][] = [
    ['breakglass.bundle', o.bundle],
    ['breakglass.node', node],
    // `git push -o breakglass=<id>` is refused by the client unless the server advertises it.
    ['receive.advertisePushOptions', 'true'],
  ];
  if (policyPath) settings.push(['breakglass.policy', policyPath]);
  for (const [key, value] of settings) {
    const current = git(gitDir, ['config', '--get', key], env);
    if (current.code === 0 && current.stdout === value) continue;
    gitOk(gitDir, ['config', key, value], env);
    actions.push(`set ${key} = ${value}`);
  }
  if (!policyPath) {
    const pinned = git(gitDir, ['config', '--get', 'breakglass.policy'], env);
    if (pinned.code === 0) {
      actions.push(`policy stays pinned to ${pinned.stdout}`);
    } else {
      warnings.push(
        'no policy pinned: the hook reads .breakglass/policy.yml on the default branch (HEAD) as it was before each push; pin a file with --policy FILE',
      );
    }
  }
  if (!bare) {
    warnings.push(`${gitDir} belongs to a work tree; a server repository is normally bare`);
  }
  return { gitDir, hooksDir, bare, actions, warnings };
}
