// The one policy loader (docs/rules.md L1-L7): every edge hands it bytes, so the CLI, the hook,
// the hook's cache and the Action accept and refuse the same policies.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { policyFromBytes, policyLockout } from '../../src/policy/load.ts';
import { parsePolicy } from '../../src/policy/policy.ts';
import { MAX_POLICY_BYTES } from '../../src/policy/yaml.ts';
import { policyYaml, throwsCode } from '../helpers/fixtures.ts';

const good = policyYaml();
const bytes = (text: string) => Buffer.from(text, 'utf8');

test('L1-L4: a valid policy loads from bytes as parsePolicy reads its text', () => {
  const p = policyFromBytes(bytes(good), 'policy.yml');
  assert.equal(p.repository, 'acme/api');
  assert.deepEqual([...p.principals.keys()], [...parsePolicy(good).principals.keys()]);
});

test('L1: more than MAX_POLICY_BYTES is refused before it is decoded', () => {
  const big = Buffer.concat([bytes(good), Buffer.alloc(MAX_POLICY_BYTES, 0x23)]);
  throwsCode(() => policyFromBytes(big, 'p.yml'), 'POLICY_INVALID', /^p\.yml: larger than/);
});

test('L2: one Latin-1 byte (not UTF-8) is refused, not replaced by U+FFFD', () => {
  // "reason: café" written by a Latin-1 editor, in a comment: harmless text, but readers that
  // decode leniently would accept what the server refuses.
  const latin1 = Buffer.concat([bytes(good), Buffer.from('# caf\xe9\n', 'latin1')]);
  throwsCode(() => policyFromBytes(latin1, 'p.yml'), 'POLICY_INVALID', /not valid UTF-8/);
  // The same text in UTF-8 is fine.
  assert.ok(policyFromBytes(bytes(good + '# café\n'), 'p.yml'));
});

test('L3/L4: YAML and schema errors keep their field and line, as POLICY_INVALID', () => {
  const twoOwners = good.replace(/(carol:\n {4}keys: \[)"[^"]+"/, (_m, pre: string) => {
    const bobKey = /bob:\n {4}keys: \["([^"]+)"/.exec(good)![1]!;
    return `${pre}"${bobKey}"`;
  });
  assert.notEqual(twoOwners, good);
  throwsCode(
    () => policyFromBytes(bytes(twoOwners), 'p.yml'),
    'POLICY_INVALID',
    /already belongs to bob/,
  );
  throwsCode(() => policyFromBytes(bytes('version: [1'), 'p.yml'), 'POLICY_INVALID', /^p\.yml:1: /);
});

test('L5 (TM6): read from a branch, the policy must protect that branch', () => {
  assert.ok(policyFromBytes(bytes(good), 'p.yml', { branch: 'refs/heads/main' }));
  assert.ok(policyFromBytes(bytes(good), 'p.yml', { branch: 'refs/heads/release/1.2' }));
  throwsCode(
    () => policyFromBytes(bytes(good), 'p.yml', { branch: 'refs/heads/develop' }),
    'POLICY_INVALID',
    /read from refs\/heads\/develop, which it does not protect/,
  );
  // No branch (a pinned file, --policy FILE): nothing to check.
  assert.ok(policyFromBytes(bytes(good), 'p.yml'));
});

test('L7: a policy under which a ticket can be made is not a lockout', () => {
  assert.equal(policyLockout(parsePolicy(good)), null);
  // Two approvers (bob, carol) besides any requester: approvals 2 still works.
  assert.equal(policyLockout(parsePolicy(policyYaml({ approvals: 2 }))), null);
  // approvals 0: a requester alone suffices.
  assert.equal(policyLockout(parsePolicy(policyYaml({ approvals: 0 }))), null);
});

test('L7: no principal with a key and a requester role is a lockout', () => {
  const noRequester = good.replace(/roles: \[oncall\]/g, 'roles: []');
  assert.match(policyLockout(parsePolicy(noRequester)) ?? '', /nobody could request/);
  // The role is held only by principals without keys: still nobody can sign a request.
  const keyless = good
    .replace(/(alice:\n {4})keys: \[[^\]]*\]/, '$1keys: []')
    .replace(/(dave:\n {4})keys: \[[^\]]*\]/, '$1keys: []');
  assert.match(policyLockout(parsePolicy(keyless)) ?? '', /nobody could request/);
});

test('L7: fewer approver principals with keys than approvals (besides the requester) is a lockout', () => {
  assert.match(
    policyLockout(parsePolicy(policyYaml({ approvals: 3 }))) ?? '',
    /need 3 approval\(s\).*at most 2/,
  );
  // Without bob only carol approves: approvals 2 can never be met.
  assert.match(
    policyLockout(parsePolicy(policyYaml({ approvals: 2, omitBob: true }))) ?? '',
    /at most 1/,
  );
});

test('L7: the requester never counts as their own approver', () => {
  // Only one person holds both roles: approvals 1 needs someone else.
  const solo = `version: 1
repository: acme/api
principals:
  alice: { keys: ["${/alice:\n {4}keys: \["([^"]+)"/.exec(good)![1]!}"], roles: [oncall, approver] }
protected:
  - refs: [main]
tickets:
  requesterRoles: [oncall]
  approverRoles: [approver]
  approvals: 1
`;
  assert.match(policyLockout(parsePolicy(solo)) ?? '', /at most 0/);
  assert.equal(policyLockout(parsePolicy(solo.replace('approvals: 1', 'approvals: 0'))), null);
});
