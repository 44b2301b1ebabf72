// Is this push ours to judge, or must it be refused before any policy-specific decision? The
// ordered checks both hook entries run: the fast path (server/fast-path.ts, answering from its
// cache) and the full hook (server/pre-receive.ts, answering from git). They differ only in
// where the facts come from (TriageSources); the checks, their order and the limits are here
// once. A source that can't tell cheaply answers null and the triage says `unsure`: only the
// fast path does that, and then hands the push to the full hook.
import { BreakglassError } from '../errors.ts';
import { parseDuration } from '../policy/duration.ts';
import { isValidRefName } from '../policy/refs.ts';
import { TICKET_ID } from '../ticket/id.ts';
import type { Failure } from './evaluate.ts';
import { guardOf } from './guard.ts';

// TM12: bounds on everything git hands the hook, checked before anything is interpreted.
export const MAX_STDIN_BYTES = 1024 * 1024;
export const MAX_UPDATE_LINES = 10_000;
export const MAX_PUSH_OPTIONS = 100;
export const MAX_PUSH_OPTION_BYTES = 1024;
export const MAX_TICKET_OPTIONS = 16;
/** The shim's `breakglass.*` settings hand-over; larger, the hook asks git itself. */
export const MAX_SETTINGS_BYTES = 64 * 1024;
export const DEFAULT_TIMEOUT_MS = 20_000;

/** One line of a hook's stdin: `<old> <new> <ref>`. */
export interface UpdateLine {
  readonly ref: string;
  readonly oldSha: string;
  readonly newSha: string;
}

const LINE = /^([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) (\S+)$/;
const ZERO = /^0+$/;

/** Parses and validates the update lines; anything malformed is an error, never skipped. */
export function parseUpdateLines(text: string): UpdateLine[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.length > MAX_UPDATE_LINES) {
    throw new BreakglassError(
      'INPUT_TOO_LARGE',
      `push updates ${lines.length} refs; the limit is ${MAX_UPDATE_LINES}`,
    );
  }
  const seen = new Set<string>();
  return lines.map((line, i) => {
    const m = LINE.exec(line);
    if (m && m[1]!.length === m[2]!.length && !isValidRefName(m[3]!)) {
      // Names no policy pattern could match (e.g. over 255 characters) must not pass as
      // unprotected: the whole push is refused.
      throw new BreakglassError(
        'REF_INVALID',
        `"${m[3]!.slice(0, 80)}${m[3]!.length > 80 ? '...' : ''}" is not a ref name this server accepts (at most 255 characters, git's naming rules)`,
      );
    }
    if (!m || m[1]!.length !== m[2]!.length) {
      throw new BreakglassError(
        'HOOK_FAILED',
        `hook input line ${i + 1} is not "<old> <new> <ref>": ${JSON.stringify(line.slice(0, 120))}`,
      );
    }
    if (seen.has(m[3]!)) {
      throw new BreakglassError('HOOK_FAILED', `hook input names ${m[3]} twice`);
    }
    seen.add(m[3]!);
    return { oldSha: m[1]!, newSha: m[2]!, ref: m[3]! };
  });
}

// TM11: push options are client text; only a well-formed ticket id is taken, never a path.
/**
 * Ticket ids named with `git push -o breakglass=<id>` (GIT_PUSH_OPTION_COUNT and
 * GIT_PUSH_OPTION_<n>). Other options belong to other tools and are ignored; a malformed
 * `breakglass` option, too many options or an oversized one is PUSH_OPTION_INVALID.
 */
