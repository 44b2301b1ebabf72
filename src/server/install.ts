import { randomBytes } from 'node:crypto';
// `bg-sign install-hooks`: puts the pre-receive/post-receive shims into a repository and records
// where Node and the bundle live, so a server needs nothing but Node and one file.
import { constants as fsc, statSync } from 'node:fs';
import { access, chmod, lstat, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { BreakglassError } from '../errors.ts';
import { REFS } from '../engine/guard.ts';
import { runGit } from '../git/git.ts';
import { policyFromBytes } from '../policy/load.ts';
import { refsBlockingRecording } from './namespace.ts';

/** The hooks we install. */
export const HOOK_NAMES = ['pre-receive', 'post-receive', 'reference-transaction'] as const;
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
  if (hook === 'reference-transaction') return transactionShimText();
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

# One git process for every breakglass.* setting (this runs on every push): the shim takes
# bundle and node from it, and hands all of it with git's exit status to the hook
# (--git-config), which then sees exactly what git sees without a git process of its own.
# The last value of each wins.
settings=$(git config --get-regexp '^breakglass\\.' 2>/dev/null; echo "$?")
bundle=
node=
while IFS= read -r line; do
  case $line in
    "breakglass.bundle "*) bundle=\${line#breakglass.bundle } ;;
    "breakglass.node "*) node=\${line#breakglass.node } ;;
  esac
done <<EOF
$settings
EOF
[ -n "$bundle" ] || bundle=$bundle_default
[ -n "$node" ] || node=$node_default
[ -n "$node" ] || node=$(command -v node 2>/dev/null) || node=

[ -n "$bundle" ] || die "no bundle configured (git config breakglass.bundle /path/to/bg-sign.js)"
[ -r "$bundle" ] || die "bundle $bundle is missing or unreadable"
# The hooks' own build beside bg-sign.js starts faster (same arguments): bg-hook.cjs, which
# loads bg-hook-full.cjs when it must; else bg-sign.js itself.
case $bundle in */bg-sign.js)
  dir=\${bundle%/*}
  if [ -r "$dir/bg-hook.cjs" ] && [ -r "$dir/bg-hook-full.cjs" ]; then bundle=$dir/bg-hook.cjs; fi ;;
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

${pre ? 'exec "$node" "$bundle" hook pre-receive "--git-config=$settings" "$@"' : '"$node" "$bundle" hook post-receive "--git-config=$settings" "$@" || echo "git-breakglass: post-receive failed; pending events stay in the journal (bg-sign audit flush)" >&2\nexit 0'}
`;
}

/**
 * The reference-transaction shim (E2). git runs it around every ref update in the repository,
 * so before anything else it checks for the file pre-receive writes when it accepts a
 * break-glass push (named after the receive-pack's pid): other updates cost one `test -e` and no
 * process. For an armed receive-pack (its start time and boot checked, so a reused pid is not
 * taken for it) it writes the transaction's state and lines durably under journal/tx/<entry>/,
 * in plain sh (a few coreutils, no Node: a push of 64 refs runs it 128 times). Failing in the
 * `prepared` state exits 1, so git refuses an update nobody wrote down (fail closed); in the
 * other states git ignores the exit code. The node side reads these files (journal.ts).
 */
function transactionShimText(): string {
  return `#!/bin/sh
${SHIM_MARKER} (reference-transaction); installed by "bg-sign install-hooks", safe to re-run.
# git runs this around every ref update; only a push that git-breakglass let through goes past
# the armed check below. Its state and update lines are written to
# $GIT_DIR/breakglass/journal/tx/<entry>/<state>-XXXXXXXX for post-receive and bg-sign audit.

chained="$0${CHAINED_SUFFIX}"
if [ -x "$chained" ]; then
  # The hook that was here before runs first and sees the same input: buffer stdin once.
  tmp=$(mktemp "\${TMPDIR:-/tmp}/breakglass-reference-transaction.XXXXXX") || exit 1
  cat >"$tmp" || { rm -f "$tmp"; exit 1; }
  "$chained" "$@" <"$tmp"
  status=$?
  if [ "$status" -ne 0 ]; then
    rm -f "$tmp"
    exit "$status"
  fi
  exec <"$tmp"
  rm -f "$tmp"
fi

state=$1
state_dir=\${GIT_DIR:-.}/breakglass
armed=$state_dir/armed/$PPID
[ -e "$armed" ] || exit 0

fail() {
  echo "git-breakglass: $1" >&2
  if [ "$state" = prepared ]; then
    echo "git-breakglass: refusing this break-glass update: it could not be written down (fail closed)" >&2
    exit 1
  fi
  exit 0
}
case $state in prepared|committed|aborted) ;; *) exit 0 ;; esac

# The arming names the entry and the receive-pack by pid, start time and boot.
read -r entry pid start boot <"$armed" || fail "cannot read $armed"
read -r now_boot </proc/sys/kernel/random/boot_id 2>/dev/null || now_boot=
read -r stat </proc/$PPID/stat 2>/dev/null || stat=
rest=\${stat##*) }
set -- $rest
[ $# -ge 20 ] && shift 19
[ "$pid" = "$PPID" ] && [ "$boot" = "$now_boot" ] && [ "$1" = "$start" ] || exit 0
case $entry in *[!0-9TZa-f-]*|'') fail "bad entry name in $armed" ;; esac

dir=$state_dir/journal/tx/$entry
tmp=$(mktemp "$dir/.tmp.XXXXXXXX") || fail "cannot write in $dir"
# mktemp makes 0600 files: every account that flushes must read it (E6).
cat >"$tmp" && chmod a+r "$tmp" && sync "$tmp" || { rm -f "$tmp"; fail "cannot write $tmp"; }
out=$(mktemp "$dir/$state-XXXXXXXX") && mv -f "$tmp" "$out" && sync "$dir" ||
  { rm -f "$tmp"; fail "cannot write the $state record in $dir"; }
exit 0
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
  /**
   * What keeps break-glass pushes from being recorded (E3): the hooks are installed, but refuse
   * every break-glass push (RECORDING_BLOCKED) until it is fixed. The CLI exits 1.
   */
  readonly problems: string[];
}

/** git in the repository (or in `cwd` to find it), through the one runner in src/git/. */
async function git(
  gitDir: string | null,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd?: string,
  input?: string,
) {
  const r = await runGit(gitDir ? { gitDir, env } : { cwd, env }, args, {
    allowFail: true,
    ...(input === undefined ? {} : { input }),
  });
  return { code: r.code, stdout: r.stdout.toString('utf8').trim(), stderr: r.stderr.trim() };
}

async function gitOk(
  gitDir: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  input?: string,
): Promise<string> {
  const r = await git(gitDir, args, env, undefined, input);
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
async function resolveGitDir(
  path: string,
  env: NodeJS.ProcessEnv,
): Promise<{ gitDir: string; bare: boolean }> {
  const abs = resolve(path);
  if (!statSync(abs, { throwIfNoEntry: false })?.isDirectory()) {
    throw new BreakglassError('USAGE', `${abs} is not a git repository (no such directory)`, {
      hint: 'create one with "git init --bare <dir>" or pass the path of an existing repository',
    });
  }
  const e: NodeJS.ProcessEnv = { ...env, GIT_CEILING_DIRECTORIES: dirname(abs) };
  delete e.GIT_DIR;
  delete e.GIT_WORK_TREE;
  const r = await git(null, ['rev-parse', '--absolute-git-dir', '--is-bare-repository'], e, abs);
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

/** The first commit of refs/notes/breakglass: no notes, an empty tree. */
const NOTES_ROOT_MESSAGE =
  'git-breakglass: audit notes start here\n\nCreated by bg-sign install-hooks, so that no other ref can take the name.\n';

/**
 * E3: creates refs/notes/breakglass (a commit with the empty tree and no notes) unless it
 * exists, so from now on git itself refuses any ref under or over it; reports refs that already
 * keep the recorder from writing notes or use records (they must go; the hook refuses
 * break-glass pushes while they exist). Returns the problems.
 */
async function prepareRecording(
  gitDir: string,
  env: NodeJS.ProcessEnv,
  actions: string[],
): Promise<string[]> {
  const blockers = await refsBlockingRecording({ gitDir, env });
  if (blockers.length) {
    return blockers.map(
      (ref) =>
        `${ref} keeps the server from recording break-glass pushes (it sits under or over ${REFS.notes} or ${REFS.consumed}<id>); break-glass pushes are refused until it is gone. Look at it (git --git-dir ${gitDir} log -1 ${ref}), keep a copy elsewhere if it matters, delete it (git --git-dir ${gitDir} update-ref -d ${ref}), then run install-hooks again`,
    );
  }
  const tip = await git(
    gitDir,
    ['rev-parse', '--verify', '--quiet', `${REFS.notes}^{commit}`],
    env,
  );
  if (tip.code === 0) return [];
  const any = await git(gitDir, ['rev-parse', '--verify', '--quiet', REFS.notes], env);
  if (any.code === 0) {
    return [
      `${REFS.notes} points to ${any.stdout.slice(0, 12)}, which is not a commit: the recorder can't add notes to it; point it at the last good notes commit (git update-ref ${REFS.notes} <commit>)`,
    ];
  }
  const ident = {
    ...env,
    GIT_AUTHOR_NAME: 'git-breakglass',
    GIT_AUTHOR_EMAIL: 'install-hooks',
    GIT_COMMITTER_NAME: 'git-breakglass',
    GIT_COMMITTER_EMAIL: 'install-hooks',
  };
  const tree = await gitOk(gitDir, ['hash-object', '-t', 'tree', '-w', '--stdin'], env, '');
  const commit = await gitOk(gitDir, ['commit-tree', tree, '-m', NOTES_ROOT_MESSAGE], ident);
  // `create`: only if still absent (a push may have recorded the first note meanwhile).
  const r = await git(
    gitDir,
    ['update-ref', '--stdin'],
    env,
    undefined,
    `create ${REFS.notes} ${commit}\n`,
  );
  if (r.code === 0) {
    actions.push(`created ${REFS.notes} (no notes yet), so no ref can take its name`);
  } else if (
    (await git(gitDir, ['rev-parse', '--verify', '--quiet', REFS.notes], env)).code !== 0
  ) {
    throw new BreakglassError('GIT_FAILED', `could not create ${REFS.notes}: ${r.stderr}`);
  }
  return [];
}

