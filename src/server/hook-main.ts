// Entry of dist/bg-hook.js: `node bg-hook.js hook pre-receive|post-receive` (the same arguments
// as `bg-sign hook ...`, so the shims run either). A separate bundle because the hook runs on
// every push and must start about as fast as Node itself (DESIGN §9): it carries no CLI (yargs,
// commands), and the full hook code is imported lazily, only when the fast path can't decide.
import path from 'node:path';
import { fastPreReceive, writeFastPathCache, type CacheKey } from './fast-path.ts';

const HOOKS = ['pre-receive', 'post-receive'];

/** Protected ref patterns of a policy, as the full hook would load it (null: not cacheable). */
async function protectedPatterns(): Promise<
  (policy: Buffer, source: CacheKey['source']) => string[] | null
> {
  const [{ parsePolicyBytes }, { protectionFor }] = await Promise.all([
    import('./policy-source.ts'),
    import('../policy/policy.ts'),
  ]);
  return (bytes, source) => {
    const policy = parsePolicyBytes(bytes, 'policy');
    // TM6: from the repository, the policy must protect its own branch, or the full hook
    // rejects every push; such a policy is never cached.
    if (source.kind === 'repo' && !protectionFor(policy, source.branch)) return null;
    return policy.protected.flatMap((rule) => rule.refs.map((p) => p.source));
  };
}

async function main(argv: readonly string[]): Promise<number> {
  const args = argv[0] === 'hook' ? argv.slice(1) : argv;
  const which = args[0];
  if (args.length !== 1 || !which || !HOOKS.includes(which)) {
    process.stderr.write('usage: bg-hook.js hook pre-receive|post-receive\n');
    return 2;
  }
  // As hookGitDir in pre-receive.ts (not imported: that module pulls in the whole hook).
  const gitDir = path.resolve(process.env.GIT_DIR ?? '.');
  if (which === 'post-receive') {
    const { runPostReceive } = await import('./post-receive.ts');
    return runPostReceive({
      gitDir,
      env: process.env,
      stdin: process.stdin,
      now: Date.now(),
      stdout: process.stdout,
      stderr: process.stderr,
    });
  }
  const now = Date.now();
  const fast = await fastPreReceive(gitDir, process.env, process.stdin);
  if (fast.decided) return fast.code;
  const { runPreReceive } = await import('./pre-receive.ts');
  const code = await runPreReceive({
    gitDir,
    env: process.env,
    // The fast path consumed stdin (all of it, or past the limit, which the full hook refuses).
    stdin: fast.stdin,
    now,
    stdout: process.stdout,
    stderr: process.stderr,
  });
  if (fast.cacheMiss) await writeFastPathCache(gitDir, fast.cacheMiss, await protectedPatterns());
  return code;
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
// A git child stuck past the watchdog must not keep the push waiting: leave shortly after.
setTimeout(() => process.exit(code), 2000).unref();
