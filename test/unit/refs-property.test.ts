// Property: ref matching means exactly what the documented glob means (checked against a
// regular expression on inputs small enough for a regex to be quick).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileRefPattern, isValidRefName, refMatches } from '../../src/policy/refs.ts';

const patternSegment = fc.constantFrom('a', 'b', 'ab', '*', 'a*', '*b', 'a*b', '*a*', '**');
const refSegment = fc.constantFrom('a', 'b', 'ab', 'ba', 'aab', 'abb', 'x');

/** The glob as a regex: `*` is [^/]*; `**` is zero or more segments inside, one or more at the end. */
function reference(pattern: string): RegExp {
  const segs = pattern.split('/');
  let re = '^';
  segs.forEach((s, i) => {
    if (s === '**') re += i === segs.length - 1 ? '(?:/[^/]+)+' : '(?:/[^/]+)*';
    else re += (i > 0 ? '/' : '') + s.replace(/\*/g, '[^/]*');
  });
  return new RegExp(re + '$');
}

test('property: refMatches agrees with the glob definition', () => {
  fc.assert(
    fc.property(
      fc.array(patternSegment, { minLength: 1, maxLength: 4 }),
      fc.array(refSegment, { minLength: 0, maxLength: 5 }),
      (pat, ref) => {
        const pattern = ['refs', 'heads', ...pat].join('/');
        const name = ['refs', 'heads', ...ref].join('/');
        const expected = isValidRefName(name) && reference(pattern).test(name);
        assert.equal(
          refMatches(compileRefPattern(pattern), name),
          expected,
          `${pattern} ~ ${name}`,
        );
      },
    ),
    { numRuns: 1000, seed: 4711 },
  );
});