/**
 * Installs the shims into a repository's hooks directory and records the configuration.
 * Idempotent: our own shims are rewritten in place. A foreign hook is refused unless `chain`
 * (kept as `<hook>.chained` and run first) or `force` (replaced; a backup copy is kept).
 */
export async function installHooks(o: InstallOptions): Promise<InstallReport> {
  const env = o.env ?? process.env;
  const { gitDir, bare } = await resolveGitDir(o.gitDir, env);
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
    let bytes: Buffer;
    try {
      bytes = await readFile(policyPath);
    } catch {
      throw new BreakglassError('POLICY_MISSING', `policy file ${policyPath} can't be read`);
    }
    policyFromBytes(bytes, policyPath); // refuse to pin a policy the hook would reject
  }

  const hooksDir = resolve(gitDir, await gitOk(gitDir, ['rev-parse', '--git-path', 'hooks'], env));
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
    const current = await git(gitDir, ['config', '--get', key], env);
    if (current.code === 0 && current.stdout === value) continue;
    await gitOk(gitDir, ['config', key, value], env);
    actions.push(`set ${key} = ${value}`);
  }
  // PC3: git issues push-certificate nonces (and offers `push --signed`) only with a seed; an
  // existing seed is kept, so certificates in flight stay valid.
  const seed = await git(gitDir, ['config', '--get', 'receive.certNonceSeed'], env);
  if (seed.code !== 0 || !seed.stdout) {
    await gitOk(gitDir, ['config', 'receive.certNonceSeed', randomBytes(32).toString('hex')], env);
    actions.push('set receive.certNonceSeed (git push --signed)');
  }
  if (!policyPath) {
    const pinned = await git(gitDir, ['config', '--get', 'breakglass.policy'], env);
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
  const problems = await prepareRecording(gitDir, env, actions);
  return { gitDir, hooksDir, bare, actions, warnings, problems };
}
