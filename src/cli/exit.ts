import { BreakglassError, isBreakglassError } from '../errors.ts';
import type { Output } from './output.ts';

/** Exit codes: 0 success, 1 denied or invalid, 2 usage error. */
export const EXIT = { ok: 0, denied: 1, usage: 2 } as const;

// Errors raised while reading command-line values (a bad --ttl, --at, --ref): they keep their
// specific code but exit 2 like any other usage error.
const usageErrors = new WeakSet<Error>();

/** Marks an error as caused by a bad command-line value (exit 2). */
export function markUsage<E extends Error>(e: E): E {
  usageErrors.add(e);
  return e;
}

/** Runs a parser of a command-line value; its coded errors become usage errors. */
export function fromArg<T>(option: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (isBreakglassError(e)) {
      const message = e.message.startsWith(option) ? e.message : `${option}: ${e.message}`;
      throw markUsage(new BreakglassError(e.code, message, { hint: e.hint }));
    }
    throw e;
  }
}

/** Async form of fromArg, for values that need git to check (e.g. --commit). */
export async function fromArgAsync<T>(option: string, parse: () => Promise<T>): Promise<T> {
  try {
    return await parse();
  } catch (e) {
    return fromArg(option, () => {
      throw e;
    });
  }
}

/** A usage error from yargs (unknown option, missing argument). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The exit code for an error that reached the top. */
export function exitCodeFor(e: unknown): number {
  if (e instanceof UsageError) return EXIT.usage;
  if (isBreakglassError(e) && (e.code === 'USAGE' || usageErrors.has(e))) return EXIT.usage;
  return EXIT.denied;
}

/**
 * Prints an error: one line `bg-sign: CODE: message` (+ hint) for errors a user can act on,
 * a short line for anything unexpected, and the stack only with BG_DEBUG=1.
 */
export function reportError(
  e: unknown,
  output: Output,
  env: NodeJS.ProcessEnv,
  /** How the user invoked us and which command, for the usage hint. */
  invocation: readonly [string, string | undefined] = ['bg-sign', undefined],
): number {
  const s = output.errStyle;
  const debug = env.BG_DEBUG === '1';
  if (e instanceof UsageError) {
    output.err(`bg-sign: ${s.red('USAGE')}: ${oneLine(e.message)}`);
    const [name, command] = invocation;
    output.err(s.dim(`  run "${name} ${command ? command + ' ' : ''}-h" for usage`));
  } else if (isBreakglassError(e)) {
    output.err(`bg-sign: ${s.red(e.code)}: ${oneLine(e.message)}`);
    if (e.hint) output.err(s.dim(`  hint: ${oneLine(e.hint)}`));
    if (debug && e.stack) output.err(e.stack);
  } else {
    const message = e instanceof Error ? e.message : String(e);
    output.err(`bg-sign: ${s.red('unexpected error')}: ${oneLine(message)}`);
    if (debug && e instanceof Error && e.stack) output.err(e.stack);
    else output.err(s.dim('  set BG_DEBUG=1 for details'));
  }
  return exitCodeFor(e);
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' / ').slice(0, 2000);
}
