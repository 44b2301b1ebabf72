// Ref patterns (docs/rules.md "Ref patterns"): exact refs, `*` in one segment, `**` across
// segments, bare names are branches; only valid ref names ever match.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  anyRefMatches,
  compileRefPattern,
  isValidRefName,
  normalizeRefPattern,
  refMatches,
} from '../../src/policy/refs.ts';
import { BreakglassError } from '../../src/errors.ts';

const matches = (pattern: string, ref: string): boolean =>
  refMatches(compileRefPattern(pattern), ref);

test('an exact ref matches only itself', () => {
  assert.equal(matches('refs/heads/main', 'refs/heads/main'), true);
  assert.equal(matches('refs/heads/main', 'refs/heads/main2'), false);
  assert.equal(matches('refs/heads/main', 'refs/heads/mai'), false);
  assert.equal(matches('refs/heads/main', 'refs/heads/main/x'), false);
  assert.equal(matches('refs/heads/main', 'refs/tags/main'), false);
  assert.equal(matches('refs/heads/main', 'refs/heads/Main'), false);
});

test('a bare name means refs/heads/<name>', () => {
  assert.equal(normalizeRefPattern('main'), 'refs/heads/main');
  assert.equal(normalizeRefPattern('refs/tags/v1'), 'refs/tags/v1');
  assert.equal(compileRefPattern('main').source, 'refs/heads/main');
  assert.equal(matches('main', 'refs/heads/main'), true);
  assert.equal(matches('main', 'refs/heads/main2'), false);
  assert.equal(matches('main', 'refs/tags/main'), false);
  assert.equal(matches('main', 'main'), false, 'the ref itself must be a full ref name');
  assert.equal(matches('release/*', 'refs/heads/release/1.2'), true);
});

test('`*` matches within one path segment only', () => {
  assert.equal(matches('refs/heads/release/*', 'refs/heads/release/1.2'), true);
  assert.equal(matches('refs/heads/release/*', 'refs/heads/release/a/b'), false);
  assert.equal(matches('refs/heads/release/*', 'refs/heads/release'), false);
  assert.equal(matches('refs/heads/release/*', 'refs/heads/release/'), false);
  assert.equal(matches('refs/heads/hotfix-*', 'refs/heads/hotfix-42'), true);
  assert.equal(matches('refs/heads/hotfix-*', 'refs/heads/hotfix-'), true);
  assert.equal(matches('refs/heads/hotfix-*', 'refs/heads/hotfix'), false);
  assert.equal(matches('refs/heads/hotfix-*', 'refs/heads/hotfix-4/2'), false);
  assert.equal(matches('refs/heads/*-rc', 'refs/heads/v1-rc'), true);
  assert.equal(matches('refs/*/main', 'refs/heads/main'), true);
  assert.equal(matches('refs/*/main', 'refs/remotes/origin/main'), false);
});

test('`**` matches across segments: one or more at the end, zero or more in the middle', () => {
  assert.equal(matches('refs/heads/team/**', 'refs/heads/team/a'), true);
  assert.equal(matches('refs/heads/team/**', 'refs/heads/team/a/b/c/d/e'), true);
  assert.equal(matches('refs/heads/team/**', 'refs/heads/team'), false);
  assert.equal(matches('refs/heads/team/**', 'refs/heads/teammate/a'), false);
  assert.equal(matches('refs/**/main', 'refs/heads/main'), true);
  assert.equal(matches('refs/**/main', 'refs/remotes/origin/main'), true);
  assert.equal(matches('refs/**/main', 'refs/main'), true);
  assert.equal(matches('refs/**/main', 'refs/heads/main2'), false);
  assert.equal(matches('refs/**', 'refs/tags/v1.0.0'), true);
  assert.equal(matches('**', 'refs/heads/a/b'), true, 'bare ** is every branch');
  assert.equal(matches('**', 'refs/tags/a'), false);
});

