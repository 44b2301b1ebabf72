// dist/bg-hook-full.cjs: the full hooks, loaded by the hook entry dist/bg-hook.cjs (hook-fast.ts)
// only when its fast path can't decide a push, and for post-receive when there is something to
// record. Built beside the entry from the same build (scripts/build.mjs).
import { writeFastPathCache, type CacheMiss, type PolicySource } from './fast-path.ts';

export const HOOKS = ['pre-receive', 'post-receive'] as const;
export type HookName = (typeof HOOKS)[number];

export interface HookRun {
  readonly gitDir: string;
  /** The reference time, taken once at the start of the process. */
  readonly now: number;
  /** stdin as the entry already read it; else the hook reads process.stdin. */
  readonly stdin?: Buffer;
  /** The fast path's cache was missing or stale: write it after the full hook ran. */
  readonly cacheMiss?: CacheMiss;
  /** The `breakglass.*` settings the shim handed over (absent: the hook asks git). */
  readonly settings?: readonly (readonly [string, string])[];
}

/** Protected ref patterns of a policy, as the full hook loads it (null: not cacheable). */
export async function protectedPatterns(): Promise<
  (policy: Buffer, source: PolicySource) => string[] | null
> {
  const { policyFromBytes } = await import('../policy/load.ts');
  return (bytes, source) => {
    // The one loader, as the full hook calls it (TM6 included for an in-repository policy): a
    // policy it refuses is never cached, so the fast path can't accept under it.
    const policy = policyFromBytes(
      bytes,
      'policy',
      source.kind === 'repo' ? { branch: source.branch } : {},
    );
    return policy.protected.flatMap((rule) => rule.refs.map((p) => p.source));
  };
}

/** Runs the full hook (after the fast path, if any); returns the exit code. */
export async function runHook(which: HookName, o: HookRun): Promise<number> {
  const common = {
    gitDir: o.gitDir,
    env: process.env,
    stdin: o.stdin ?? process.stdin,
    now: o.now,
    stdout: process.stdout,
    stderr: process.stderr,
  };
  if (which === 'post-receive') {
    const { runPostReceive } = await import('./post-receive.ts');
    return runPostReceive(common);
  }
  const { runPreReceive } = await import('./pre-receive.ts');
  const code = await runPreReceive({ ...common, ...(o.settings ? { settings: o.settings } : {}) });
  if (o.cacheMiss) writeFastPathCache(o.gitDir, o.cacheMiss, await protectedPatterns());
  return code;
}
