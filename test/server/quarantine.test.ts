// The hook for real: `git push` over file:// into a bare repository whose pre-receive and
// post-receive run `bg-sign hook ...` (from source, via tsx). The pushed objects are only in
// git's quarantine while pre-receive decides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { approvedEnvelope } from '../helpers/fixtures.ts';
import { formatTicketId } from '../../src/ticket/sign.ts';
import { Fixture } from './fixture.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tsx = pathToFileURL(path.join(root, 'node_modules/tsx/dist/esm/index.mjs')).href;
const main = path.join(root, 'src/cli/main.ts');

function installHook(f: Fixture, which: string): void {
  const file = path.join(f.server, 'hooks', which);
  fs.writeFileSync(
    file,
    `#!/bin/sh\n# git-breakglass hook shim (${which}, from source)\nexec "${process.execPath}" --import "${tsx}" "${main}" hook ${which} "$@"\n`,
    { mode: 0o755 },
  );
}

function push(f: Fixture, args: string[], login = 'alice') {
  const r = spawnSync('git', ['push', ...args], {
    cwd: f.work,
    env: { ...f.env, GL_USERNAME: login },
    encoding: 'utf8',
  });
  return { code: r.status, text: r.stdout + r.stderr };
}

test('real push: rejected without a ticket, accepted with one, and recorded by post-receive', async () => {
  const f = new Fixture();
  try {
    installHook(f, 'pre-receive');
    installHook(f, 'post-receive');
    f.installTransactionHook();
    f.sgit('config', 'receive.advertisePushOptions', 'true');
    const now = Date.now();
    const id = formatTicketId(now, 'c0ffee');
    const old = f.serverRef('refs/heads/main')!;
    const sha = f.commit('hotfix');

    const denied = push(f, [f.server, 'HEAD:refs/heads/main']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.text, /remote: git-breakglass: push rejected/);
    assert.match(denied.text, /TICKET_REQUIRED/);
    assert.equal(f.serverRef('refs/heads/main'), old);
    assert.deepEqual(f.state(''), []);

    await f.serverTicket(id, approvedEnvelope({ id, now }));
    const ok = push(f, ['-o', `breakglass=${id}`, f.server, 'HEAD:refs/heads/main']);
    assert.equal(ok.code, 0, ok.text);
    assert.match(ok.text, /remote: +BREAK-GLASS PUSH ACCEPTED/);
    assert.match(ok.text, /remote: git-breakglass: recorded ticket/);
    assert.equal(f.serverRef('refs/heads/main'), sha);
    const note = f.sgit('notes', '--ref=breakglass', 'show', sha);
    assert.match(note, new RegExp(`^Break-glass-Ticket: ${id}$`, 'm'));
    assert.equal(f.sgit('rev-list', '--count', `refs/breakglass/consumed/${id}`), '1');
  } finally {
    f.cleanup();
  }
});
