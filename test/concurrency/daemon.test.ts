// Concurrent ticketed pushes over `git daemon` on loopback: N pushes give N recorded events, none
// twice; K pushes sharing a single-use ticket let exactly one through. The default N keeps
// `npm test` short on 2 cores; BG_CONCURRENCY=50 runs the full size (DESIGN §9).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseNote } from '../../src/audit/note.ts';
import { TestServer, type DevClone } from '../helpers/server.ts';
import { distinctTicketPushes, sharedTicketPushes, startDaemon } from './lib.ts';

const N = Number(process.env.BG_CONCURRENCY ?? 8);
const K = 10;

describe(`concurrent pushes over git daemon (${N} distinct tickets, ${K} sharing one)`, () => {
  let server: TestServer;
  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  let clone: DevClone;
  before(async () => {
    const branches = [
      ...Array.from({ length: N }, (_, i) => `release/${i + 1}`),
      ...Array.from({ length: K }, (_, i) => `release/shared-${i + 1}`),
    ];
    // git daemon authenticates nobody: the server says so, tickets are named with -o.
    server = await TestServer.create({ identity: 'none', branches });
    daemon = await startDaemon(server);
    clone = await server.clone('alice');
  });
  after(async () => {
    await daemon?.stop();
    await server?.close();
  });

  it(`${N} concurrent ticketed pushes: ${N} events recorded, none duplicated`, async () => {
    const r = await distinctTicketPushes(server, clone, daemon.url, N);
    const failed = r.outcomes.filter((o) => o.code !== 0);
    assert.deepEqual(failed, [], 'every push accepted');
    for (const e of r.events) assert.equal(await server.ref(e.ref), e.newSha);
    assert.deepEqual(r.verdict.noteCounts, Array(N).fill(1), 'each event once in its note');
    assert.deepEqual(r.verdict.useCounts, Array(N).fill(1), 'each ticket used once');
    assert.equal(r.verdict.eventsInNotes, N);
    assert.equal(r.verdict.pending + r.verdict.processing, 0, 'journal drained');
    assert.equal(r.verdict.done, N);
    console.log(`# ${N} concurrent pushes over git daemon: ${Math.round(r.ms)} ms`);
  });

  it(`${K} concurrent pushes sharing a single-use ticket: exactly one accepted`, async () => {
    const before = await server.snapshot();
    const r = await sharedTicketPushes(server, clone, daemon.url, K);
    const accepted = r.outcomes.filter((o) => o.code === 0);
    assert.equal(accepted.length, 1, r.outcomes.map((o) => `${o.ref}: ${o.code}`).join(', '));
    for (const o of r.outcomes.filter((x) => x.code !== 0)) {
      assert.match(o.stderr, /TICKET_USED_UP/, o.stderr);
    }
    let moved = 0;
    let events = 0;
    for (let i = 0; i < K; i++) {
      const ref = `refs/heads/release/shared-${i + 1}`;
      if ((await server.ref(ref)) === r.shas[i]) {
        moved++;
        const note = await server.note(r.shas[i]!);
        events += parseNote(note ?? '').events.filter((e) => e.ticketId === r.ticket).length;
      } else {
        assert.equal(await server.ref(ref), server.seed, `${ref} unchanged`);
      }
    }
    assert.equal(moved, 1, 'one ref moved');
    assert.equal(events, 1, 'one event recorded');
    const uses = await server.git(['rev-list', '--count', `refs/breakglass/consumed/${r.ticket}`]);
    assert.equal(uses.stdout.trim(), '1');
    const state = await server.stateFiles();
    const slots = Object.keys(state).filter((f) => f.startsWith(`reservations/${r.ticket}/`));
    assert.deepEqual(slots, [`reservations/${r.ticket}/0`]);
    assert.notEqual(before.refs, await server.refs());
    console.log(`# ${K} pushes sharing one single-use ticket: ${Math.round(r.ms)} ms`);
  });
});
