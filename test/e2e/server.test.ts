// The server side end to end (DESIGN §1, §6, §7): real clones push to a real bare repository
// with the installed hooks, over file://, git daemon and ssh. Rejections are checked by their
// code, acceptance by the ref, the banner and the exact note.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  sshUnavailable,
  TestServer,
  USERS,
  type DevClone,
  type RunResult,
  type Transport,
} from '../helpers/server.ts';

const RELEASES = Array.from({ length: 30 }, (_, i) => `release/${i + 1}`);

/** The note lines we can predict exactly; `Recorded` is checked by shape. */
function expectedNote(
  dev: DevClone,
  id: string,
  e: { action: string; ref: string; old: string; new: string; pusher: string; extra?: string[] },
): RegExp {
  const t = dev.tickets.get(id)!;
  const lines = [
    `Break-glass-Ticket: ${id}`,
    `Break-glass-Action: ${e.action}`,
    `Break-glass-Ref: ${e.ref}`,
    `Break-glass-Update: ${e.old}..${e.new}`,
    `Break-glass-Pusher: ${e.pusher}`,
    `Break-glass-Requester: ${t.requester} ${USERS[dev.user].publicKey.keyid}`,
    `Break-glass-Approvers: bob ${USERS.bob.publicKey.keyid}`,
    `Break-glass-Reason: ${t.reason}`,
    `Break-glass-Window: ${t.notBefore}/${t.expiresAt}`,
    ...(e.extra ?? []),
  ];
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(
    `^${lines.map(esc).join('\\n')}\\nBreak-glass-Recorded: \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z pre-receive@\\S+\\n$`,
  );
}

function refused(r: RunResult, code: string): void {
  assert.notEqual(r.code, 0, `expected the push to be refused:\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(code), `expected ${code} in:\n${r.stderr}`);
  assert.match(r.stderr, /pre-receive hook declined/);
}

function accepted(r: RunResult, id: string): void {
  assert.equal(r.code, 0, `expected the push to be accepted:\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(id), 'the banner names the ticket');
  assert.match(r.stderr, /this push is recorded/i, 'the banner says the push is recorded');
}

/** A rejected push must leave refs, notes, reservations and the journal exactly as they were. */
async function unchangedBy(server: TestServer, push: () => Promise<RunResult>): Promise<RunResult> {
  const before = await server.snapshot();
  const r = await push();
  assert.deepEqual(await server.snapshot(), before, 'a refused push changed the server');
  return r;
}

