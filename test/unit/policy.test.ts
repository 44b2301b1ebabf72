// Policy (.breakglass/policy.yml, DESIGN §5): safe YAML, strict schema, and an error that names
// the field and the line, so whoever edits the policy can fix it at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hasRole, parsePolicy, principalForLogin, protectionFor } from '../../src/policy/policy.ts';
import {
  formatDuration,
  parseDuration,
  parseDurationAllowZero,
} from '../../src/policy/duration.ts';
import { MAX_POLICY_BYTES } from '../../src/policy/yaml.ts';
import { keys, policyYaml, throwsCode } from '../helpers/fixtures.ts';

const good = policyYaml();
const lineOf = (text: string, needle: string): number => {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `"${needle}" is in the policy`);
  return i + 1;
};
/** Asserts POLICY_INVALID whose message is `<source>:<line>: <field>: ...`. */
function rejectsAt(text: string, line: number, field: string, detail?: RegExp): void {
  const escaped = field.replace(/[.[\]]/g, '\\$&');
  throwsCode(
    () => parsePolicy(text, 'policy.yml'),
    'POLICY_INVALID',
    new RegExp(`^policy\\.yml:${line}: ${escaped}: `),
  );
  if (detail) throwsCode(() => parsePolicy(text, 'policy.yml'), 'POLICY_INVALID', detail);
}

test('the example policy parses into principals, keys, rules and ticket settings', () => {
  const p = parsePolicy(good);
  assert.equal(p.version, 1);
  assert.equal(p.repository, 'acme/api');
  assert.deepEqual([...p.principals.keys()], ['alice', 'bob', 'carol', 'dave', 'merge-bot']);
  assert.equal(p.principals.get('alice')!.keys.length, 2);
  assert.deepEqual(p.keyOwners.get(keys.alice2.publicKey.keyid)?.principal, 'alice');
  assert.deepEqual(p.keyOwners.get(keys.bob.publicKey.keyid)?.principal, 'bob');
  assert.equal(p.keyOwners.has(keys.mallory.publicKey.keyid), false);
  assert.deepEqual(p.tickets, {
    requesterRoles: ['oncall'],
    approverRoles: ['approver'],
    reviewerRoles: ['approver'],
    approvals: 1,
    maxTtlMs: 60 * 60_000,
    maxUses: 1,
    clockSkewMs: 2 * 60_000,
    requireUserPresence: false,
    requireSignedPush: false,
  });
  assert.deepEqual(p.recorders, []);
  assert.deepEqual(p.adminRoles, ['admin']);
  assert.deepEqual(protectionFor(p, 'refs/heads/release/7')?.pushers, ['merge-bot']);
  assert.equal(protectionFor(p, 'refs/heads/feature'), undefined);
  assert.equal(principalForLogin(p, 'alice-gh')?.name, 'alice');
  assert.equal(principalForLogin(p, 'eve'), undefined);
  assert.equal(hasRole(p, 'bob', ['approver']), true);
  assert.equal(hasRole(p, 'alice', ['approver']), false);
  assert.equal(hasRole(p, 'nobody', ['approver']), false);
});

test('defaults: approvals 1, maxTtl 60m, clockSkew 2m, maxUses 1, reviewers = approvers', () => {
  const minimal = `version: 1
repository: acme/api
principals:
  alice: { keys: ["${keys.alice.publicKey.text}"], roles: [oncall] }
protected:
  - refs: [main]
tickets:
  requesterRoles: [oncall]
  approverRoles: [approver]
`;
  const p = parsePolicy(minimal);
  assert.deepEqual(p.tickets, {
    requesterRoles: ['oncall'],
    approverRoles: ['approver'],
    reviewerRoles: ['approver'],
    approvals: 1,
    maxTtlMs: 3_600_000,
    maxUses: 1,
    clockSkewMs: 120_000,
    requireUserPresence: false,
    requireSignedPush: false,
  });
  assert.deepEqual(p.protected[0]!.pushers, []);
  assert.equal(p.protected[0]!.requiredApprovals, 1);
  assert.equal(p.protected[0]!.refs[0]!.source, 'refs/heads/main');
});

