// DSSE envelopes: PAE bytes exactly as the spec gives them, and a strict parser that refuses
// every malformed envelope with a code (docs/rules.md "Input limits").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_ENVELOPE_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_SIGNATURES,
  pae,
  parseEnvelope,
  serializeEnvelope,
} from '../../src/ticket/dsse.ts';
import { approvedEnvelope, throwsCode } from '../helpers/fixtures.ts';

const goodText = serializeEnvelope(approvedEnvelope());
const good = JSON.parse(goodText) as {
  payloadType: string;
  payload: string;
  signatures: { keyid: string; sig: string }[];
};
const withFields = (over: Record<string, unknown>): string => JSON.stringify({ ...good, ...over });

test('PAE is the DSSE spec example byte for byte', () => {
  const bytes = pae('http://example.com/HelloWorld', Buffer.from('hello world'));
  assert.equal(bytes.toString('latin1'), 'DSSEv1 29 http://example.com/HelloWorld 11 hello world');
});

test('PAE counts bytes, not characters, and keeps binary payloads as they are', () => {
  const payload = Buffer.from([0xe2, 0x82, 0xac, 0x00, 0xff]); // "€", NUL, 0xff
  const bytes = pae('t/é', payload);
  assert.deepEqual(bytes, Buffer.concat([Buffer.from('DSSEv1 4 t/é 5 ', 'utf8'), payload]));
  assert.equal(pae('', Buffer.alloc(0)).toString(), 'DSSEv1 0  0 ');
});

test('an envelope survives serialize -> parse unchanged, from text or bytes', () => {
  const env = approvedEnvelope();
  for (const input of [goodText, Buffer.from(goodText)]) {
    const back = parseEnvelope(input);
    assert.equal(back.payloadType, env.payloadType);
    assert.deepEqual(back.payload, env.payload);
    assert.deepEqual(back.signatures, env.signatures);
  }
  assert.equal(serializeEnvelope(parseEnvelope(goodText)), goodText);
});

test('keyid is optional (DSSE allows it); an absent keyid reads as empty', () => {
  const env = parseEnvelope(withFields({ signatures: [{ sig: good.signatures[0]!.sig }] }));
  assert.equal(env.signatures[0]!.keyid, '');
});

test('truncated or non-JSON envelopes are ENVELOPE_MALFORMED', () => {
  throwsCode(
    () => parseEnvelope(goodText.slice(0, goodText.length / 2)),
    'ENVELOPE_MALFORMED',
    /JSON/,
  );
  throwsCode(() => parseEnvelope(''), 'ENVELOPE_MALFORMED');
  throwsCode(() => parseEnvelope('ticket: yes'), 'ENVELOPE_MALFORMED', /JSON/);
  throwsCode(() => parseEnvelope('[]'), 'ENVELOPE_MALFORMED', /object/);
  throwsCode(() => parseEnvelope('null'), 'ENVELOPE_MALFORMED', /object/);
  throwsCode(() => parseEnvelope('"x"'), 'ENVELOPE_MALFORMED', /object/);
});

test('invalid UTF-8 is ENVELOPE_MALFORMED', () => {
  const bytes = Buffer.from(goodText);
  const broken = Buffer.concat([
    bytes.subarray(0, 10),
    Buffer.from([0xc3, 0x28]),
    bytes.subarray(10),
  ]);
  throwsCode(() => parseEnvelope(broken), 'ENVELOPE_MALFORMED', /UTF-8/);
  throwsCode(() => parseEnvelope(Buffer.from([0xff, 0xfe, 0x7b, 0x7d])), 'ENVELOPE_MALFORMED');
});

