import type { CommandModule } from 'yargs';
import { BreakglassError } from '../errors.ts';
import { parseDuration } from '../policy/duration.ts';
import { compileRefPattern, isValidRefName, normalizeRefPattern } from '../policy/refs.ts';
import { ACTIONS, TICKET_ID, type Action } from '../ticket/payload.ts';
import { parseTime } from '../ticket/time.ts';
import { fromArg } from './exit.ts';
import { processOutput, type Output } from './output.ts';

/**
 * Declares a command module. The cast erases the argument type so every module fits one array
 * (yargs checks the arguments at run time; the handler's own type is checked here).
 */
export function defineCommand<U>(module: CommandModule<GlobalArgs, U>): CommandModule {
  return module as unknown as CommandModule;
}

/** Options main.ts defines for every command. */
export interface GlobalArgs {
  readonly verbose: boolean;
}

/** What every command handler gets from the process (IO is kept at this edge). */
export interface Cli {
  readonly output: Output;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly verbose: boolean;
  /** Prints a line to stderr only with --verbose. */
  note(text: string): void;
}

/** The process's IO for one command run. */
export function cliFor(argv: GlobalArgs): Cli {
  const output = processOutput(process.env);
  const verbose = argv.verbose === true;
  return {
    output,
    env: process.env,
    cwd: process.cwd(),
    verbose,
    note: (text) => {
      if (verbose) output.err(output.errStyle.dim(text));
    },
  };
}

export const keyOption = {
  key: {
    type: 'string',
    requiresArg: true,
    describe:
      'private key file (default: $BG_SIGN_KEY, else $XDG_CONFIG_HOME/breakglass/ed25519.key)',
  },
} as const;

export const policyOption = {
  policy: {
    type: 'string',
    requiresArg: true,
    describe:
      "policy file (default: .breakglass/policy.yml on the remote's default branch, else the working tree)",
  },
} as const;

export const remoteOption = {
  remote: { type: 'string', default: 'origin', requiresArg: true, describe: 'remote to use' },
} as const;

export const pushOption = {
  push: { type: 'boolean', default: false, describe: 'push the result to the remote right away' },
} as const;

export const jsonOption = {
  json: { type: 'boolean', default: false, describe: 'print JSON instead of text' },
} as const;

export const atOption = {
  at: { type: 'string', requiresArg: true, describe: 'status as of this time (RFC 3339 UTC)' },
} as const;

/** A ticket id positional, checked before anything else happens. */
export function parseTicketIdArg(id: unknown): string {
  const text = String(id ?? '');
  if (!TICKET_ID.test(text)) {
    throw new BreakglassError(
      'USAGE',
      `"${text.slice(0, 80)}" is not a ticket id (expected e.g. 20261129T031200Z-7f3a9c)`,
    );
  }
  return text;
}

/** `--ttl 15m` as milliseconds. */
export function parseDurationArg(option: string, text: unknown): number {
  return fromArg(option, () => parseDuration(text, option));
}

/** `--at 2026-11-29T03:12:00Z` as epoch milliseconds. */
export function parseTimeArg(option: string, text: unknown): number {
  return fromArg(option, () => parseTime(text, option));
}

/** The reference time of a command: `--at` when given, else `clock` (read once, at the edge). */
export function referenceTime(at: unknown, clock: number): number {
  return at === undefined ? clock : parseTimeArg('--at', at);
}

/** A ref scope entry: bare names mean `refs/heads/<name>`; patterns (`*`, `**`) allowed. */
export function parseRefPatternArg(option: string, text: unknown): string {
  return fromArg(option, () => compileRefPattern(text, option).source);
}

/** A concrete ref (no patterns): bare names mean `refs/heads/<name>`. */
export function parseRefArg(option: string, text: unknown): string {
  return fromArg(option, () => {
    const ref = normalizeRefPattern(String(text ?? ''));
    if (!isValidRefName(ref)) {
      throw new BreakglassError(
        'REF_INVALID',
        `${option}: "${String(text).slice(0, 80)}" is not a valid ref name`,
      );
    }
    return ref;
  });
}

/** Actions, validated against the closed list. */
export function parseActionsArg(option: string, values: readonly unknown[]): Action[] {
  return values.map((v) => {
    if (!(ACTIONS as readonly unknown[]).includes(v)) {
      throw new BreakglassError(
        'USAGE',
        `${option}: "${String(v).slice(0, 40)}" is not an action (${ACTIONS.join(', ')})`,
      );
    }
    return v as Action;
  });
}

/** Normalises a repeatable option to a list of strings. */
export function list(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}
