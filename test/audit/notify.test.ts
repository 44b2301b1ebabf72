// The notification hook: `git config breakglass.notify` gets the recorded events as JSON; a
// hanging command is killed, a failing one is logged, and the event stays recorded either way.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseNote } from '../../src/audit/note.ts';
import { recordEvents } from '../../src/git/record.ts';
import { notifyEvents } from '../../src/server/notify.ts';
import { GIT_ENV, makeRepo, pushEvent, TICKET, type TempRepo } from '../record/repo.ts';

let repo: TempRepo;
const env = GIT_ENV;

before(async () => {
  repo = makeRepo(3);
  const [c1, , c3] = repo.commits;
  await recordEvents(
    repo.gitDir,
    [{ event: pushEvent(c1!, c3!), commits: repo.commits.slice(1) }],
    {
      env,
    },
  );
});

after(() => repo?.cleanup());

function short() {
  const [c1, , c3] = repo.commits;
  return { ticket: TICKET, ref: 'refs/heads/main', oldSha: c1!, newSha: c3!, commits: 2 };
}

function logLines(): string[] {
  const file = join(repo.gitDir, 'breakglass', 'notify.log');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return state(pid) !== 'Z';
}

function noteOnTip(): string {
  return repo.git(['notes', '--ref', 'refs/notes/breakglass', 'show', repo.commits[2]!]);
}

test('no command configured: nothing runs', async () => {
  const r = await notifyEvents(repo.gitDir, env, [short()]);
  assert.equal(r.status, 'not-configured');
});

test('the command receives the full recorded event as JSON on stdin', async () => {
  repo.git([
    'config',
    'breakglass.notify',
    'cat > notified.json; echo "$BREAKGLASS_EVENTS" > count',
  ]);
  const r = await notifyEvents(repo.gitDir, env, [short()], {
    now: Date.parse('2026-11-29T03:15:00Z'),
  });
  assert.equal(r.status, 'ok');
  assert.equal(r.exitCode, 0);
  const doc = JSON.parse(readFileSync(join(repo.gitDir, 'notified.json'), 'utf8'));
  assert.equal(doc.schemaVersion, 1);
  assert.equal(doc.type, 'git-breakglass/events');
  assert.equal(doc.events.length, 1);
  const e = doc.events[0];
  // Filled in from the audit note: what `bg-sign audit` shows.
  assert.equal(e.ticketId, TICKET);
  assert.equal(e.pusher, 'alice');
  assert.equal(e.reason, 'INC-4711 payment outage hotfix');
  assert.deepEqual(e.approvers, [{ principal: 'bob', keyid: 'SHA256:bobKEYid' }]);
  assert.equal(e.newSha, repo.commits[2]);
  assert.equal(readFileSync(join(repo.gitDir, 'count'), 'utf8').trim(), '1');
  assert.match(logLines().at(-1)!, /^2026-11-29T03:15:00.000Z status="ok" exit=0 /);
});

test('a hanging command is killed at the timeout (with what it started) and logged', async () => {
  repo.git([
    'config',
    'breakglass.notify',
    'sleep 30 & echo $! > child.pid; echo $$ > sh.pid; wait',
  ]);
  const r = await notifyEvents(repo.gitDir, env, [short()], { timeoutMs: 500 });
  assert.equal(r.status, 'timeout');
  const sh = Number(readFileSync(join(repo.gitDir, 'sh.pid'), 'utf8'));
  const child = Number(readFileSync(join(repo.gitDir, 'child.pid'), 'utf8'));
  // Give the kernel a moment to reap.
  for (let i = 0; i < 50 && (alive(sh) || alive(child)); i++)
    await new Promise((res) => setTimeout(res, 20));
  assert.equal(alive(sh), false, `the shell is gone (${state(sh)})`);
  assert.equal(alive(child), false, `the sleep it started is gone too (${state(child)})`);
  assert.match(logLines().at(-1)!, /status="timeout" exit=null .*timeoutMs=500/);
  assert.equal(parseNote(noteOnTip()).events.length, 1, 'the event is still recorded');
});

test('a failing command is logged with its stderr; the event stays recorded', async () => {
  repo.git(['config', 'breakglass.notify', 'echo "chat webhook said 503" >&2; exit 3']);
  const r = await notifyEvents(repo.gitDir, env, [short()]);
  assert.equal(r.status, 'failed');
  assert.equal(r.exitCode, 3);
  const line = logLines().at(-1)!;
  assert.match(line, /status="failed" exit=3 /);
  assert.match(line, /stderr="chat webhook said 503"/);
  assert.match(line, new RegExp(`tickets="${TICKET}"`));
  assert.equal(parseNote(noteOnTip()).events[0]!.ticketId, TICKET);
});

test('a command that does not read stdin or does not exist does not crash the hook', async () => {
  repo.git(['config', 'breakglass.notify', 'true']);
  const many = Array.from({ length: 2000 }, () => short());
  assert.equal((await notifyEvents(repo.gitDir, env, many)).status, 'ok');
  repo.git(['config', 'breakglass.notify', '/nonexistent/notifier']);
  const r = await notifyEvents(repo.gitDir, env, [short()]);
  assert.equal(r.status, 'failed');
  assert.equal(r.exitCode, 127);
});

// A killed process whose parent died may linger as a zombie where PID 1 does not reap (some
// containers): it is dead all the same.
function state(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] ?? '?';
  } catch {
    return 'gone';
  }
}
