// Ticket payload v1 (docs/rules.md "Ticket payload"): parsed strictly from the signed bytes;
// every malformed payload is refused with a code that says what kind of wrong it is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodePayload, parsePayload, type TicketPayloadJson } from '../../src/ticket/payload.ts';
import { buildTicketPayload, formatTicketId } from '../../src/ticket/sign.ts';
import { formatTime, parseTime } from '../../src/ticket/time.ts';
import { findDuplicateKey } from '../../src/ticket/strict-json.ts';
import { T0, ticketRequest, throwsCode } from '../helpers/fixtures.ts';

const base = (): Record<string, unknown> =>
  JSON.parse(JSON.stringify(buildTicketPayload(ticketRequest({ commits: ['a'.repeat(40)] }))));
const bytesOf = (obj: unknown): Buffer => Buffer.from(JSON.stringify(obj));
const withField = (path: string, value: unknown): Buffer => {
  const obj = base();
  const keys = path.split('.');
  let at = obj;
  for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
  if (value === undefined) delete at[keys[keys.length - 1]!];
  else at[keys[keys.length - 1]!] = value;
  return bytesOf(obj);
};

test('a v1 payload round-trips through encodePayload and parsePayload', () => {
  const json = buildTicketPayload(
    ticketRequest({ commits: ['a'.repeat(40)], incident: 'INC-4711', notBefore: T0 + 60_000 }),
  );
  const p = parsePayload(encodePayload(json));
  assert.equal(p.id, formatTicketId(T0, '7f3a9c'));
  assert.equal(p.id, '20261129T031200Z-7f3a9c');
  assert.deepEqual(p.scope, {
    refs: ['refs/heads/main'],
    actions: ['push'],
    commits: ['a'.repeat(40)],
  });
  assert.equal(p.incident, 'INC-4711');
  assert.deepEqual(p.times, { issuedAt: T0, notBefore: T0 + 60_000, expiresAt: T0 + 16 * 60_000 });
  // Field order is fixed, so the same request always gives the same bytes.
  assert.deepEqual(Object.keys(JSON.parse(encodePayload(json).toString())), [
    'type',
    'version',
    'id',
    'repository',
    'requester',
    'holder',
    'scope',
    'reason',
    'incident',
    'issuedAt',
    'notBefore',
    'expiresAt',
    'maxUses',
    'nonce',
  ]);
  const reordered = { ...json, type: undefined, version: undefined } as Partial<TicketPayloadJson>;
  assert.deepEqual(
    encodePayload({ ...reordered, type: json.type, version: 1 } as TicketPayloadJson),
    encodePayload(json),
  );
});

test('bytes that are not UTF-8 JSON objects are PAYLOAD_MALFORMED', () => {
  throwsCode(
    () => parsePayload(Buffer.from([0x7b, 0xff, 0x7d])),
    'PAYLOAD_MALFORMED',
    /UTF-8 JSON/,
  );
  throwsCode(() => parsePayload(Buffer.from('{"type":')), 'PAYLOAD_MALFORMED');
  throwsCode(() => parsePayload(Buffer.from('')), 'PAYLOAD_MALFORMED');
  throwsCode(() => parsePayload(Buffer.from('[]')), 'PAYLOAD_MALFORMED');
  throwsCode(() => parsePayload(Buffer.from('null')), 'PAYLOAD_MALFORMED');
  throwsCode(() => parsePayload(Buffer.from('"ticket"')), 'PAYLOAD_MALFORMED');
});

test('another version is VERSION_UNSUPPORTED, checked before the shape', () => {
  throwsCode(() => parsePayload(withField('version', 2)), 'VERSION_UNSUPPORTED', /version 2 /);
  throwsCode(() => parsePayload(bytesOf({ version: 2, anything: true })), 'VERSION_UNSUPPORTED');
  throwsCode(() => parsePayload(withField('version', '1')), 'VERSION_UNSUPPORTED');
  throwsCode(() => parsePayload(withField('version', 1.5)), 'VERSION_UNSUPPORTED');
  throwsCode(() => parsePayload(withField('version', undefined)), 'PAYLOAD_MALFORMED', /version/);
});

test('a missing required field is PAYLOAD_MALFORMED naming the field', () => {
  for (const field of [
    'type',
    'id',
    'repository',
    'requester',
    'holder',
    'scope',
    'scope.refs',
    'scope.actions',
    'reason',
    'issuedAt',
    'notBefore',
    'expiresAt',
    'maxUses',
    'nonce',
  ]) {
    throwsCode(
      () => parsePayload(withField(field, undefined)),
      'PAYLOAD_MALFORMED',
      new RegExp(`ticket payload ${field.replace('.', '\\.')}: `),
    );
  }
  // Optional ones may be left out.
  assert.doesNotThrow(() => parsePayload(withField('scope.commits', undefined)));
  assert.doesNotThrow(() => parsePayload(withField('incident', undefined)));
});

