// dist/bg-hook.cjs, what the hook shims run: `node bg-hook.cjs hook pre-receive|post-receive`.
// CommonJS on purpose (DESIGN §9, within 1.3x of `node -e 0`): Node starts an
// ES module graph measurably slower than one CommonJS file, and a push that touches nothing
// protected is decided here from the fast path's cache (fast-path.ts, FP1-FP4) without loading
// the policy parser, the ticket code or any git process. Anything else goes to the full hook in
// dist/bg-hook.js beside this file (hook-main.ts), which fails closed.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { fastPreReceive, postReceiveIdle, readHookStdin, type FastResult } from './fast-path.ts';
import type * as Full from './hook-main.ts';

const HOOKS = ['pre-receive', 'post-receive'];

function here(): string {
  // The bundle's own directory, symlinks resolved (as Node resolves the main module).
  return path.dirname(fs.realpathSync(process.argv[1] ?? ''));
}

async function main(argv: readonly string[]): Promise<number> {
  const args = argv[0] === 'hook' ? argv.slice(1) : argv;
  const which = args[0] as Full.HookName;
  if (args.length !== 1 || !HOOKS.includes(which)) {
    process.stderr.write('usage: bg-hook.cjs hook pre-receive|post-receive\n');
    return 2;
  }
  const gitDir = path.resolve(process.env.GIT_DIR ?? '.');
  const now = Date.now();
  let stdin: Buffer | undefined;
  let fast: FastResult | undefined;
  if (which === 'pre-receive') {
    stdin = await readHookStdin();
    fast = await fastPreReceive(gitDir, process.env, stdin, now);
    if (fast.decided) return fast.code;
  } else {
    // Nothing journalled: the usual push; read git's lines and leave.
    stdin = await readHookStdin();
    if (postReceiveIdle(gitDir)) return 0;
  }
  // A variable specifier: esbuild leaves this import() to Node (bg-hook.js is a separate bundle).
  const url = pathToFileURL(path.join(here(), 'bg-hook.js')).href;
  const full = (await import(url)) as typeof Full;
  return full.runHook(which, {
    gitDir,
    now,
    ...(stdin ? { stdin } : {}),
    ...(fast && !fast.decided && fast.cacheMiss ? { cacheMiss: fast.cacheMiss } : {}),
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // A git child stuck past the watchdog must not keep the push waiting: leave shortly after.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (e: unknown) => {
    // Fail closed: pre-receive refuses the push; post-receive's journal keeps the events.
    process.stderr.write(
      `git-breakglass: hook failed, push refused if not yet accepted (run: bg-sign audit flush): ${e instanceof Error ? e.message : String(e)}\n`,
    );
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 2000).unref();
  },
);
