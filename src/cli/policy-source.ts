import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BreakglassError } from '../errors.ts';
import { runGit, type GitContext } from '../git/git.ts';
import { MAX_POLICY_BYTES } from '../policy/limits.ts';
import { policyFromBytes, POLICY_PATH } from '../policy/load.ts';
import type { Policy } from '../policy/policy.ts';
import type { Cli } from './options.ts';
import { fetchHint, workTreeRoot } from './repo.ts';

/** A policy and a sentence saying where it came from (shown with --verbose). */
export interface LoadedPolicy {
  readonly policy: Policy;
  readonly source: string;
}

/**
 * The policy the CLI checks against: `--policy FILE`, else `.breakglass/policy.yml` at the tip
 * of the remote's default branch (what the server will enforce), else the working tree file,
 * which is not what the server enforces: `warn` says so. Only finds bytes; policyFromBytes
 * decides, as on the server.
 */
export async function loadPolicy(
  ctx: GitContext,
  opts: {
    file?: string | undefined;
    remote: string;
    cwd: string;
    warn: (text: string) => void;
  },
): Promise<LoadedPolicy> {
  if (opts.file) {
    const path = resolve(opts.cwd, opts.file);
    const bytes = (await readPolicyFile(path))!;
    return { policy: policyFromBytes(bytes, path), source: `--policy ${path}` };
  }
  for (const branch of await defaultBranchCandidates(ctx, opts.remote)) {
    const blob = await runGit(ctx, ['cat-file', 'blob', `${branch}:${POLICY_PATH}`], {
      allowFail: true,
    });
    if (blob.code === 0) {
      const source = `${branch}:${POLICY_PATH}`;
      // Checked as the server checks it: the policy must protect the branch it is read from.
      const served = `refs/heads/${branch.slice(`refs/remotes/${opts.remote}/`.length)}`;
      return {
        policy: policyFromBytes(blob.stdout, source, { branch: served }),
        source: `${source} (tip of the remote's default branch)`,
      };
    }
  }
  const root = await workTreeRoot(ctx);
  if (root) {
    const path = join(root, POLICY_PATH);
    const bytes = await readPolicyFile(path, true);
    if (bytes) {
      const policy = policyFromBytes(bytes, POLICY_PATH);
      opts.warn(
        `warning: no ${POLICY_PATH} on ${opts.remote}'s default branch; using the working tree's, which the server does not enforce (run "git fetch ${opts.remote}" or pass --policy FILE)`,
      );
      return { policy, source: `${path} (working tree; no policy found on ${opts.remote})` };
    }
  }
  throw new BreakglassError('POLICY_MISSING', `no ${POLICY_PATH} found`, {
    hint: `looked at ${opts.remote}'s default branch and the working tree; pass --policy FILE, or ${await fetchHint(ctx, opts.remote)}`,
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

/**
 * A policy file's bytes, read to one byte past the limit so policyFromBytes reports the size;
 * null when there is no such file and `missingOk`.
 */
async function readPolicyFile(path: string, missingOk = false): Promise<Buffer | null> {
  try {
    const fh = await open(path, 'r');
    try {
      if (!(await fh.stat()).isFile()) {
        throw new BreakglassError('POLICY_MISSING', `cannot read policy ${path}: not a file`);
      }
      const buf = Buffer.alloc(MAX_POLICY_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof BreakglassError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (missingOk && code === 'ENOENT') return null;
    throw new BreakglassError(
      'POLICY_MISSING',
      `cannot read policy ${path}: ${code ?? (e as Error).message}`,
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
    warn: (text) => cli.output.err(cli.output.errStyle.yellow(text)),
  });
  cli.note(`policy: ${source}`);
  return policy;
}