test('an extra field is PAYLOAD_MALFORMED, at the top or in scope', () => {
  throwsCode(() => parsePayload(withField('admin', true)), 'PAYLOAD_MALFORMED', /admin/);
  throwsCode(() => parsePayload(withField('scope.repos', ['x'])), 'PAYLOAD_MALFORMED', /repos/);
  // A "__proto__" key in JSON is an own property, and unknown like any other.
  const proto = encodePayload(buildTicketPayload(ticketRequest()))
    .toString()
    .replace(/}$/, ',"__proto__":{"maxUses":99}}');
  throwsCode(() => parsePayload(Buffer.from(proto)), 'PAYLOAD_MALFORMED');
});

test('wrong types and out-of-range values are PAYLOAD_MALFORMED', () => {
  const cases: [string, unknown][] = [
    ['type', 'git-breakglass/revocation'],
    ['id', 'ticket-1'],
    ['id', '20261129T031200Z-7F3A9C'],
    ['id', '20261129T031200Z-7f3a9c/../x'],
    ['repository', ''],
    ['repository', 'acme api'],
    ['requester', 42],
    ['requester', '-alice'],
    ['requester', 'alice bob'],
    ['holder', null],
    ['scope', ['refs/heads/main']],
    ['scope.refs', 'refs/heads/main'],
    ['scope.refs', []],
    ['scope.refs', [42]],
    ['scope.actions', 'push'],
    ['scope.actions', []],
    ['scope.actions', ['fly']],
    ['scope.actions', ['PUSH']],
    ['scope.commits', []],
    ['scope.commits', ['abc1234']],
    ['scope.commits', ['A'.repeat(40)]],
    ['scope.commits', ['a'.repeat(41)]],
    ['reason', ''],
    ['reason', 'x'.repeat(1001)],
    ['reason', 'hotfix\u0000'],
    ['reason', 'hotfix\r\nBreak-glass-Approvers: mallory'],
    ['reason', 'ansi \u001b[31mred'],
    ['incident', ''],
    ['maxUses', '1'],
    ['maxUses', 1.5],
    ['maxUses', 0],
    ['maxUses', -1],
    ['maxUses', 1001],
    ['nonce', 'short'],
    ['nonce', 'not base64 at all!!'],
    ['issuedAt', 1_700_000_000],
    ['expiresAt', 'x'.repeat(41)],
  ];
  for (const [field, value] of cases) {
    throwsCode(
      () => parsePayload(withField(field, value)),
      'PAYLOAD_MALFORMED',
      new RegExp(field.split('.')[0]!),
    );
  }
  // Tabs and newlines are fine in a reason.
  assert.equal(parsePayload(withField('reason', 'line 1\n\tline 2')).reason, 'line 1\n\tline 2');
});

test('duplicate actions are PAYLOAD_MALFORMED', () => {
  throwsCode(
    () => parsePayload(withField('scope.actions', ['push', 'push'])),
    'PAYLOAD_MALFORMED',
    /duplicate action/,
  );
});

test('a bad ref pattern in scope is PAYLOAD_MALFORMED naming the entry', () => {
  for (const bad of ['refs/heads/../main', 'refs/heads/a b', 'refs/heads/x**', 'refs/heads/.x']) {
    throwsCode(
      () => parsePayload(withField('scope.refs', ['refs/heads/main', bad])),
      'PAYLOAD_MALFORMED',
      /scope\.refs\[1\]/,
    );
  }
});

