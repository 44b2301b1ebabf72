// `npm run demo` as a user runs it: the whole story passes its own checks and leaves nothing.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BUNDLE, cleanEnv, run } from '../helpers/server.ts';

describe('bg-sign demo', () => {
  it('acts out the story and leaves nothing behind', async () => {
    const tmp = await mkdtemp(join(os.tmpdir(), 'bg-demo-test-'));
    try {
      // TMPDIR points the demo's temp folder here, so "nothing left" is checkable.
      const r = await run(process.execPath, [BUNDLE, 'demo'], {
        env: cleanEnv({ HOME: tmp, TMPDIR: tmp }),
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      for (const step of [1, 2, 3, 4, 5, 6]) assert.match(r.stdout, new RegExp(`Step ${step}\\. `));
      assert.match(r.stdout, /TICKET_REQUIRED/);
      assert.match(r.stdout, /BREAK-GLASS PUSH ACCEPTED/);
      assert.match(r.stdout, /TICKET_USED_UP/);
      assert.match(r.stdout, /SCOPE_ACTION/);
      assert.match(r.stdout, /Notes \(breakglass\):\n.*Break-glass-Ticket: /);
      const folder = /Everything happens in (\S+) /.exec(r.stdout)![1]!;
      assert.ok(folder.startsWith(tmp));
      assert.equal(existsSync(folder), false, 'the demo folder is removed');
      assert.deepEqual(readdirSync(tmp), [], 'nothing else was left in TMPDIR');
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('--ssh: the same story signed with SSH keys found through git user.signingkey', async () => {
    const tmp = await mkdtemp(join(os.tmpdir(), 'bg-demo-test-'));
    try {
      const r = await run(process.execPath, [BUNDLE, 'demo', '--ssh'], {
        env: cleanEnv({ HOME: tmp, TMPDIR: tmp }),
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /alice\$ ssh-keygen -q -t ed25519 /);
      assert.match(r.stdout, /alice: \{ keys: \["ssh-ed25519 AAAA[A-Za-z0-9+/=]+ alice"\]/);
      assert.match(r.stdout, /BREAK-GLASS PUSH ACCEPTED/);
      assert.match(r.stdout, /TICKET_USED_UP/);
      assert.deepEqual(readdirSync(tmp), [], 'nothing was left in TMPDIR');
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