export function parsePushOptions(env: Readonly<Record<string, string | undefined>>): string[] {
  const countText = env.GIT_PUSH_OPTION_COUNT;
  if (countText === undefined || countText === '') return [];
  if (!/^\d{1,4}$/.test(countText)) {
    throw new BreakglassError('PUSH_OPTION_INVALID', 'GIT_PUSH_OPTION_COUNT is not a number');
  }
  const count = Number(countText);
  if (count > MAX_PUSH_OPTIONS) {
    throw new BreakglassError(
      'PUSH_OPTION_INVALID',
      `${count} push options; at most ${MAX_PUSH_OPTIONS} are accepted`,
    );
  }
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const value = env[`GIT_PUSH_OPTION_${i}`] ?? '';
    if (Buffer.byteLength(value) > MAX_PUSH_OPTION_BYTES) {
      throw new BreakglassError(
        'PUSH_OPTION_INVALID',
        `push option ${i + 1} is longer than ${MAX_PUSH_OPTION_BYTES} bytes`,
      );
    }
    const eq = value.indexOf('=');
    const key = eq < 0 ? value : value.slice(0, eq);
    if (key.trim().toLowerCase() !== 'breakglass') continue;
    const id = eq < 0 ? '' : value.slice(eq + 1);
    if (!TICKET_ID.test(id)) {
      throw new BreakglassError(
        'PUSH_OPTION_INVALID',
        `push option ${JSON.stringify(value.slice(0, 80))} does not name a ticket id`,
        {
          hint: 'use git push -o breakglass=<ticket id>, e.g. -o breakglass=20261129T031200Z-7f3a9c',
        },
      );
    }
    if (!ids.includes(id)) ids.push(id);
  }
  if (ids.length > MAX_TICKET_OPTIONS) {
    throw new BreakglassError(
      'PUSH_OPTION_INVALID',
      `${ids.length} tickets named; at most ${MAX_TICKET_OPTIONS}`,
    );
  }
  return ids;
}

/** `git config breakglass.identity` (server/identity.ts says what each means). */
export type IdentityMode = 'auto' | 'unix' | 'none';

/** Parses the `breakglass.identity` setting; anything unknown is an error (fail closed). */
export function parseIdentityMode(value: string | undefined): IdentityMode | null {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'unix' || value === 'none') return value;
  return null;
}

/** Server settings from `git config breakglass.*` (any scope git reads, includes, `-c`). */
export interface ServerSettings {
  /** Pinned policy file (`breakglass.policy`); wins over the one in the repository. */
  readonly policyFile: string | undefined;
  readonly identity: IdentityMode;
  /** Watchdog for pre-receive (`breakglass.timeout`, default 20s). */
  readonly timeoutMs: number;
}

/**
 * The `breakglass.*` settings that may also come from the environment, and their variables (for
 * hook environments with no git config of their own: GHES, GitLab's Gitaly; the server bundle's
 * shims export the defaults baked into them there).
 */
export const CONFIG_ENV_VARIABLES = {
  'breakglass.policy': 'BREAKGLASS_POLICY',
  'breakglass.identity': 'BREAKGLASS_IDENTITY',
  'breakglass.timeout': 'BREAKGLASS_TIMEOUT',
} as const;

/** True when any setting comes from the environment. */
export function configFromEnv(env: NodeJS.ProcessEnv): boolean {
  return Object.values(CONFIG_ENV_VARIABLES).some((name) => !!env[name]);
}

/**
 * The settings from git's `breakglass.*` entries, in git's order (the last one wins), each else
 * from its environment variable (CONFIG_ENV_VARIABLES), else the built-in default. A bad value
 * refuses (fail closed) and names where it came from.
 */
export function parseSettings(
  entries: readonly (readonly [string, string])[],
  env: NodeJS.ProcessEnv = {},
): ServerSettings {
  const values = new Map(entries.map(([k, v]) => [k.toLowerCase(), v]));
  const setting = (key: keyof typeof CONFIG_ENV_VARIABLES) => {
    const fromGit = values.get(key);
    if (fromGit !== undefined) return { value: fromGit, where: `git config ${key}` };
    const name = CONFIG_ENV_VARIABLES[key];
    const fromEnv = env[name];
    return fromEnv !== undefined && fromEnv !== ''
      ? { value: fromEnv, where: `environment variable ${name}` }
      : undefined;
  };
  const id = setting('breakglass.identity');
  const identity = parseIdentityMode(id?.value);
  if (!identity) {
    throw new BreakglassError(
      'HOOK_FAILED',
      `${id!.where} is "${id!.value.slice(0, 40)}"; use auto, unix or none`,
    );
  }
  const timeout = setting('breakglass.timeout');
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (timeout !== undefined) {
    timeoutMs = /^\d{1,4}$/.test(timeout.value)
      ? Number(timeout.value) * 1000
      : parseDuration(timeout.value, timeout.where);
    if (timeoutMs <= 0 || timeoutMs > 600_000) {
      throw new BreakglassError('HOOK_FAILED', `${timeout.where} must be 1s..10m`);
    }
  }
  const policyFile = setting('breakglass.policy')?.value || undefined;
  return { policyFile, identity, timeoutMs };
}

