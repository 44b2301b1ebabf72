// Shared test fixtures: deterministic keys for the DESIGN §1 cast and a policy naming them.
import assert from 'node:assert/strict';
import { BreakglassError, type ErrorCode } from '../../src/errors.ts';
import { createHash } from 'node:crypto';
import { signingKeyFromSeed, type SigningKey } from '../../src/ticket/keys.ts';
import { parsePolicy, type Policy } from '../../src/policy/policy.ts';
import {
  createTicketEnvelope,
  addSignature,
  formatTicketId,
  type TicketRequest,
} from '../../src/ticket/sign.ts';
import type { Envelope } from '../../src/ticket/dsse.ts';
import { parseTime } from '../../src/ticket/time.ts';

/** A deterministic key per name, so failures are reproducible. */
export function testKey(name: string): SigningKey {
  return signingKeyFromSeed(
    createHash('sha256').update(`git-breakglass test key ${name}`).digest(),
  );
}

export const keys = {
  alice: testKey('alice'),
  alice2: testKey('alice-second-laptop'),
  bob: testKey('bob'),
  carol: testKey('carol'),
  dave: testKey('dave'),
  mallory: testKey('mallory'),
  mergeBot: testKey('merge-bot'),
};

export interface PolicyOptions {
  repository?: string;
  approvals?: number;
  maxTtl?: string;
  /** tickets.maxUses (default 1): the default and the ceiling of a ticket's uses (T15). */
  maxUses?: number;
  clockSkew?: string;
  omitBob?: boolean;
  extra?: string;
}

/** Policy YAML: alice oncall (two keys), bob and carol approvers, dave oncall, merge-bot pusher. */
export function policyYaml(o: PolicyOptions = {}): string {
  return `version: 1
repository: ${o.repository ?? 'acme/api'}
principals:
  alice:
    keys: ["${keys.alice.publicKey.text}", "${keys.alice2.publicKey.text}"]
    roles: [oncall]
    logins: [alice, alice-gh]
${
  o.omitBob
    ? ''
    : `  bob:
    keys: ["${keys.bob.publicKey.text}"]
    roles: [approver]
    logins: [bob]
`
}  carol:
    keys: ["${keys.carol.publicKey.text}"]
    roles: [approver]
    logins: [carol]
  dave:
    keys: ["${keys.dave.publicKey.text}"]
    roles: [oncall]
    logins: [dave]
  merge-bot:
    keys: ["${keys.mergeBot.publicKey.text}"]
    logins: [merge-bot]
protected:
  - refs: ["refs/heads/main", "refs/heads/release/*"]
    pushers: [merge-bot]
    requiredApprovals: 1
tickets:
  requesterRoles: [oncall]
  approverRoles: [approver]
  reviewerRoles: [approver]
  approvals: ${o.approvals ?? 1}
  maxTtl: ${o.maxTtl ?? '60m'}
  maxUses: ${o.maxUses ?? 1}
  clockSkew: ${o.clockSkew ?? '2m'}
${o.extra ?? ''}`;
}

export function testPolicy(o: PolicyOptions = {}): Policy {
  return parsePolicy(policyYaml(o));
}

export const T0 = parseTime('2026-11-29T03:12:00Z');

/** A ticket request with sensible defaults (alice, main, push, 15 minutes). */
export function ticketRequest(over: Partial<TicketRequest> = {}): TicketRequest {
  const now = over.now ?? T0;
  return {
    id: formatTicketId(now, '7f3a9c'),
    nonce: 'AAAAAAAAAAAAAAAAAAAAAA==',
    now,
    repository: 'acme/api',
    requester: 'alice',
    holder: 'alice',
    refs: ['refs/heads/main'],
    actions: ['push'],
    reason: 'INC-4711 payment outage hotfix',
    ttlMs: 15 * 60_000,
    maxUses: 1,
    ...over,
  };
}

/** Alice's request, approved by the given approvers (bob by default). */
export function approvedEnvelope(
  over: Partial<TicketRequest> = {},
  approvers: SigningKey[] = [keys.bob],
): Envelope {
  let env = createTicketEnvelope(ticketRequest(over), keys.alice);
  for (const k of approvers) env = addSignature(env, k);
  return env;
}

/** Asserts that `fn` throws our coded error with `code` (and, optionally, a matching message). */
export function throwsCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BreakglassError, `expected a BreakglassError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}
