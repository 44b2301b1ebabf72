import { z } from 'zod';
import { BreakglassError } from '../errors.ts';
import { parsePublicKey, type PublicKey } from '../ticket/keys.ts';
import { PRINCIPAL_NAME } from '../ticket/payload.ts';
import { parseDuration, parseDurationAllowZero } from './duration.ts';
import { compileRefPattern, anyRefMatches, type RefPattern } from './refs.ts';
import { loadYamlStrict } from './yaml.ts';

/** A person or bot the policy knows. */
export interface Principal {
  readonly name: string;
  readonly keys: readonly PublicKey[];
  readonly roles: readonly string[];
  readonly logins: readonly string[];
}

export interface ProtectedRule {
  readonly refs: readonly RefPattern[];
  /** Principals that may fast-forward without a ticket (the normal path). */
  readonly pushers: readonly string[];
  /** Approvals a pull request needs (the Action's gate). */
  readonly requiredApprovals: number;
}

export interface TicketRules {
  readonly requesterRoles: readonly string[];
  readonly approverRoles: readonly string[];
  readonly reviewerRoles: readonly string[];
  readonly approvals: number;
  readonly maxTtlMs: number;
  readonly maxUses: number;
  readonly clockSkewMs: number;
  /** S5: approvals count only from `sk-` keys whose authenticator asserted user presence. */
  readonly requireUserPresence: boolean;
  /** PC4: a break-glass push must carry a push certificate signed by the ticket's holder. */
  readonly requireSignedPush: boolean;
}

/** A validated `.breakglass/policy.yml`. */
export interface Policy {
  readonly version: 1;
  readonly repository: string;
  readonly principals: ReadonlyMap<string, Principal>;
  readonly protected: readonly ProtectedRule[];
  readonly tickets: TicketRules;
  /** Principals allowed to write `refs/notes/breakglass` and `consumed/` (e.g. the Action's bot). */
  readonly recorders: readonly string[];
  /** Principals with the admin role may revoke any ticket. */
  readonly adminRoles: readonly string[];
  /** key id -> principal name, for signature lookup. */
  readonly keyOwners: ReadonlyMap<string, { principal: string; key: PublicKey }>;
}

const name = z.string().regex(PRINCIPAL_NAME, 'must be a principal name (letters, digits, . _ -)');
const role = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be a role name (lower-case letters, digits, -)');
const login = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[^\s]+$/, 'must not contain spaces');
const duration = z.string().max(24);

const PolicySchema = z.strictObject({
  version: z.literal(1, { error: 'must be 1' }),
  repository: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[^\s]+$/, 'must not contain spaces'),
  principals: z
    .record(
      name,
      z.strictObject({
        // An OpenSSH line with its comment can be long; the key itself is bounded when parsed.
        keys: z.array(z.string().max(600)).max(16).default([]),
        roles: z.array(role).max(16).default([]),
        logins: z.array(login).max(16).default([]),
      }),
    )
    .refine((r) => Object.keys(r).length <= 500, 'at most 500 principals'),
  protected: z
    .array(
      z.strictObject({
        refs: z.array(z.string().min(1).max(255)).min(1).max(64),
        pushers: z.array(name).max(100).default([]),
        requiredApprovals: z.number().int().min(0).max(20).default(1),
      }),
    )
    .min(1)
    .max(64),
  tickets: z.strictObject({
    requesterRoles: z.array(role).min(1).max(16),
    approverRoles: z.array(role).min(1).max(16),
    reviewerRoles: z.array(role).max(16).optional(),
    approvals: z.number().int().min(0).max(10).default(1),
    maxTtl: duration.default('60m'),
    maxUses: z.number().int().min(1).max(1000).default(1),
    clockSkew: duration.default('2m'),
    requireUserPresence: z.boolean().default(false),
    requireSignedPush: z.boolean().default(false),
  }),
  recorders: z.array(name).max(16).default([]),
  adminRoles: z.array(role).max(16).default(['admin']),
});

function fieldPath(path: readonly PropertyKey[]): string {
  return path
    .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
    .join('')
    .replace(/^\./, '');
}

