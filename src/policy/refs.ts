import { BreakglassError } from '../errors.ts';

const MAX_REF_LENGTH = 255;
// git check-ref-format: no control characters, space, ~ ^ : ? * [ \ anywhere.
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\x00-\x20\x7f~^:?*[\\]/;

/** True if `ref` is a full ref name git itself would accept (`git check-ref-format`). */
export function isValidRefName(ref: string): boolean {
  if (ref.length === 0 || ref.length > MAX_REF_LENGTH) return false;
  if (!ref.startsWith('refs/')) return false;
  if (FORBIDDEN.test(ref) || ref.includes('..') || ref.includes('@{') || ref.includes('//')) {
    return false;
  }
  if (ref.endsWith('/') || ref.endsWith('.')) return false;
  return ref.split('/').every((c) => c.length > 0 && !c.startsWith('.') && !c.endsWith('.lock'));
}

/** `main` -> `refs/heads/main`; full refs (`refs/...`) stay as they are. */
export function normalizeRefPattern(pattern: string): string {
  return pattern.startsWith('refs/') ? pattern : `refs/heads/${pattern}`;
}

/** A compiled ref pattern: exact refs, `*` within one segment, `**` across segments. */
export interface RefPattern {
  readonly source: string;
  /**
   * The same pattern as a regular expression, for display only: with several `*` in a segment a
   * backtracking regex takes exponential time on a long ref, so matching uses `refMatches`.
   */
  readonly regex: RegExp;
}

/** Validates and compiles a pattern (bare branch names become `refs/heads/<name>`). */
export function compileRefPattern(input: unknown, field = 'ref'): RefPattern {
  if (typeof input !== 'string' || input.length === 0 || input.length > MAX_REF_LENGTH) {
    throw new BreakglassError('REF_INVALID', `${field}: expected a ref name or pattern`);
  }
  const source = normalizeRefPattern(input);
  const segments = source.split('/');
  let regex = '^';
  segments.forEach((seg, i) => {
    if (seg === '**') {
      // `**` spans segments: one or more at the end, zero or more in the middle.
      regex += i === segments.length - 1 ? '(?:/[^/]+)+' : '(?:/[^/]+)*';
      return;
    }
    if (seg.includes('**')) {
      throw new BreakglassError(
        'REF_INVALID',
        `${field}: "**" must be a whole path segment in "${input}"`,
      );
    }
    // Validate the literal parts with `*` replaced by a placeholder character.
    const probe = seg.replace(/\*/g, 'x');
    if (
      probe.length === 0 ||
      probe.startsWith('.') ||
      probe.endsWith('.lock') ||
      FORBIDDEN.test(probe)
    ) {
      throw new BreakglassError('REF_INVALID', `${field}: "${input}" is not a valid ref pattern`);
    }
    if (i > 0) regex += '/';
    regex += seg
      .split('*')
      .map((lit) => lit.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/]*');
  });
  regex += '$';
  if (!isValidRefName(source.replace(/\*+/g, 'x'))) {
    throw new BreakglassError('REF_INVALID', `${field}: "${input}" is not a valid ref pattern`);
  }
  return { source, regex: new RegExp(regex) };
}

/**
 * One segment against a glob where `*` is any run of characters: greedy with a single backtrack
 * point, O(pattern x text) at worst, never exponential.
 */
function segmentMatches(glob: string, text: string): boolean {
  let g = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (g < glob.length && glob[g] === '*') {
      star = g++;
      resume = t;
    } else if (g < glob.length && glob[g] === text[t]) {
      g++;
      t++;
    } else if (star >= 0) {
      g = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (g < glob.length && glob[g] === '*') g++;
  return g === glob.length;
}

/**
 * True if a full, valid ref name matches the pattern. Invalid ref names never match. Runs in
 * polynomial time whatever the pattern: ticket scopes are written by requesters and ref names by
 * pushers, and neither may stall the hook.
 */
export function refMatches(pattern: RefPattern, ref: string): boolean {
  if (!isValidRefName(ref)) return false;
  const globs = pattern.source.split('/');
  const segs = ref.split('/');
  // reach[j]: the globs so far match the first j segments of the ref.
  let reach = segs.map((_, j) => j === 0).concat(segs.length === 0);
  globs.forEach((glob, i) => {
    const next = reach.map(() => false);
    if (glob === '**') {
      // Zero or more segments in the middle, one or more at the end (as documented).
      const atEnd = i === globs.length - 1;
      let seen = false;
      for (let j = 0; j < reach.length; j++) {
        if (!atEnd) seen ||= reach[j]!;
        next[j] = seen;
        if (atEnd) seen ||= reach[j]!;
      }
    } else {
      for (let j = 0; j < segs.length; j++) {
        if (reach[j] && segmentMatches(glob, segs[j]!)) next[j + 1] = true;
      }
    }
    reach = next;
  });
  return reach[segs.length]!;
}

/** True if any of the patterns matches. */
export function anyRefMatches(patterns: readonly RefPattern[], ref: string): boolean {
  return patterns.some((p) => refMatches(p, ref));
}