test('times without Z, with an offset, impossible dates and leap seconds are TIME_INVALID', () => {
  for (const t of [
    '2026-11-29T03:12:00', // no zone
    '2026-11-29T03:12:00+00:00', // offset
    '2026-11-29T03:12:00-05:00',
    '2026-11-29t03:12:00z', // lower case
    '2026-11-29 03:12:00Z', // space
    '2026-11-29T03:12Z', // no seconds
    '2026-11-29', // date only
    '2026-02-30T03:12:00Z', // 30 February
    '2026-02-29T03:12:00Z', // not a leap year
    '2026-13-01T00:00:00Z',
    '2026-11-31T00:00:00Z',
    '2026-11-29T24:00:00Z',
    '2026-11-29T23:60:00Z',
    '2016-12-31T23:59:60Z', // a real leap second, still refused
    '1969-12-31T23:59:59Z', // before the epoch
    '+02026-11-29T03:12:00Z',
    '2026-11-29T03:12:00.Z',
    '2026-11-29T03:12:00.1234567891Z',
    'tomorrow',
  ]) {
    throwsCode(() => parseTime(t, 'expiresAt'), 'TIME_INVALID', /^expiresAt: /);
    throwsCode(() => parsePayload(withField('expiresAt', t)), 'TIME_INVALID', /expiresAt/);
  }
  throwsCode(() => parseTime(42), 'TIME_INVALID');
  throwsCode(() => parseTime(undefined), 'TIME_INVALID');
  // Valid: whole seconds, fractions up to nanoseconds, 29 February in a leap year.
  assert.equal(parseTime('2026-11-29T03:12:00Z'), Date.UTC(2026, 10, 29, 3, 12, 0));
  assert.equal(parseTime('2026-11-29T03:12:00.5Z'), Date.UTC(2026, 10, 29, 3, 12, 0, 500));
  assert.equal(parseTime('2026-11-29T03:12:00.123456789Z'), Date.UTC(2026, 10, 29, 3, 12, 0, 123));
  assert.equal(parseTime('2028-02-29T00:00:00Z'), Date.UTC(2028, 1, 29));
  for (let ms = 0; ms < 1000; ms++) {
    const t = `2026-01-01T00:00:00.${String(ms).padStart(3, '0')}Z`;
    assert.equal(parseTime(t) - Date.UTC(2026, 0, 1), ms, t);
  }
  assert.equal(formatTime(T0 + 999), '2026-11-29T03:12:00Z');
  assert.equal(parseTime(formatTime(T0)), T0);
});

test('expiresAt must be after notBefore, and notBefore not before issuedAt', () => {
  throwsCode(
    () => parsePayload(withField('expiresAt', '2026-11-29T03:12:00Z')),
    'PAYLOAD_MALFORMED',
    /expiresAt must be after notBefore/,
  );
  throwsCode(
    () => parsePayload(withField('expiresAt', '2026-11-29T03:11:59Z')),
    'PAYLOAD_MALFORMED',
    /expiresAt/,
  );
  throwsCode(
    () => parsePayload(withField('notBefore', '2026-11-29T03:11:00Z')),
    'PAYLOAD_MALFORMED',
    /notBefore must not be before issuedAt/,
  );
});

test('a field given twice is PAYLOAD_MALFORMED: no parser may read a different ticket', () => {
  const bytes = encodePayload(buildTicketPayload(ticketRequest())).toString();
  // JSON.parse keeps the last "refs", another reader may keep the first.
  const twice = bytes.replace(
    '"refs":["refs/heads/main"]',
    '"refs":["refs/heads/docs"],"refs":["refs/heads/main"]',
  );
  assert.notEqual(twice, bytes);
  throwsCode(() => parsePayload(Buffer.from(twice)), 'PAYLOAD_MALFORMED', /"refs" twice/);
  // Escapes do not hide it: "\u0068older" is "holder".
  const escaped = bytes.replace('"holder":"alice"', '"holder":"alice","\\u0068older":"mallory"');
  throwsCode(() => parsePayload(Buffer.from(escaped)), 'PAYLOAD_MALFORMED', /"holder" twice/);
  // The same key in different objects, and keys that look alike in values, are fine.
  assert.doesNotThrow(() =>
    parsePayload(
      Buffer.from(
        bytes.replace(
          '"reason":"INC-4711 payment outage hotfix"',
          '"reason":"\\"type\\": x, {\\"id\\":1}"',
        ),
      ),
    ),
  );
});

test('findDuplicateKey: per object, through nesting, strings and escapes', () => {
  assert.equal(findDuplicateKey('{"a":1,"b":2}'), undefined);
  assert.equal(findDuplicateKey('[{"a":1},{"a":2}]'), undefined);
  assert.equal(findDuplicateKey('{"a":{"b":1},"b":2}'), undefined);
  assert.equal(findDuplicateKey('{"a":[1,{"a":1}],"b":[]}'), undefined);
  assert.equal(findDuplicateKey('{"a":"\\"a\\":","b":"a"}'), undefined);
  assert.equal(findDuplicateKey('{"a":[1,{"a":1}],"a":2}'), 'a');
  assert.equal(findDuplicateKey('{"x":{"a":1,"b":{},"a":2}}'), 'a');
  assert.equal(findDuplicateKey('{"a\\\\":1,"a\\\\":2}'), 'a\\');
  assert.equal(findDuplicateKey('{"\\"":1,"\\u0022":2}'), '"');
  assert.equal(findDuplicateKey(' { "k" : 1 , "k" : 2 } '), 'k');
  assert.equal(findDuplicateKey('"just a string"'), undefined);
});

test('findDuplicateKey stops on text that is not JSON (no hang, no throw)', () => {
  for (const junk of ['{"a', '{"a\\', '{"a":"', '"', '{{{', '}}]]']) {
    assert.equal(findDuplicateKey(junk), undefined, junk);
  }
});