describe('server over file://', () => {
  let server: TestServer;
  let alice: DevClone;
  before(async () => {
    server = await TestServer.create({ branches: RELEASES });
    alice = await server.clone('alice');
  });
  after(async () => {
    await server?.close();
  });

  it('refuses a direct push to main and leaves no trace', async () => {
    await alice.commit('fix.txt', 'hotfix\n', 'Fix payment timeout');
    const r = await unchangedBy(server, () => alice.push(['HEAD:main']));
    refused(r, 'TICKET_REQUIRED');
    assert.match(r.stderr, /refs\/heads\/main/);
    // install-hooks created the notes ref (E3): it holds no note.
    const notes = await server.git(['notes', '--ref=breakglass', 'list']);
    assert.equal(notes.stdout, '');
  });

  it('accepts the ticketed push with a banner and writes the exact note', async () => {
    const head = await alice.head();
    const id = await alice.makeTicket({ commits: [head] });
    assert.equal((await alice.pushTickets([id])).code, 0);
    const r = await alice.push(['HEAD:main'], { tickets: [id] });
    accepted(r, id);
    assert.equal(await server.ref('refs/heads/main'), head);
    const note = await server.note(head);
    assert.match(
      note ?? '',
      expectedNote(alice, id, {
        action: 'push',
        ref: 'refs/heads/main',
        old: server.seed,
        new: head,
        pusher: 'alice',
      }),
    );
    assert.notEqual(await server.ref(`refs/breakglass/consumed/${id}`), null);

    // What anyone sees after fetching the notes.
    const bob = await server.clone('bob');
    await bob.git(['fetch', 'origin', 'refs/notes/breakglass:refs/notes/breakglass'], {
      check: true,
    });
    const log = await bob.git(['log', '--notes=breakglass', '-1', 'origin/main'], { check: true });
    assert.match(log.stdout, /Notes \(breakglass\):\n {4}Break-glass-Ticket: /);
    assert.match(log.stdout, new RegExp(`Break-glass-Ticket: ${id}\\n`));

    // Used up: a second push with it is refused and leaves no trace.
    await alice.commit('fix.txt', 'hotfix 2\n', 'Second fix');
    const again = await unchangedBy(server, () => alice.push(['HEAD:main'], { tickets: [id] }));
    refused(again, 'TICKET_USED_UP');
  });

  it('refuses a force push whose ticket lacks force-push, accepts one that has it', async () => {
    const tip = (await server.ref('refs/heads/main'))!;
    await alice.git(['reset', '-q', '--hard', server.seed], { check: true });
    const rewritten = await alice.commit('fix.txt', 'rewritten\n', 'Rewrite');
    const pushOnly = await alice.makeTicket({ commits: [rewritten] });
    await alice.pushTickets([pushOnly]);
    const r = await unchangedBy(server, () =>
      alice.push(['HEAD:main'], { tickets: [pushOnly], force: true }),
    );
    refused(r, 'SCOPE_ACTION');
    assert.match(r.stderr, /force-push/);

    const force = await alice.makeTicket({ actions: ['force-push'], commits: [rewritten] });
    await alice.pushTickets([force]);
    const ok = await alice.push(['HEAD:main'], { tickets: [force], force: true });
    accepted(ok, force);
    assert.equal(await server.ref('refs/heads/main'), rewritten);
    const note = (await server.note(rewritten)) ?? '';
    assert.match(note, new RegExp(`Break-glass-Ticket: ${force}\\n`));
    assert.match(note, /Break-glass-Action: force-push\n/);
    assert.match(note, new RegExp(`Break-glass-Update: ${tip}\\.\\.${rewritten}\\n`));
    assert.match(note, new RegExp(`Break-glass-Replaced: ${tip}\\n`));
    assert.match(note, new RegExp(`Break-glass-Dropped: 1 commit: ${tip}\\n`));
    // The replaced tip carries the record too, so the dropped work is explained where it lies.
    assert.match((await server.note(tip)) ?? '', new RegExp(`Break-glass-Ticket: ${force}\\n`));
  });

  it('lets exactly one of 10 concurrent pushes holding one single-use ticket through', async () => {
    const refs = RELEASES.slice(0, 10);
    const commits = await alice.commitsOn(server.seed, refs.length, 'Attempt');
    const id = await alice.makeTicket({ refs: ['release/*'], maxUses: 1 });
    await alice.pushTickets([id]);
    const results = await Promise.all(
      refs.map((ref, i) => alice.push([`${commits[i]}:refs/heads/${ref}`], { tickets: [id] })),
    );
    const winners = results.flatMap((r, i) => (r.code === 0 ? [i] : []));
    assert.equal(winners.length, 1, results.map((r) => r.stderr).join('\n---\n'));
    for (const [i, r] of results.entries()) if (i !== winners[0]) refused(r, 'TICKET_USED_UP');
    const notes = await Promise.all(commits.map((c) => server.note(c)));
    assert.deepEqual(
      notes.map((n) => n !== null),
      commits.map((_, i) => i === winners[0]),
    );
    for (const [i, ref] of refs.entries()) {
      assert.equal(
        await server.ref(`refs/heads/${ref}`),
        i === winners[0] ? commits[i] : server.seed,
      );
    }
    const uses = await server.git(['rev-list', '--count', `refs/breakglass/consumed/${id}`]);
    assert.equal(uses.stdout.trim(), '1');
  });

  it('records all 20 of 20 concurrent pushes with distinct tickets', async () => {
    const refs = RELEASES.slice(10, 30);
    const commits = await alice.commitsOn(server.seed, refs.length, 'Push');
    const ids: string[] = [];
    for (const [i, ref] of refs.entries()) {
      ids.push(await alice.makeTicket({ refs: [ref], commits: [commits[i]!] }));
    }
    assert.equal((await alice.pushTickets(ids)).code, 0);
    const results = await Promise.all(
      refs.map((ref, i) => alice.push([`${commits[i]}:refs/heads/${ref}`], { tickets: [ids[i]!] })),
    );
    for (const [i, r] of results.entries()) accepted(r, ids[i]!);
    for (const [i, c] of commits.entries()) {
      const note = await server.note(c);
      assert.match(note ?? '', new RegExp(`Break-glass-Ticket: ${ids[i]}\\n`), `note on ${c}`);
      assert.notEqual(await server.ref(`refs/breakglass/consumed/${ids[i]}`), null);
    }
    const state = await server.stateFiles();
    assert.deepEqual(
      Object.keys(state).filter((f) => f.startsWith('journal/pending/')),
      [],
      'every pending event was recorded',
    );
  });
});