test('regex metacharacters in a pattern are literal', () => {
  assert.equal(matches('refs/heads/v1.2', 'refs/heads/v1.2'), true);
  assert.equal(matches('refs/heads/v1.2', 'refs/heads/v1x2'), false);
  assert.equal(matches('refs/heads/a+b', 'refs/heads/aab'), false);
  assert.equal(matches('refs/heads/a+b', 'refs/heads/a+b'), true);
  assert.equal(matches('refs/heads/(x|y)', 'refs/heads/x'), false);
  assert.equal(matches('refs/heads/$x', 'refs/heads/$x'), true);
});

test('invalid ref names never match, not even `**`', () => {
  for (const ref of [
    'refs/heads/main/../x',
    'refs/heads/../heads/main',
    'refs/heads//main',
    'refs/heads/main/',
    'refs/heads/.hidden',
    'refs/heads/x.lock',
    'refs/heads/a b',
    'refs/heads/a\nb',
    'refs/heads/a~1',
    'refs/heads/a^',
    'refs/heads/a:b',
    'refs/heads/a?',
    'refs/heads/a*',
    'refs/heads/a[0]',
    'refs/heads/a\\b',
    'refs/heads/a@{1}',
    'refs/heads/main.',
    'refs/heads/' + 'x'.repeat(300),
    '',
    'HEAD',
  ]) {
    assert.equal(isValidRefName(ref), false, JSON.stringify(ref));
    assert.equal(matches('refs/**', ref), false, JSON.stringify(ref));
    assert.equal(matches('refs/heads/*', ref), false, JSON.stringify(ref));
  }
  assert.equal(isValidRefName('refs/heads/feature/x-1.2_3'), true);
});

test('invalid patterns are refused with REF_INVALID', () => {
  for (const pattern of [
    '',
    'refs/heads/main/../x',
    'refs/heads/../main',
    'refs/heads//main',
    'refs/heads/',
    'refs/heads/.hidden',
    'refs/heads/*.lock',
    'refs/heads/x.lock',
    'refs/heads/a b',
    'refs/heads/a~1',
    'refs/heads/a:b',
    'refs/heads/a?',
    'refs/heads/[ab]',
    'refs/heads/a\\b',
    'refs/heads/a@{1}',
    'refs/heads/a**',
    'refs/heads/**x',
    'refs/heads/x/***',
    'refs/heads/main.',
    'refs/heads/' + 'x'.repeat(300),
  ]) {
    assert.throws(
      () => compileRefPattern(pattern, 'scope.refs[0]'),
      (e: unknown) =>
        e instanceof BreakglassError &&
        e.code === 'REF_INVALID' &&
        /^scope\.refs\[0\]: /.test(e.message),
      JSON.stringify(pattern),
    );
  }
  for (const notAString of [undefined, null, 42, ['main'], { ref: 'main' }]) {
    assert.throws(
      () => compileRefPattern(notAString),
      (e: unknown) => e instanceof BreakglassError && e.code === 'REF_INVALID',
    );
  }
});

test('anyRefMatches: one of several patterns is enough', () => {
  const patterns = ['main', 'release/*'].map((p) => compileRefPattern(p));
  assert.equal(anyRefMatches(patterns, 'refs/heads/release/2'), true);
  assert.equal(anyRefMatches(patterns, 'refs/heads/dev'), false);
  assert.equal(anyRefMatches([], 'refs/heads/main'), false);
});

test(
  'matching takes linear time: many stars against a long ref do not hang the hook',
  { timeout: 20_000 },
  () => {
    // With a backtracking regex this pair takes longer than the age of the universe; a ticket's
    // scope.refs is written by its requester, and the ref name by whoever pushes.
    const hostile = compileRefPattern('refs/heads/' + '*a'.repeat(20) + '*b', 'scope.refs[0]');
    assert.equal(refMatches(hostile, 'refs/heads/' + 'a'.repeat(200)), false);
    assert.equal(refMatches(hostile, 'refs/heads/' + 'a'.repeat(200) + 'b'), true);
    const deep = compileRefPattern('refs/**/**/**/**/x');
    assert.equal(refMatches(deep, 'refs/' + 'a/'.repeat(100) + 'y'), false);
    assert.equal(refMatches(deep, 'refs/' + 'a/'.repeat(100) + 'x'), true);
  },
);