test('bad base64 in payload or sig is ENVELOPE_MALFORMED', () => {
  const sig = good.signatures[0]!;
  for (const payload of [
    good.payload.replace(/=+$/, ''), // unpadded
    good.payload.slice(0, 8) + '\n' + good.payload.slice(8), // whitespace
    good.payload.replace(/\+/g, '-').replace(/\//g, '_') + '-', // base64url
    '!!!!',
    '',
  ]) {
    if (payload === '') continue; // empty is valid base64 of nothing; checked below
    throwsCode(() => parseEnvelope(withFields({ payload })), 'ENVELOPE_MALFORMED', /base64/);
  }
  throwsCode(() => parseEnvelope(withFields({ payload: 42 })), 'ENVELOPE_MALFORMED');
  throwsCode(
    () =>
      parseEnvelope(
        withFields({ signatures: [{ keyid: sig.keyid, sig: sig.sig.replace(/==$/, '') }] }),
      ),
    'ENVELOPE_MALFORMED',
    /base64/,
  );
  throwsCode(
    () => parseEnvelope(withFields({ signatures: [{ keyid: sig.keyid, sig: null }] })),
    'ENVELOPE_MALFORMED',
  );
});

test('unknown fields are ENVELOPE_MALFORMED, at the top and in a signature', () => {
  throwsCode(
    () => parseEnvelope(withFields({ extra: 1 })),
    'ENVELOPE_MALFORMED',
    /unknown field "extra"/,
  );
  throwsCode(
    () => parseEnvelope(withFields({ signatures: [{ ...good.signatures[0], cert: 'x' }] })),
    'ENVELOPE_MALFORMED',
    /signatures\[0\] has an unknown field "cert"/,
  );
  throwsCode(
    () => parseEnvelope(JSON.stringify({ payloadType: good.payloadType, payload: good.payload })),
    'ENVELOPE_MALFORMED',
    /signatures/,
  );
});

test('payloadType must be a short non-empty string; signatures an array of objects', () => {
  throwsCode(() => parseEnvelope(withFields({ payloadType: '' })), 'ENVELOPE_MALFORMED');
  throwsCode(() => parseEnvelope(withFields({ payloadType: 7 })), 'ENVELOPE_MALFORMED');
  throwsCode(
    () => parseEnvelope(withFields({ payloadType: 'x'.repeat(201) })),
    'ENVELOPE_MALFORMED',
  );
  throwsCode(() => parseEnvelope(withFields({ signatures: {} })), 'ENVELOPE_MALFORMED');
  throwsCode(() => parseEnvelope(withFields({ signatures: ['sig'] })), 'ENVELOPE_MALFORMED');
  throwsCode(() => parseEnvelope(withFields({ signatures: [[]] })), 'ENVELOPE_MALFORMED');
  throwsCode(
    () => parseEnvelope(withFields({ signatures: [{ keyid: 5, sig: good.signatures[0]!.sig }] })),
    'ENVELOPE_MALFORMED',
  );
  throwsCode(
    () =>
      parseEnvelope(
        withFields({ signatures: [{ keyid: 'k'.repeat(101), sig: good.signatures[0]!.sig }] }),
      ),
    'ENVELOPE_MALFORMED',
  );
});

test('a signature that is neither 64 bytes nor an SSHSIG blob is SSHSIG_MALFORMED (S1)', () => {
  for (const n of [0, 32, 63, 65, 96]) {
    throwsCode(
      () =>
        parseEnvelope(
          withFields({ signatures: [{ keyid: 'k', sig: Buffer.alloc(n, 1).toString('base64') }] }),
        ),
      'SSHSIG_MALFORMED',
    );
  }
  // Longer than the largest SSHSIG blob is refused before it is decoded.
  throwsCode(
    () =>
      parseEnvelope(
        withFields({ signatures: [{ keyid: 'k', sig: Buffer.alloc(1100, 1).toString('base64') }] }),
      ),
    'INPUT_TOO_LARGE',
  );
});

test('size limits: envelope 64 KiB, payload 16 KiB, 32 signatures -> INPUT_TOO_LARGE', () => {
  const big = withFields({ padding: 'y'.repeat(MAX_ENVELOPE_BYTES) });
  throwsCode(() => parseEnvelope(big), 'INPUT_TOO_LARGE', /65536/);
  throwsCode(() => parseEnvelope(Buffer.from(big)), 'INPUT_TOO_LARGE');
  // The size is measured in bytes: 22,000 three-byte characters are over 64 KiB.
  throwsCode(
    () => parseEnvelope(JSON.stringify({ payloadType: '€'.repeat(22_000) })),
    'INPUT_TOO_LARGE',
  );

  // One byte over is refused, also when its base64 is no longer than that of the limit.
  for (const n of [MAX_PAYLOAD_BYTES + 1, MAX_PAYLOAD_BYTES + 2, MAX_PAYLOAD_BYTES + 3]) {
    const payload = Buffer.alloc(n, 0x20).toString('base64');
    throwsCode(() => parseEnvelope(withFields({ payload })), 'INPUT_TOO_LARGE', /payload/);
  }
  assert.doesNotThrow(() =>
    parseEnvelope(
      withFields({ payload: Buffer.alloc(MAX_PAYLOAD_BYTES, 0x20).toString('base64') }),
    ),
  );

  const sigs = Array.from({ length: MAX_SIGNATURES + 1 }, () => good.signatures[0]);
  throwsCode(
    () => parseEnvelope(withFields({ signatures: sigs })),
    'INPUT_TOO_LARGE',
    /32 signatures/,
  );
  assert.equal(
    parseEnvelope(withFields({ signatures: sigs.slice(0, MAX_SIGNATURES) })).signatures.length,
    32,
  );
});

test('an envelope field given twice is ENVELOPE_MALFORMED', () => {
  const twice = goodText.replace(
    '"payload":',
    `"payload": ${JSON.stringify(good.payload)},\n  "payload":`,
  );
  assert.notEqual(twice, goodText);
  throwsCode(() => parseEnvelope(twice), 'ENVELOPE_MALFORMED', /"payload" twice/);
  const sigTwice = withFields({
    signatures: [{ keyid: 'a', sig: good.signatures[0]!.sig }],
  }).replace('"keyid":"a"', '"keyid":"a","keyid":"b"');
  throwsCode(() => parseEnvelope(sigTwice), 'ENVELOPE_MALFORMED', /"keyid" twice/);
});
