import { z } from 'zod';
import { BreakglassError } from '../errors.ts';
import { compileRefPattern } from '../policy/refs.ts';
import { TICKET_ID } from './id.ts';
import { findDuplicateKey } from './strict-json.ts';
import { parseTime } from './time.ts';

export const TICKET_PAYLOAD_TYPE = 'application/vnd.git-breakglass.ticket.v1+json';

export const ACTIONS = [
  'push',
  'force-push',
  'delete',
  'create',
  'merge-unreviewed',
  'change-policy',
] as const;
export type Action = (typeof ACTIONS)[number];

// In its own module so the hook's fast path can check ids without loading the schema (zod).
export { TICKET_ID };
export const PRINCIPAL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const COMMIT_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

const principal = z.string().regex(PRINCIPAL_NAME, 'must be a principal name');
const time = z.string().max(40);
const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    // eslint-disable-next-line no-control-regex
    .refine((s) => !/[\x00-\x08\x0b-\x1f\x7f]/.test(s), 'must not contain control characters');

const PayloadSchema = z.strictObject({
  type: z.literal('git-breakglass/ticket'),
  version: z.number(),
  id: z.string().regex(TICKET_ID, 'must look like 20261129T031200Z-7f3a9c'),
  repository: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[^\s]+$/, 'must not contain spaces'),
  requester: principal,
  holder: principal,
  scope: z.strictObject({
    refs: z.array(z.string().min(1).max(255)).min(1).max(32),
    actions: z.array(z.enum(ACTIONS)).min(1).max(ACTIONS.length),
    commits: z
      .array(z.string().regex(COMMIT_SHA, 'must be a full commit id'))
      .min(1)
      .max(64)
      .optional(),
  }),
  reason: text(1000),
  incident: text(200).optional(),
  issuedAt: time,
  notBefore: time,
  expiresAt: time,
  maxUses: z.number().int().min(1).max(1000),
  nonce: z.string().regex(/^[A-Za-z0-9+/]{16,64}={0,2}$/, 'must be base64'),
});

export type TicketPayloadJson = z.infer<typeof PayloadSchema>;

/** A parsed ticket payload with its times as epoch milliseconds. */
export interface TicketPayload extends TicketPayloadJson {
  readonly times: {
    readonly issuedAt: number;
    readonly notBefore: number;
    readonly expiresAt: number;
  };
}

/** Formats the first zod issue as `field: message`. */
export function describeZodError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
  return `${path.replace(/^\./, '') || '(root)'}: ${issue.message}`;
}

/**
 * Parses the exact payload bytes of a verified envelope. Strict UTF-8, strict JSON, strict
 * schema (unknown fields rejected), strict times; the version is checked before the shape so an
 * unknown version says so.
 */
export function parsePayload(bytes: Uint8Array): TicketPayload {
  let json: unknown;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    json = JSON.parse(text);
  } catch {
    throw new BreakglassError('PAYLOAD_MALFORMED', 'ticket payload is not valid UTF-8 JSON');
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) {
    throw new BreakglassError(
      'PAYLOAD_MALFORMED',
      `ticket payload has the field ${JSON.stringify(duplicate.slice(0, 40))} twice`,
    );
  }
  if (
    json &&
    typeof json === 'object' &&
    'version' in json &&
    (json as { version: unknown }).version !== 1
  ) {
    throw new BreakglassError(
      'VERSION_UNSUPPORTED',
      `ticket payload version ${JSON.stringify((json as { version: unknown }).version)} is not supported (this tool reads version 1)`,
    );
  }
  const parsed = PayloadSchema.safeParse(json);
  if (!parsed.success) {
    throw new BreakglassError(
      'PAYLOAD_MALFORMED',
      `ticket payload ${describeZodError(parsed.error)}`,
    );
  }
  const p = parsed.data;
  if (new Set(p.scope.actions).size !== p.scope.actions.length) {
    throw new BreakglassError(
      'PAYLOAD_MALFORMED',
      'ticket payload scope.actions: duplicate action',
    );
  }
  p.scope.refs.forEach((r, i) => {
    try {
      compileRefPattern(r, `scope.refs[${i}]`);
    } catch (e) {
      throw new BreakglassError('PAYLOAD_MALFORMED', `ticket payload ${(e as Error).message}`);
    }
  });
  const times = {
    issuedAt: parseTime(p.issuedAt, 'issuedAt'),
    notBefore: parseTime(p.notBefore, 'notBefore'),
    expiresAt: parseTime(p.expiresAt, 'expiresAt'),
  };
  if (times.expiresAt <= times.notBefore) {
    throw new BreakglassError(
      'PAYLOAD_MALFORMED',
      'ticket payload expiresAt must be after notBefore',
    );
  }
  if (times.notBefore < times.issuedAt) {
    throw new BreakglassError(
      'PAYLOAD_MALFORMED',
      'ticket payload notBefore must not be before issuedAt',
    );
  }
  return { ...p, times };
}

/** Encodes a payload to the bytes that will be signed (compact JSON, fixed field order). */
export function encodePayload(p: TicketPayloadJson): Buffer {
  const ordered: TicketPayloadJson = {
    type: p.type,
    version: p.version,
    id: p.id,
    repository: p.repository,
    requester: p.requester,
    holder: p.holder,
    scope: {
      refs: p.scope.refs,
      actions: p.scope.actions,
      ...(p.scope.commits ? { commits: p.scope.commits } : {}),
    },
    reason: p.reason,
    ...(p.incident ? { incident: p.incident } : {}),
    issuedAt: p.issuedAt,
    notBefore: p.notBefore,
    expiresAt: p.expiresAt,
    maxUses: p.maxUses,
    nonce: p.nonce,
  };
  return Buffer.from(JSON.stringify(ordered), 'utf8');
}
