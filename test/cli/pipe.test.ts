import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const bundle = fileURLToPath(new URL('../../dist/bg-sign.js', import.meta.url));

test('a reader that closes the pipe early (bg-sign ... | head) gets no stack trace', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bg-pipe-'));
  const child = spawn(process.execPath, [bundle, 'keygen', '--out', join(dir, 'k')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.destroy(); // the reader is gone before bg-sign writes a byte
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 0);
  assert.doesNotMatch(stderr, /EPIPE|at .*\.js:\d+/);
});