describe('server over git daemon', () => {
  let server: TestServer;
  before(async () => {
    // git daemon authenticates nobody: the server is told so, tickets must be named with -o.
    server = await TestServer.create({ identity: 'none' });
  });
  after(async () => {
    await server?.close();
  });

  it('refuses a direct push, accepts the ticketed one with its note, refuses a second use', async () => {
    const alice = await server.clone('alice', 'git');
    const head = await alice.commit('fix.txt', 'hotfix\n');
    refused(await unchangedBy(server, () => alice.push(['HEAD:main'])), 'TICKET_REQUIRED');
    const id = await alice.makeTicket({ commits: [head] });
    assert.equal((await alice.pushTickets([id])).code, 0);
    accepted(await alice.push(['HEAD:main'], { tickets: [id] }), id);
    assert.equal(await server.ref('refs/heads/main'), head);
    assert.match((await server.note(head)) ?? '', new RegExp(`Break-glass-Ticket: ${id}\\n`));
    await alice.commit('fix.txt', 'again\n');
    refused(
      await unchangedBy(server, () => alice.push(['HEAD:main'], { tickets: [id] })),
      'TICKET_USED_UP',
    );
  });
});

for (const transport of ['ssh'] as Transport[]) {
  const skip = sshUnavailable();
  describe(`server over ${transport}`, () => {
    let server: TestServer;
    before(async () => {
      if (!skip) server = await TestServer.create();
    });
    after(async () => {
      await server?.close();
    });

    it(
      'knows who pushed: the holder gets through, another person with the same ticket does not',
      { skip: skip ? `skipped: ${skip}` : false },
      async () => {
        const alice = await server.clone('alice', transport);
        const head = await alice.commit('fix.txt', 'hotfix\n');
        refused(await unchangedBy(server, () => alice.push(['HEAD:main'])), 'TICKET_REQUIRED');
        const id = await alice.makeTicket({ commits: [head] });
        assert.equal((await alice.pushTickets([id])).code, 0);

        const bob = await server.clone('bob', transport);
        await bob.git(['fetch', '-q', alice.dir, `${head}`], { check: true });
        refused(
          await unchangedBy(server, () => bob.push([`${head}:refs/heads/main`], { tickets: [id] })),
          'HOLDER_MISMATCH',
        );

        accepted(await alice.push(['HEAD:main'], { tickets: [id] }), id);
        assert.match(
          (await server.note(head)) ?? '',
          expectedNote(alice, id, {
            action: 'push',
            ref: 'refs/heads/main',
            old: server.seed,
            new: head,
            pusher: 'alice',
          }),
        );
      },
    );
  });
}