/** The entries of `git config -z --get-regexp` output (key, newline, value, NUL), in order. */
export function settingsFromGit(out: string): [string, string][] {
  const entries: [string, string][] = [];
  for (const item of out.split('\0')) {
    if (!item) continue;
    const nl = item.indexOf('\n');
    const key = (nl < 0 ? item : item.slice(0, nl)).toLowerCase();
    entries.push([key, nl < 0 ? '' : item.slice(nl + 1)]);
  }
  return entries;
}

const SHIM_ENTRY = /^(breakglass\.[a-z][a-z0-9-]*)(?: (.*))?$/;

/**
 * The settings the hook shim handed over: the output of its one
 * `git config --get-regexp '^breakglass\.'` followed by a line with git's exit status. Null when
 * that text can't say exactly what git read (git failed, a value spans lines, a subsection, too
 * large): then the hook asks git itself (`git config -z`).
 */
export function settingsFromShim(text: string): [string, string][] | null {
  if (text.length > MAX_SETTINGS_BYTES) return null;
  const lines = text.split('\n');
  const status = lines.pop();
  // 1: no such settings (and no output); anything else: git could not read its configuration.
  if (status === '1') return lines.length === 0 ? [] : null;
  if (status !== '0' || lines.length === 0) return null;
  const entries: [string, string][] = [];
  for (const line of lines) {
    const m = SHIM_ENTRY.exec(line);
    if (!m) return null;
    entries.push([m[1]!, m[2] ?? '']);
  }
  return entries;
}

/** What the policy that governs this push says about its refs. */
export type PolicyView =
  | { readonly kind: 'policy'; readonly protects: (ref: string) => boolean }
  /** An empty repository and no pinned policy: the first push may bring one (pre-receive.ts). */
  | { readonly kind: 'bootstrap'; readonly defaultRef: string }
  | { readonly kind: 'error'; readonly error: BreakglassError };

/** Where the facts come from; null means "can't tell cheaply" (the fast path only). */
export interface TriageSources {
  /** The `breakglass.*` settings as git reads them, in git's order. */
  settings(): Promise<readonly (readonly [string, string])[] | null>;
  /** The policy, found with the parsed settings. */
  policy(settings: ServerSettings): Promise<PolicyView | null>;
  /** Which of the pushed refs are symbolic refs on the server, with their final targets. */
  symbolicRefs(refs: readonly string[]): Promise<ReadonlyMap<string, string> | null>;
}

/** One pushed ref refused outright, with its failure and what to do instead. */
export type RefRefusal = Failure & { readonly ref: string; readonly fix: string };

export type Triage =
  /** Nothing here is this tool's business: the push is accepted. */
  | { readonly kind: 'accept' }
  /** The whole push is refused for one reason. */
  | {
      readonly kind: 'refuse';
      readonly error: BreakglassError;
      readonly lines: readonly UpdateLine[];
    }
  /** Refs refused outright, each for its own reason. */
  | { readonly kind: 'refuse-refs'; readonly refused: readonly RefRefusal[] }
  /** The first push into an empty repository (pre-receive.ts decides it). */
  | {
      readonly kind: 'bootstrap';
      readonly lines: readonly UpdateLine[];
      readonly defaultRef: string;
    }
  /** Guarded or protected refs: the full hook judges them under the policy. */
  | {
      readonly kind: 'judge';
      readonly lines: readonly UpdateLine[];
      readonly settings: ServerSettings;
      readonly optionIds: readonly string[];
      /** Evidence refs (N1-N8). */
      readonly guarded: readonly UpdateLine[];
      /** Refs the policy protects (and not guarded). */
      readonly protected: readonly UpdateLine[];
    }
  /** A source could not tell: the full hook must decide. */
  | { readonly kind: 'unsure' };

const UNSURE: Triage = { kind: 'unsure' };

function coded(e: unknown): BreakglassError {
  if (e instanceof BreakglassError) return e;
  throw e;
}

