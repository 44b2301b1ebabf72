import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BreakglassError } from '../errors.ts';
import { runGit, type GitContext } from '../git/git.ts';
import { parsePolicy, type Policy } from '../policy/policy.ts';
import type { Cli } from './options.ts';
import { workTreeRoot } from './repo.ts';

export const POLICY_PATH = '.breakglass/policy.yml';
const MAX_POLICY_BYTES = 256 * 1024;

/** A policy and a sentence saying where it came from (shown with --verbose). */
export interface LoadedPolicy {
  readonly policy: Policy;
  readonly source: string;
}

/**
 * The policy the CLI checks against: `--policy FILE`, else `.breakglass/policy.yml` at the tip
 * of the remote's default branch (what the server will enforce), else the working tree file.
 */
export async function loadPolicy(
  ctx: GitContext,
  opts: { file?: string | undefined; remote: string; cwd: string },
): Promise<LoadedPolicy> {
  if (opts.file) {
    const path = resolve(opts.cwd, opts.file);
    return { policy: parsePolicy(await readPolicyFile(path), path), source: `--policy ${path}` };
  }
  for (const branch of await defaultBranchCandidates(ctx, opts.remote)) {
    const blob = await runGit(ctx, ['cat-file', 'blob', `${branch}:${POLICY_PATH}`], {
      allowFail: true,
    });
    if (blob.code === 0) {
      if (blob.stdout.length > MAX_POLICY_BYTES) {
        throw new BreakglassError('INPUT_TOO_LARGE', `${branch}:${POLICY_PATH} is too large`);
      }
      const source = `${branch}:${POLICY_PATH}`;
      return {
        policy: parsePolicy(blob.stdout.toString('utf8'), source),
        source: `${source} (tip of the remote's default branch)`,
      };
    }
  }
  const root = await workTreeRoot(ctx);
  if (root) {
    const path = join(root, POLICY_PATH);
    const exists = await stat(path).then(
      (s) => s.isFile(),
      () => false,
    );
    if (exists) {
      return {
        policy: parsePolicy(await readPolicyFile(path), POLICY_PATH),
        source: `${path} (working tree; no policy found on ${opts.remote})`,
      };
    }
  }
  throw new BreakglassError('POLICY_MISSING', `no ${POLICY_PATH} found`, {
    hint: `looked at ${opts.remote}'s default branch and the working tree; pass --policy FILE or fetch ${opts.remote}`,
  });
}

/** `refs/remotes/<remote>/HEAD`'s target if set, else `<remote>/main`. */
async function defaultBranchCandidates(ctx: GitContext, remote: string): Promise<string[]> {
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/.test(remote)) return [];
  const head = await runGit(ctx, ['symbolic-ref', '--quiet', `refs/remotes/${remote}/HEAD`], {
    allowFail: true,
  });
  const target = head.stdout.toString().trim();
  if (head.code === 0 && target.startsWith(`refs/remotes/${remote}/`)) return [target];
  return [`refs/remotes/${remote}/main`];
}

async function readPolicyFile(path: string): Promise<string> {
  try {
    const st = await stat(path);
    if (st.size > MAX_POLICY_BYTES) {
      throw new BreakglassError(
        'INPUT_TOO_LARGE',
        `${path} is ${st.size} bytes; the limit is ${MAX_POLICY_BYTES}`,
      );
    }
    return await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof BreakglassError) throw e;
    throw new BreakglassError(
      'POLICY_MISSING',
      `cannot read policy ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

/** The policy a command checks against (its --policy/--remote options); --verbose says which. */
export async function loadCommandPolicy(
  cli: Cli,
  ctx: GitContext,
  argv: { policy?: string | undefined; remote: string },
): Promise<Policy> {
  const { policy, source } = await loadPolicy(ctx, {
    file: argv.policy,
    remote: argv.remote,
    cwd: cli.cwd,
  });
  cli.note(`policy: ${source}`);
  return policy;
}
