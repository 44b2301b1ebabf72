// dist/bg-hook.cjs, what the hook shims run:
// `node bg-hook.cjs hook pre-receive|post-receive [--git-config=<text>]`.
// CommonJS on purpose (DESIGN §9, within 1.3x of `node -e 0`): Node starts an ES module graph
// measurably slower than one CommonJS file, and a push that touches nothing protected is decided
// here by the fast path (fast-path.ts) without loading the policy parser, the ticket code or any
// git process. Anything else goes to the full hook, dist/bg-hook-full.cjs beside this file
// (hook-full.ts), loaded only then; it fails closed.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { settingsFromShim } from '../engine/triage.ts';
import { fastPreReceive, postReceiveIdle, readHookStdin, type FastResult } from './fast-path.ts';
import type * as Full from './hook-full.ts';

const HOOKS = ['pre-receive', 'post-receive'];
/** The shim's hand-over of `git config --get-regexp '^breakglass\.'` (engine/triage.ts). */
const SETTINGS_ARG = '--git-config=';

/** The hook and the settings text from the arguments, or null when they are wrong. */
function hookArgs(
  argv: readonly string[],
): { which: Full.HookName; settingsText: string | null } | null {
  const args = argv[0] === 'hook' ? argv.slice(1) : argv;
  const which = args[0] as Full.HookName;
  if (!HOOKS.includes(which)) return null;
  if (args.length === 1) return { which, settingsText: null };
  if (args.length === 2 && args[1]!.startsWith(SETTINGS_ARG)) {
    return { which, settingsText: args[1]!.slice(SETTINGS_ARG.length) };
  }
  return null;
}

function here(): string {
  // The bundle's own directory, symlinks resolved (as Node resolves the main module).
  return path.dirname(fs.realpathSync(process.argv[1] ?? ''));
}

async function main(argv: readonly string[]): Promise<number> {
  const parsed = hookArgs(argv);
  if (!parsed) {
    process.stderr.write('usage: bg-hook.cjs hook pre-receive|post-receive [--git-config=TEXT]\n');
    return 2;
  }
  const { which, settingsText } = parsed;
  const settings = settingsText === null ? null : settingsFromShim(settingsText);
  const gitDir = path.resolve(process.env.GIT_DIR ?? '.');
  const now = Date.now();
  const stdin = await readHookStdin();
  let fast: FastResult | undefined;
  if (which === 'pre-receive') {
    fast = await fastPreReceive(gitDir, process.env, stdin, settings);
    if (fast.decided) return fast.code;
  } else if (postReceiveIdle(gitDir)) {
    // Nothing journalled: the usual push; git's lines are read, leave.
    return 0;
  }
  // A variable specifier: esbuild leaves this import() to Node (a separate file of the build).
  const url = pathToFileURL(path.join(here(), 'bg-hook-full.cjs')).href;
  const full = (await import(url)) as typeof Full;
  return full.runHook(which, {
    gitDir,
    now,
    stdin,
    ...(settings ? { settings } : {}),
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