test('errors name the field and the line', () => {
  rejectsAt(good.replace('version: 1', 'version: 2'), 1, 'version', /must be 1/);
  rejectsAt(good + 'extra: 1\n', lineOf(good + 'extra: 1\n', 'extra:'), 'extra', /unknown field/);
  const withAdmin = good.replace('    roles: [oncall]\n', '    roles: [oncall]\n    admin: true\n');
  rejectsAt(withAdmin, lineOf(withAdmin, 'admin: true'), 'principals.alice.admin', /unknown field/);
  rejectsAt(
    good.replace('roles: [oncall]', 'roles: [On-Call]'),
    lineOf(good, 'roles: [oncall]'),
    'principals.alice.roles[0]',
  );
  rejectsAt(
    good.replace('approvals: 1', 'approvals: two'),
    lineOf(good, 'approvals: 1'),
    'tickets.approvals',
  );
  rejectsAt(
    good.replace('approvals: 1', 'approvals: 1.5'),
    lineOf(good, 'approvals: 1'),
    'tickets.approvals',
  );
  rejectsAt(
    good.replace('maxTtl: 60m', 'maxTtl: 60 minutes'),
    lineOf(good, 'maxTtl'),
    'tickets.maxTtl',
    /not a duration/,
  );
  rejectsAt(
    good.replace('maxTtl: 60m', 'maxTtl: 60'),
    lineOf(good, 'maxTtl'),
    'tickets.maxTtl',
    /expected string/,
  );
  rejectsAt(
    good.replace('maxTtl: 60m', 'maxTtl: 8d'),
    lineOf(good, 'maxTtl'),
    'tickets.maxTtl',
    /at most 7d/,
  );
  rejectsAt(
    good.replace('clockSkew: 2m', 'clockSkew: 1h'),
    lineOf(good, 'clockSkew'),
    'tickets.clockSkew',
    /at most 15m/,
  );
  rejectsAt(
    good.replace('"refs/heads/release/*"', '"refs/heads/../x"'),
    lineOf(good, 'refs/heads/release/*'),
    'protected[0].refs[1]',
    /not a valid ref pattern/,
  );
  const dave = good.replace('  dave:', '  "dave smith":');
  rejectsAt(dave, lineOf(dave, 'dave smith'), 'principals.dave smith');
  rejectsAt(
    good.replace(/protected:\n(.*\n){3}/, 'protected: []\n'),
    lineOf(good, 'protected:'),
    'protected',
  );
  rejectsAt(good.replace('repository: acme/api', 'repository: acme api'), 2, 'repository');
  rejectsAt(
    good.replace('  requesterRoles: [oncall]\n', ''),
    lineOf(good, 'tickets:'),
    'tickets.requesterRoles',
  );
});

test('a key of the wrong length or encoding names the principal, the key and the line', () => {
  const short = 'ed25519:' + Buffer.alloc(31, 1).toString('base64');
  rejectsAt(
    good.replace(keys.bob.publicKey.text, short),
    lineOf(good, keys.bob.publicKey.text),
    'principals.bob.keys[0]',
    /32 bytes, this one has 31/,
  );
  rejectsAt(
    good.replace(
      keys.alice2.publicKey.text,
      keys.alice2.publicKey.text.replace('ed25519:', 'rsa:'),
    ),
    lineOf(good, keys.alice2.publicKey.text),
    'principals.alice.keys[1]',
  );
  rejectsAt(
    good.replace(keys.carol.publicKey.text, keys.carol.publicKey.text.replace(/=$/, '')),
    lineOf(good, keys.carol.publicKey.text),
    'principals.carol.keys[0]',
    /base64/,
  );
});

test('a pusher or recorder that is not a principal is an error', () => {
  const eve = good.replace('pushers: [merge-bot]', 'pushers: [merge-bot, eve]');
  rejectsAt(eve, lineOf(good, 'pushers:'), 'protected[0].pushers[1]', /unknown principal "eve"/);
  const ghost = good + 'recorders: [ghost]\n';
  rejectsAt(ghost, lineOf(ghost, 'recorders'), 'recorders[0]', /unknown principal "ghost"/);
});

test('one key can belong to only one principal, one login to only one principal', () => {
  const stolen = good.replace(keys.carol.publicKey.text, keys.bob.publicKey.text);
  rejectsAt(
    stolen,
    lineOf(good, keys.carol.publicKey.text),
    'principals.carol.keys[0]',
    /already belongs to bob/,
  );
  const login = good.replace('logins: [carol]', 'logins: [carol, bob]');
  rejectsAt(
    login,
    lineOf(good, 'logins: [carol]'),
    'principals.carol.logins[1]',
    /login "bob" already belongs to bob/,
  );
});

test('YAML anchors and aliases are refused: a billion-laughs bomb fails fast and small', () => {
  const bomb = [
    'version: 1',
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ...Array.from({ length: 9 }, (_, i) => {
      const prev = String.fromCharCode(97 + i);
      const name = String.fromCharCode(98 + i);
      return `${name}: &${name} [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]`;
    }),
    '',
  ].join('\n');
  throwsCode(
    () => parsePolicy(bomb, 'policy.yml'),
    'POLICY_INVALID',
    /^policy\.yml:2: YAML anchors and aliases/,
  );
  // A single harmless-looking alias is refused just the same.
  const aliased = good
    .replace('approverRoles: [approver]', 'approverRoles: &r [approver]')
    .replace('reviewerRoles: [approver]', 'reviewerRoles: *r');
  throwsCode(() => parsePolicy(aliased), 'POLICY_INVALID', /anchors and aliases/);
});

