// dist/bg-hook.js (ESM): the full hooks, loaded by the CommonJS entry dist/bg-hook.cjs
// (hook-fast.ts) when its fast path can't decide a push, and the post-receive hook. It can also
// be run itself, `node bg-hook.js hook pre-receive|post-receive` (the same arguments as
// `bg-sign hook ...`), as shims installed before bg-hook.cjs existed do: then it runs the same
// fast path first. A separate bundle from the CLI because the hook runs on every push: it carries
// no CLI (yargs, commands), and the full hook code is imported lazily, in chunks
// (dist/hook-chunks/).
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  fastPreReceive,
  readHookStdin,
  writeFastPathCache,
  type CacheMiss,
  type PolicySource,
} from './fast-path.ts';

export const HOOKS = ['pre-receive', 'post-receive'] as const;
export type HookName = (typeof HOOKS)[number];

export interface HookRun {
  readonly gitDir: string;
  /** The reference time, taken once at the start of the process. */
  readonly now: number;
  /** stdin as the fast path already read it (pre-receive); else the hook reads process.stdin. */
  readonly stdin?: Buffer;
  /** The fast path's cache was missing or stale: write it after the full hook ran. */
  readonly cacheMiss?: CacheMiss;
}

/** The hook's arguments (`hook <name>` or `<name>`), or null when they are wrong. */
export function hookName(argv: readonly string[]): HookName | null {
  const args = argv[0] === 'hook' ? argv.slice(1) : argv;
  const which = args[0] as HookName;
  return args.length === 1 && HOOKS.includes(which) ? which : null;
}

/** The hook's repository (as hookGitDir in pre-receive.ts, not imported: it pulls in the hook). */
export function hookGitDir(env: NodeJS.ProcessEnv): string {
  return path.resolve(env.GIT_DIR ?? '.');
}

/** Protected ref patterns of a policy, as the full hook loads it (null: not cacheable). */
async function protectedPatterns(): Promise<
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
  const code = await runPreReceive(common);
  if (o.cacheMiss) writeFastPathCache(o.gitDir, o.cacheMiss, await protectedPatterns());
  return code;
}

/** `node bg-hook.js hook <name>`: the fast path, then the full hook when it can't decide. */
async function main(argv: readonly string[]): Promise<number> {
  const which = hookName(argv);
  if (!which) {
    process.stderr.write('usage: bg-hook.js hook pre-receive|post-receive\n');
    return 2;
  }
  const gitDir = hookGitDir(process.env);
  const now = Date.now();
  if (which === 'post-receive') return runHook(which, { gitDir, now });
  const stdin = await readHookStdin();
  const fast = await fastPreReceive(gitDir, process.env, stdin, now);
  if (fast.decided) return fast.code;
  return runHook(which, {
    gitDir,
    now,
    stdin,
    ...(fast.cacheMiss ? { cacheMiss: fast.cacheMiss } : {}),
  });
}

function isMain(): boolean {
  try {
    return import.meta.url === pathToFileURL(realpathSync(process.argv[1] ?? '')).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  const code = await main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(
      `git-breakglass: push rejected (fail closed): ${e instanceof Error ? e.message : String(e)}\n`,
    );
    return 1;
  });
  process.exitCode = code;
  // A git child stuck past the watchdog must not keep the push waiting: leave shortly after.
  setTimeout(() => process.exit(code), 2000).unref();
}
