import { BreakglassError } from '../errors.ts';
import { MAX_STDIN_BYTES } from '../engine/triage.ts';

// The limits and parsers live with the triage both hook entries run (engine/triage.ts).
export {
  MAX_PUSH_OPTION_BYTES,
  MAX_PUSH_OPTIONS,
  MAX_STDIN_BYTES,
  MAX_TICKET_OPTIONS,
  MAX_UPDATE_LINES,
  parsePushOptions,
  parseUpdateLines,
  type UpdateLine,
} from '../engine/triage.ts';

export type HookInput = string | Buffer | AsyncIterable<Buffer | string>;

/** Reads all of a hook's stdin, refusing more than `limit` bytes. */
export async function readBounded(input: HookInput, limit = MAX_STDIN_BYTES): Promise<string> {
  return (await readBoundedBytes(input, limit)).toString('utf8');
}

/** As readBounded, as bytes. */
export async function readBoundedBytes(input: HookInput, limit = MAX_STDIN_BYTES): Promise<Buffer> {
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    const buf = typeof input === 'string' ? Buffer.from(input) : input;
    if (buf.length > limit) throw tooLarge(limit);
    return buf;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

function tooLarge(limit: number): BreakglassError {
  return new BreakglassError('INPUT_TOO_LARGE', `hook input is larger than ${limit} bytes`);
}
