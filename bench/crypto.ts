// Ed25519 verify: Node's native implementation vs tweetnacl's pure JS, side by side.
// Run: node --import tsx bench/crypto.ts
import nacl from 'tweetnacl';
import { verifyEd25519, signEd25519 } from '../src/ticket/keys.ts';
import { pae } from '../src/ticket/dsse.ts';
import { TICKET_PAYLOAD_TYPE } from '../src/ticket/payload.ts';
import { approvedEnvelope, keys } from '../test/helpers/fixtures.ts';
import { machine, ms, summarize } from './stats.ts';

const env = approvedEnvelope();
const message = pae(TICKET_PAYLOAD_TYPE, env.payload);
const sig = signEd25519(keys.alice, message);
const key = keys.alice.publicKey;

function timePerOp(f: () => boolean, ops: number): number[] {
  const samples: number[] = [];
  for (let round = 0; round < 7; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < ops; i++) if (!f()) throw new Error('verify failed');
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6 / ops);
  }
  return samples;
}

const native = summarize(timePerOp(() => verifyEd25519(key, message, sig), 2000));
const js = summarize(timePerOp(() => nacl.sign.detached.verify(message, sig, key.raw), 40));
const lines = [
  '## Ed25519 verify: native vs tweetnacl',
  '',
  `Machine: ${machine()}`,
  'Command: `node --import tsx bench/crypto.ts` (7 rounds; 2,000 native / 40 tweetnacl verifies a round)',
  '',
  '| implementation | median per verify | min | max |',
  '| --- | --- | --- | --- |',
  `| Node native (\`crypto.verify\`) | ${ms(native.median)} | ${ms(native.min)} | ${ms(native.max)} |`,
  `| tweetnacl (pure JS) | ${ms(js.median)} | ${ms(js.min)} | ${ms(js.max)} |`,
  '',
  `Native is ${(js.median / native.median).toFixed(0)}x faster; tickets are verified natively, tweetnacl only signs.`,
  '',
];
console.log(lines.join('\n'));
