import fs from 'node:fs/promises';
import path from 'node:path';
import { BreakglassError, isBreakglassError } from '../errors.ts';
import { gitText, runGit, type CatFileBatch, type GitContext } from '../git/git.ts';
import { policyFromBytes, POLICY_PATH } from '../policy/load.ts';
import type { Policy } from '../policy/policy.ts';
import { MAX_POLICY_BYTES } from '../policy/yaml.ts';

/** Where the server's policy came from, or why there is none. */
export type PolicyLoad =
  | {
      readonly kind: 'policy';
      readonly policy: Policy;
      readonly source: string;
      /** The branch an in-repository policy is read from (absent for a pinned file). */
      readonly branch?: string;
    }
  /** An empty repository (no branches) and no pinned policy: the first push may bring one. */
  | { readonly kind: 'bootstrap'; readonly defaultRef: string }
  | { readonly kind: 'error'; readonly error: BreakglassError };

function asPolicyError(e: unknown, source: string): BreakglassError {
  if (isBreakglassError(e) && e.code === 'POLICY_INVALID') return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new BreakglassError('POLICY_INVALID', `${source}: ${msg}`);
}

async function loadPinned(gitDir: string, file: string): Promise<PolicyLoad> {
  const full = path.resolve(gitDir, file);
  let data: Buffer;
  try {
    const fh = await fs.open(full, 'r');
    try {
      // Read one byte past the limit so an oversized file is reported, not truncated.
      const buf = Buffer.alloc(MAX_POLICY_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      data = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (e) {
    return {
      kind: 'error',
      error: new BreakglassError(
        'POLICY_MISSING',
        `the pinned policy ${full} (git config breakglass.policy) can't be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      ),
    };
  }
  try {
    return { kind: 'policy', policy: policyFromBytes(data, full), source: full };
  } catch (e) {
    return { kind: 'error', error: asPolicyError(e, full) };
  }
}

/**
 * The branch HEAD names (`refs/heads/main`), or null when HEAD is detached (a detached HEAD
 * can't be moved by a push). Reads `$GIT_DIR/HEAD` directly (no process on the hot path);
 * asks git when the file is not a plain symbolic ref (reftable keeps `refs/heads/.invalid`).
 */
async function headBranch(ctx: GitContext & { gitDir: string }): Promise<string | null> {
  const text = await fs.readFile(path.join(ctx.gitDir, 'HEAD'), 'utf8').catch(() => '');
  const m = /^ref: (refs\/\S+)\n?$/.exec(text);
  if (m && m[1] !== 'refs/heads/.invalid') return m[1]!;
  if (/^[0-9a-f]{40,64}\n?$/.test(text)) return null;
  const ref = await gitText(ctx, ['symbolic-ref', '-q', 'HEAD'], { allowFail: true });
  return ref || null;
}

/**
 * The policy that governs a push (DESIGN §5): the pinned file if `breakglass.policy` is set,
 * else `.breakglass/policy.yml` at the tip of the default branch (HEAD's target) as it was before
 * this push — never from the pushed commits. Failures come back as values so the caller can fail
 * closed for protected refs and still let other refs through.
 */
export async function loadServerPolicy(
  ctx: GitContext & { gitDir: string },
  reader: CatFileBatch,
  pinnedFile: string | undefined,
): Promise<PolicyLoad> {
  if (pinnedFile) return loadPinned(ctx.gitDir, pinnedFile);
  const [head, blob] = await Promise.all([
    reader.read('HEAD^{commit}'),
    reader.read(`HEAD:${POLICY_PATH}`),
  ]);
  if (head) {
    const source = `${POLICY_PATH} at HEAD (${head.sha.slice(0, 12)})`;
    if (!blob) {
      return {
        kind: 'error',
        error: new BreakglassError(
          'POLICY_MISSING',
          `the default branch has no ${POLICY_PATH} (at ${head.sha.slice(0, 12)})`,
          {
            hint: `commit a policy to the default branch, or pin one: git config breakglass.policy FILE`,
          },
        ),
      };
    }
    if (blob.type !== 'blob') {
      return {
        kind: 'error',
        error: new BreakglassError('POLICY_INVALID', `${source} is a ${blob.type}, not a file`),
      };
    }
    // S2 (TM6): the policy must protect the branch it is read from; a detached HEAD can't be
    // moved by a push, so there is nothing to check then.
    const branch = await headBranch(ctx);
    let policy: Policy;
    try {
      policy = policyFromBytes(blob.data, POLICY_PATH, branch === null ? {} : { branch });
    } catch (e) {
      return { kind: 'error', error: asPolicyError(e, POLICY_PATH) };
    }
    return { kind: 'policy', policy, source, ...(branch === null ? {} : { branch }) };
  }
  // HEAD is unborn. Only a repository without any branch is a bootstrap; otherwise the default
  // branch is simply missing and nothing says what is protected.
  const defaultRef = await gitText(ctx, ['symbolic-ref', '-q', 'HEAD'], { allowFail: true });
  const anyBranch = await runGit(ctx, [
    'for-each-ref',
    '--count=1',
    '--format=%(refname)',
    'refs/heads/',
  ]);
  if (anyBranch.stdout.length === 0 && defaultRef.startsWith('refs/heads/')) {
    return { kind: 'bootstrap', defaultRef };
  }
  return {
    kind: 'error',
    error: new BreakglassError(
      'POLICY_MISSING',
      `HEAD points to ${defaultRef || 'nothing'}, which does not exist, so there is no policy to read`,
      {
        hint: 'point HEAD at the default branch (git symbolic-ref HEAD refs/heads/main) or pin a policy: git config breakglass.policy FILE',
      },
    ),
  };
}