/** N9, N10 (engine/guard.ts): names refused whatever the policy says. */
function refusedByName(lines: readonly UpdateLine[]): RefRefusal[] {
  return lines.flatMap((l): RefRefusal[] => {
    const guard = guardOf(l.ref);
    if (guard === 'replace') {
      return [
        {
          ref: l.ref,
          code: 'NAMESPACE_VIOLATION',
          rule: 'N9',
          message:
            'replace refs would change what every reader sees as the history and content of protected branches',
          fix: 'replace refs are not accepted by push; a server admin can create one on the server',
        },
      ];
    }
    // Deleting such a ref only makes recording possible again.
    if (guard === 'blocks-recording' && !ZERO.test(l.newSha)) {
      return [
        {
          ref: l.ref,
          code: 'NAMESPACE_VIOLATION',
          rule: 'N10',
          message:
            'this name would keep the server from writing refs/notes/breakglass or refs/breakglass/consumed/<id> (git refs are paths: one cannot sit under or over another), so break-glass pushes could no longer be recorded',
          fix: 'use another ref name',
        },
      ];
    }
    return [];
  });
}

/**
 * The ordered checks (TM12, TM11, settings, N9, N10, the policy incl. TM6, TM9, then the refs
 * that are ours): the first that refuses decides. `stdin` is the hook's input as read, up to one
 * byte past MAX_STDIN_BYTES.
 */
export async function triage(
  stdin: Buffer,
  env: Readonly<Record<string, string | undefined>>,
  sources: TriageSources,
): Promise<Triage> {
  // TM12: bounded, strictly parsed input.
  let lines: UpdateLine[];
  try {
    if (stdin.length > MAX_STDIN_BYTES) {
      throw new BreakglassError(
        'INPUT_TOO_LARGE',
        `hook input is larger than ${MAX_STDIN_BYTES} bytes`,
      );
    }
    lines = parseUpdateLines(stdin.toString('utf8'));
  } catch (e) {
    return { kind: 'refuse', error: coded(e), lines: [] };
  }
  if (lines.length === 0) return { kind: 'accept' };

  // Settings as git reads them; a bad value refuses every push (fail closed).
  const entries = await sources.settings();
  if (!entries) return UNSURE;
  let settings: ServerSettings;
  let optionIds: string[];
  try {
    settings = parseSettings(entries, env);
    optionIds = parsePushOptions(env); // TM11
  } catch (e) {
    return { kind: 'refuse', error: coded(e), lines };
  }

  const byName = refusedByName(lines);
  if (byName.length) return { kind: 'refuse-refs', refused: byName };

  const policy = await sources.policy(settings);
  if (!policy) return UNSURE;
  if (policy.kind === 'error') return { kind: 'refuse', error: policy.error, lines };
  if (policy.kind === 'bootstrap')
    return { kind: 'bootstrap', lines, defaultRef: policy.defaultRef };

  // TM9: git moves a symbolic ref's target; an alias of a protected or guarded ref (or of
  // something that is no ref) is refused outright: push the real ref, where the rules apply.
  const aliases = await sources.symbolicRefs(lines.map((l) => l.ref));
  if (!aliases) return UNSURE;
  const viaAlias = lines.flatMap((l): RefRefusal[] => {
    const target = aliases.get(l.ref);
    if (target === undefined) return [];
    if (/^refs\//.test(target) && guardOf(target) === null && !policy.protects(target)) return [];
    return [
      {
        ref: l.ref,
        code: 'SYMBOLIC_REF',
        rule: 'TM9',
        message: `${l.ref} is a symbolic ref to ${target} on the server; the update would move ${target}`,
        fix: `push ${target} itself`,
      },
    ];
  });
  if (viaAlias.length) return { kind: 'refuse-refs', refused: viaAlias };

  const guarded = lines.filter((l) => guardOf(l.ref) === 'evidence');
  const protectedLines = lines.filter(
    (l) => guardOf(l.ref) !== 'evidence' && policy.protects(l.ref),
  );
  if (guarded.length === 0 && protectedLines.length === 0) return { kind: 'accept' };
  return { kind: 'judge', lines, settings, optionIds, guarded, protected: protectedLines };
}