test('duplicate keys, custom tags, merge keys, many documents and deep nesting are refused', () => {
  throwsCode(
    () => parsePolicy(good + 'version: 1\n', 'policy.yml'),
    'POLICY_INVALID',
    /^policy\.yml:\d+: duplicated mapping key/,
  );
  const twoBobs = good.replace('  carol:', '  bob:');
  throwsCode(
    () => parsePolicy(twoBobs, 'policy.yml'),
    'POLICY_INVALID',
    new RegExp(`^policy\\.yml:${lineOf(good, '  carol:')}: duplicated mapping key`),
  );
  throwsCode(
    () =>
      parsePolicy(
        good.replace(
          'repository: acme/api',
          'repository: !!js/function "function () { return 1 }"',
        ),
      ),
    'POLICY_INVALID',
    /unknown .*tag/,
  );
  throwsCode(
    () => parsePolicy(good.replace('repository: acme/api', 'repository: !!js/regexp /x/')),
    'POLICY_INVALID',
    /unknown .*tag/,
  );
  throwsCode(
    () => parsePolicy(good.replace('repository: acme/api', 'repository: !custom x')),
    'POLICY_INVALID',
  );
  throwsCode(
    () => parsePolicy(good + '<<: {recorders: [alice]}\n'),
    'POLICY_INVALID',
    /<<: unknown field/,
  );
  throwsCode(
    () => parsePolicy(good + '---\nversion: 1\n'),
    'POLICY_INVALID',
    /exactly one YAML document/,
  );
  throwsCode(() => parsePolicy(''), 'POLICY_INVALID');
  throwsCode(() => parsePolicy('just text'), 'POLICY_INVALID', /\(document\)/);
  throwsCode(() => parsePolicy('version: [1'), 'POLICY_INVALID', /:1: /);
  throwsCode(
    () => parsePolicy(good + 'x: ' + '['.repeat(20) + ']'.repeat(20) + '\n'),
    'POLICY_INVALID',
    /maxDepth/,
  );
});

test('a policy over 64 KiB is refused before parsing', () => {
  const huge = good + '#'.repeat(MAX_POLICY_BYTES) + '\n';
  throwsCode(
    () => parsePolicy(huge, 'policy.yml'),
    'POLICY_INVALID',
    /^policy\.yml: larger than 65536 bytes/,
  );
  // Counted in bytes, not characters.
  const wide = good + '# ' + 'é'.repeat(MAX_POLICY_BYTES / 2) + '\n';
  assert.ok(wide.length < MAX_POLICY_BYTES + good.length + 10);
  throwsCode(() => parsePolicy(wide), 'POLICY_INVALID', /larger than/);
});

test('durations: 15m, 1h, 1h30m, 90s, 2d; zero, junk and units we do not know are refused', () => {
  assert.equal(parseDuration('15m'), 15 * 60_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('1h30m'), 90 * 60_000);
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('2d'), 2 * 86_400_000);
  assert.equal(formatDuration(90 * 60_000), '1h30m');
  assert.equal(formatDuration(0), '0s');
  for (const bad of [
    '',
    '15',
    'm',
    '15 m',
    '15M',
    '1.5h',
    '-5m',
    '30m1h',
    '1w',
    '15min',
    ' 15m',
    'PT15M',
    '0m',
    '0s',
    '0h0m',
  ]) {
    throwsCode(() => parseDuration(bad, '--ttl'), 'DURATION_INVALID', /^--ttl: /);
  }
  throwsCode(() => parseDuration(15), 'DURATION_INVALID');
  assert.equal(parseDurationAllowZero('0m'), 0);
  assert.equal(parseDurationAllowZero('5m'), 300_000);
});

test('policy: maxTtl must be positive; clockSkew may be zero', () => {
  rejectsAt(good.replace('maxTtl: 60m', 'maxTtl: 0m'), lineOf(good, 'maxTtl'), 'tickets.maxTtl');
  assert.equal(parsePolicy(good.replace('clockSkew: 2m', 'clockSkew: 0s')).tickets.clockSkewMs, 0);
  assert.equal(parsePolicy(good.replace('clockSkew: 2m', 'clockSkew: 0m')).tickets.clockSkewMs, 0);
});