/** Parses and validates policy YAML; errors name the field and the line. */
export function parsePolicy(text: string, source = '.breakglass/policy.yml'): Policy {
  const doc = loadYamlStrict(text, source);
  const fail = (path: readonly (string | number)[], message: string): never => {
    const line = doc.lineOf(path);
    throw new BreakglassError(
      'POLICY_INVALID',
      `${source}${line ? `:${line}` : ''}: ${fieldPath(path) || '(document)'}: ${message}`,
    );
  };
  const parsed = PolicySchema.safeParse(doc.value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    // For an unknown key, point at the key itself.
    if (issue.code === 'unrecognized_keys' && issue.keys[0]) {
      fail([...path, issue.keys[0]], 'unknown field');
    }
    fail(path, issue.message);
  }
  const p = parsed.data!;

  const principals = new Map<string, Principal>();
  const keyOwners = new Map<string, { principal: string; key: PublicKey }>();
  const loginOwners = new Map<string, string>();
  for (const [pname, def] of Object.entries(p.principals)) {
    const keys = def.keys.map((k, i) => {
      let key: PublicKey;
      try {
        key = parsePublicKey(k, 'key');
      } catch (e) {
        return fail(['principals', pname, 'keys', i], (e as Error).message.replace(/^key: /, ''));
      }
      const owner = keyOwners.get(key.keyid);
      if (owner)
        fail(
          ['principals', pname, 'keys', i],
          `key ${key.keyid} already belongs to ${owner.principal}`,
        );
      keyOwners.set(key.keyid, { principal: pname, key });
      return key;
    });
    for (const [i, l] of def.logins.entries()) {
      const owner = loginOwners.get(l);
      if (owner)
        fail(['principals', pname, 'logins', i], `login "${l}" already belongs to ${owner}`);
      loginOwners.set(l, pname);
    }
    principals.set(pname, { name: pname, keys, roles: def.roles, logins: def.logins });
  }

  const protectedRules = p.protected.map((rule, i) => ({
    refs: rule.refs.map((r, j) => {
      try {
        return compileRefPattern(r);
      } catch (e) {
        return fail(['protected', i, 'refs', j], (e as Error).message.replace(/^ref: /, ''));
      }
    }),
    pushers: rule.pushers.map((n, j) =>
      principals.has(n) ? n : fail(['protected', i, 'pushers', j], `unknown principal "${n}"`),
    ),
    requiredApprovals: rule.requiredApprovals,
  }));
  p.recorders.forEach((n, j) => {
    if (!principals.has(n)) fail(['recorders', j], `unknown principal "${n}"`);
  });

  const ms = (field: 'maxTtl' | 'clockSkew'): number => {
    try {
      // No skew is a valid choice; a zero maxTtl is not.
      const parse = field === 'clockSkew' ? parseDurationAllowZero : parseDuration;
      return parse(p.tickets[field], field);
    } catch (e) {
      return fail(['tickets', field], (e as Error).message.replace(`${field}: `, ''));
    }
  };
  const tickets: TicketRules = {
    requesterRoles: p.tickets.requesterRoles,
    approverRoles: p.tickets.approverRoles,
    reviewerRoles: p.tickets.reviewerRoles ?? p.tickets.approverRoles,
    approvals: p.tickets.approvals,
    maxTtlMs: ms('maxTtl'),
    maxUses: p.tickets.maxUses,
    clockSkewMs: ms('clockSkew'),
    requireUserPresence: p.tickets.requireUserPresence,
    requireSignedPush: p.tickets.requireSignedPush,
  };
  if (tickets.maxTtlMs > 7 * 86_400_000) fail(['tickets', 'maxTtl'], 'must be at most 7d');
  if (tickets.clockSkewMs > 15 * 60_000) fail(['tickets', 'clockSkew'], 'must be at most 15m');

  return {
    version: 1,
    repository: p.repository,
    principals,
    protected: protectedRules,
    tickets,
    recorders: p.recorders,
    adminRoles: p.adminRoles,
    keyOwners,
  };
}

/** The protection rule that covers `ref`, if any (first match wins). */
export function protectionFor(policy: Policy, ref: string): ProtectedRule | undefined {
  return policy.protected.find((rule) => anyRefMatches(rule.refs, ref));
}

/** The principal a platform login maps to, if any. */
export function principalForLogin(policy: Policy, login: string): Principal | undefined {
  for (const p of policy.principals.values()) if (p.logins.includes(login)) return p;
  return undefined;
}

/** True if the principal holds any of the roles. */
export function hasRole(policy: Policy, principal: string, roles: readonly string[]): boolean {
  const p = policy.principals.get(principal);
  return !!p && p.roles.some((r) => roles.includes(r));
}
