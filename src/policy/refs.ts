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

/** True if a full, valid ref name matches the pattern. Invalid ref names never match. */
export function refMatches(pattern: RefPattern, ref: string): boolean {
  return isValidRefName(ref) && pattern.regex.test(ref);
}

/** True if any of the patterns matches. */
export function anyRefMatches(patterns: readonly RefPattern[], ref: string): boolean {
  return patterns.some((p) => refMatches(p, ref));
}
