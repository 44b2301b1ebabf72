// Fuzz targets shared by the short run in `npm test` and the long run in `npm run fuzz`.
// Each property: the parser either returns or throws one of our coded errors (never anything
// else, never hangs), and no mutation of a signed ticket is ever accepted.
import fc from 'fast-check';
import { BreakglassError } from '../../src/errors.ts';
import { parseEnvelope, serializeEnvelope, type Envelope } from '../../src/ticket/dsse.ts';
import { parsePayload } from '../../src/ticket/payload.ts';
import { parsePolicy } from '../../src/policy/policy.ts';
import { verifyTicketEnvelope } from '../../src/ticket/verify.ts';
import { evaluateTicket } from '../../src/engine/evaluate.ts';
import { decidePush } from '../../src/engine/decide.ts';
import { compileRefPattern } from '../../src/policy/refs.ts';
import { parseTime } from '../../src/ticket/time.ts';
import { parseDuration } from '../../src/policy/duration.ts';
import {
  formatNoteBlock,
  parseNote,
  parseNoteFast,
  type AuditEvent,
} from '../../src/audit/note.ts';
import { approvedEnvelope, keys, policyYaml, testPolicy, T0 } from '../helpers/fixtures.ts';
import { parseSshSig } from '../../src/ticket/sshsig.ts';
import { verifySignatures } from '../../src/ticket/verify.ts';
import { addSignature } from '../../src/ticket/sign.ts';
import { softSshKey } from '../helpers/ssh.ts';

/** Runs `f`; a throw that is not a coded BreakglassError fails the property. */
function onlyCodedErrors(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch (e) {
    if (e instanceof BreakglassError) return true;
    throw e;
  }
}

const policy = testPolicy();
const good = approvedEnvelope();
const goodText = serializeEnvelope(good);
const pusher = { known: true as const, login: 'alice', principal: 'alice' };
const use = { ref: 'refs/heads/main', actions: ['push' as const], pusher };
const state = { revoked: false, usesConsumed: 0 };
const now = T0 + 60_000;

/** Is this envelope accepted for the reference use? */
function accepted(env: Envelope): boolean {
  try {
    const t = verifyTicketEnvelope(env, policy.keyOwners);
    return evaluateTicket(t, policy, use, state, now).length === 0;
  } catch (e) {
    if (e instanceof BreakglassError) return false;
    throw e;
  }
}

/** Flip, insert or delete bytes of a buffer. */
const byteMutation = (len: number) =>
  fc.oneof(
    fc.record({
      kind: fc.constant('flip' as const),
      at: fc.nat(len - 1),
      bit: fc.integer({ min: 0, max: 7 }),
    }),
    fc.record({
      kind: fc.constant('set' as const),
      at: fc.nat(len - 1),
      value: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(len - 1) }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(len),
      value: fc.integer({ min: 0, max: 255 }),
    }),
  );

function mutate(
  buf: Buffer,
  m: { kind: string; at: number; bit?: number; value?: number },
): Buffer {
  const b = Buffer.from(buf);
  switch (m.kind) {
    case 'flip':
      b[m.at] = b[m.at]! ^ (1 << m.bit!);
      return b;
    case 'set':
      if (b[m.at] === m.value) b[m.at] = (m.value! + 1) & 0xff;
      else b[m.at] = m.value!;
      return b;
    case 'delete':
      return Buffer.concat([b.subarray(0, m.at), b.subarray(m.at + 1)]);
    default:
      return Buffer.concat([b.subarray(0, m.at), Buffer.from([m.value!]), b.subarray(m.at)]);
  }
}

const sampleEvent: AuditEvent = {
  kind: 'breakglass',
  ticketId: '20261129T031200Z-7f3a9c',
  actions: ['push'],
  ref: 'refs/heads/main',
  oldSha: 'a'.repeat(40),
  newSha: 'b'.repeat(40),
  pusher: 'alice',
  requester: { principal: 'alice', keyid: 'SHA256:aliceKEYid' },
  approvers: [{ principal: 'bob', keyid: 'SHA256:bobKEYid' }],
  reason: 'INC-4711 payment outage hotfix',
  window: { notBefore: '2026-11-29T03:12:00Z', expiresAt: '2026-11-29T03:27:00Z' },
  recordedAt: '2026-11-29T03:14:09Z',
  recordedBy: 'pre-receive@git.example.com',
};
const sampleNote = formatNoteBlock(sampleEvent);
// One block naming several refs of one push (Ref/Update pairs repeat).
const sampleMultiRef = formatNoteBlock({
  ...sampleEvent,
  refs: [
    { ref: sampleEvent.ref, oldSha: sampleEvent.oldSha, newSha: sampleEvent.newSha },
    { ref: 'refs/heads/release/1', oldSha: 'c'.repeat(40), newSha: sampleEvent.newSha },
  ],
});

