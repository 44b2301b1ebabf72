import { BreakglassError } from '../errors.ts';
import { isValidRefName } from '../policy/refs.ts';
import { TICKET_ID } from '../ticket/payload.ts';

// TM12: bounds on everything git hands the hook, checked before anything is interpreted.
export const MAX_STDIN_BYTES = 1024 * 1024;
export const MAX_UPDATE_LINES = 10_000;
export const MAX_PUSH_OPTIONS = 100;
export const MAX_PUSH_OPTION_BYTES = 1024;
export const MAX_TICKET_OPTIONS = 16;

/** One line of a hook's stdin: `<old> <new> <ref>`. */
export interface UpdateLine {
  readonly ref: string;
  readonly oldSha: string;
  readonly newSha: string;
}

export type HookInput = string | Buffer | AsyncIterable<Buffer | string>;

/** Reads all of a hook's stdin, refusing more than `limit` bytes. */
export async function readBounded(input: HookInput, limit = MAX_STDIN_BYTES): Promise<string> {
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    const buf = typeof input === 'string' ? Buffer.from(input) : input;
    if (buf.length > limit) throw tooLarge(limit);
    return buf.toString('utf8');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function tooLarge(limit: number): BreakglassError {
  return new BreakglassError('INPUT_TOO_LARGE', `hook input is larger than ${limit} bytes`);
}

const LINE = /^([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) (\S+)$/;

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
export function parsePushOptions(env: NodeJS.ProcessEnv): string[] {
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