export interface FuzzTarget {
  readonly name: string;
  readonly property: fc.IProperty<never> | fc.IPropertyWithHooks<never>;
}

// bob approving with a FIDO key (sk-ssh-ed25519, FIDO form): an SSHSIG blob to mutate (S1-S4).
const bobSk = softSshKey('fuzz bob yubikey', true);
const skPolicy = parsePolicy(
  policyYaml().replace(`"${keys.bob.publicKey.text}"`, `"${bobSk.line}"`),
);
const skGood = addSignature(approvedEnvelope({}, []), bobSk);
const skBlob = skGood.signatures[1]!.sig;

/** The targets; `scale` multiplies nothing here, runs are chosen by the caller. */
export function fuzzTargets(): { name: string; property: fc.IRawProperty<unknown> }[] {
  const payloadLen = good.payload.length;
  const envLen = Buffer.byteLength(goodText);
  return [
    {
      name: 'envelope parser: arbitrary text',
      property: fc.property(fc.string({ maxLength: 2000 }), (s) =>
        onlyCodedErrors(() => parseEnvelope(s)),
      ),
    },
    {
      name: 'envelope parser: arbitrary JSON values',
      property: fc.property(fc.jsonValue({ maxDepth: 4 }), (v) =>
        onlyCodedErrors(() => parseEnvelope(JSON.stringify(v))),
      ),
    },
    {
      name: 'envelope parser: mutated serialised ticket never accepted unless identical',
      property: fc.property(byteMutation(envLen), (m) => {
        const bytes = mutate(Buffer.from(goodText), m);
        let env: Envelope;
        try {
          env = parseEnvelope(bytes);
        } catch (e) {
          if (e instanceof BreakglassError) return true;
          throw e;
        }
        // A mutation of JSON whitespace or of a keyid hint may still parse to a ticket that is
        // authentic; what must never happen is a changed payload or signature being accepted.
        const samePayload = env.payload.equals(good.payload);
        const sameSigs =
          env.signatures.length === good.signatures.length &&
          env.signatures.every((s, i) => s.sig.equals(good.signatures[i]!.sig));
        return !accepted(env) || (samePayload && sameSigs);
      }),
    },
    {
      name: 'signed payload bytes: any mutation is rejected',
      property: fc.property(byteMutation(payloadLen), (m) => {
        const payload = mutate(good.payload, m);
        return !accepted({ ...good, payload });
      }),
    },
    {
      name: 'signatures: any mutation of a signature loses that approval',
      property: fc.property(fc.nat(good.signatures.length - 1), byteMutation(64), (i, m) => {
        const sig = mutate(good.signatures[i]!.sig, m).subarray(0, 64);
        fc.pre(!sig.equals(good.signatures[i]!.sig));
        const signatures = good.signatures.map((s, j) => (j === i ? { ...s, sig } : s));
        return !accepted({ ...good, signatures });
      }),
    },
    {
      name: 'SSHSIG parser: arbitrary and mutated blobs only throw coded errors',
      property: fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)),
          byteMutation(skBlob.length).map((m) => mutate(skBlob, m)),
        ),
        (b) => onlyCodedErrors(() => parseSshSig(b)),
      ),
    },
    {
      name: 'SSHSIG: any mutation of an sk approval blob loses that approval',
      property: fc.property(byteMutation(skBlob.length), (m) => {
        const sig = mutate(skBlob, m);
        fc.pre(!sig.equals(skBlob));
        const env = {
          ...skGood,
          signatures: [skGood.signatures[0]!, { ...skGood.signatures[1]!, sig }],
        };
        try {
          const { signers } = verifySignatures(env, skPolicy.keyOwners);
          return signers.every((s) => s.principal !== 'bob');
        } catch (e) {
          if (e instanceof BreakglassError) return true;
          throw e;
        }
      }),
    },
    {
      name: 'payload parser: arbitrary bytes and JSON',
      property: fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          fc.jsonValue({ maxDepth: 4 }).map((v) => new TextEncoder().encode(JSON.stringify(v))),
        ),
        (b) => onlyCodedErrors(() => parsePayload(b)),
      ),
    },
    {
      name: 'payload parser: field-level mutations of a valid payload',
      property: fc.property(
        fc.constantFrom(...Object.keys(JSON.parse(good.payload.toString()))),
        fc.jsonValue({ maxDepth: 2 }),
        (field, value) => {
          const obj = JSON.parse(good.payload.toString()) as Record<string, unknown>;
          obj[field] = value;
          return onlyCodedErrors(() => parsePayload(Buffer.from(JSON.stringify(obj))));
        },
      ),
    },
    {
      name: 'policy parser: arbitrary text and mutated policies',
      property: fc.property(
        fc.oneof(
          fc.string({ maxLength: 500 }),
          fc
            .tuple(fc.nat(policyYaml().length - 1), fc.string({ maxLength: 8 }))
            .map(([at, s]) => policyYaml().slice(0, at) + s + policyYaml().slice(at + 1)),
        ),
        (text) => onlyCodedErrors(() => parsePolicy(text)),
      ),
    },
    {
      name: 'ref patterns, times, durations: arbitrary strings',
      property: fc.property(fc.string({ maxLength: 80 }), (s) =>
        onlyCodedErrors(() => {
          try {
            compileRefPattern(s);
          } finally {
            try {
              parseTime(s);
            } finally {
              parseDuration(s);
            }
          }
        }),
      ),
    },
    {
      name: 'note parser: arbitrary and mutated notes never throw; the fast path agrees or defers',
      property: fc.property(
        fc.oneof(
          fc.string({ maxLength: 1500 }),
          fc
            .tuple(fc.nat(sampleNote.length - 1), fc.string({ maxLength: 6 }))
            .map(([at, s]) => sampleNote.slice(0, at) + s + sampleNote.slice(at + 1)),
          fc
            .tuple(fc.nat(sampleMultiRef.length - 1), fc.string({ maxLength: 6 }))
            .map(([at, s]) => sampleMultiRef.slice(0, at) + s + sampleMultiRef.slice(at + 1)),
        ),
        (text) => {
          const slow = parseNote(text);
          // Whatever a mutated block still parses to formats back to one block with those events.
          for (const e of slow.events) {
            const again = parseNote(formatNoteBlock(e));
            if (again.errors.length > 0) return false;
            if (!again.events.some((x) => JSON.stringify(x) === JSON.stringify(e))) return false;
          }
          const fast = parseNoteFast(text);
          return fast === null || JSON.stringify(fast.events) === JSON.stringify(slow.events);
        },
      ),
    },
    {
      name: 'note format: any reason or incident round-trips as one block (no injected trailers)',
      property: fc.property(
        fc.string({ maxLength: 200 }),
        fc.string({ maxLength: 40 }),
        (reason, incident) => {
          const e: AuditEvent = { ...sampleEvent, reason, ...(incident ? { incident } : {}) };
          const parsed = parseNote(formatNoteBlock(e) + '\n' + sampleNote);
          return (
            parsed.errors.length === 0 &&
            parsed.events.length === 2 &&
            parsed.events[0]!.reason === reason &&
            (parsed.events[0]!.incident ?? '') === incident
          );
        },
      ),
    },
    {
      name: 'decidePush: arbitrary updates never throw and never accept a protected ref without a path',
      property: fc.property(
        fc.array(
          fc.record({
            ref: fc.oneof(
              fc.constantFrom(
                'refs/heads/main',
                'refs/heads/release/1',
                'refs/heads/main2',
                'refs/heads/feature',
              ),
              fc.string({ maxLength: 30 }),
            ),
            oldSha: fc.constantFrom('0'.repeat(40), 'a'.repeat(40)),
            newSha: fc.constantFrom('0'.repeat(40), 'b'.repeat(40)),
            fastForward: fc.boolean(),
            touchesPolicy: fc.boolean(),
          }),
          { maxLength: 5 },
        ),
        fc.boolean(),
        (updates, withTicket) => {
          const t = verifyTicketEnvelope(good, policy.keyOwners);
          const d = decidePush({
            policy,
            updates,
            pusher,
            candidates: withTicket ? [{ id: t.payload.id, ticket: t, state }] : [],
            now,
          });
          return d.updates.every(
            (u) =>
              u.path === 'unprotected' ||
              u.path === 'rejected' ||
              (u.path === 'breakglass' && withTicket && u.update.ref === 'refs/heads/main') ||
              u.path === 'normal',
          );
        },
      ),
    },
  ];
}
