// The namespace guard by name (src/engine/guard.ts, N9, N10) and the existing-ref check built on
// it (refsBlockingRecording, E3), against a real repository with loose and packed refs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { guardOf } from '../../src/engine/guard.ts';
import { refsBlockingRecording } from '../../src/server/namespace.ts';

const ID = '20261129T031200Z-7f3a9c';

describe('guardOf', () => {
  it('names the recorder writes, and names under or over them', () => {
    const cases: [string, ReturnType<typeof guardOf>][] = [
      ['refs/notes/breakglass', 'evidence'],
      [`refs/breakglass/tickets/${ID}`, 'evidence'],
      [`refs/breakglass/consumed/${ID}`, 'evidence'],
      ['refs/breakglass/unknown/x', 'evidence'], // N2 refuses it
      [`refs/replace/${'a'.repeat(40)}`, 'replace'],
      ['refs/notes/breakglass/squat', 'blocks-recording'],
      ['refs/notes/breakglass/a/b', 'blocks-recording'],
      ['refs/notes', 'blocks-recording'],
      ['refs/breakglass', 'blocks-recording'],
      ['refs/breakglass/consumed', 'blocks-recording'],
      [`refs/breakglass/consumed/${ID}/x`, 'blocks-recording'],
      // Not paths of the recorder's names: a name that only shares a prefix string is fine.
      ['refs/notes/breakglass-remote', null],
      ['refs/notes/breakglassx', null],
      ['refs/notes/commits', null],
      ['refs/breakglassx', null],
      ['refs/heads/main', null],
      ['refs/replace', null],
    ];
    for (const [ref, want] of cases) assert.equal(guardOf(ref), want, ref);
  });
});

describe('refsBlockingRecording', () => {
  it('lists exactly the existing blocking refs, loose or packed', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bg-guard-'));
    try {
      const gitDir = path.join(root, 'r.git');
      const env = { PATH: process.env.PATH, HOME: root, GIT_CONFIG_NOSYSTEM: '1' };
      const git = (args: string[], input?: string) =>
        execFileSync('git', ['--git-dir', gitDir, ...args], {
          env,
          encoding: 'utf8',
          ...(input === undefined ? {} : { input }),
        }).trim();
      execFileSync('git', ['init', '-q', '--bare', gitDir], { env });
      const tree = git(['hash-object', '-t', 'tree', '-w', '--stdin'], '');
      const c = execFileSync('git', ['--git-dir', gitDir, 'commit-tree', tree, '-m', 'x'], {
        env: {
          ...env,
          GIT_AUTHOR_NAME: 'a',
          GIT_AUTHOR_EMAIL: 'a@x',
          GIT_COMMITTER_NAME: 'a',
          GIT_COMMITTER_EMAIL: 'a@x',
        },
        encoding: 'utf8',
      }).trim();
      const create = (refs: string[]) =>
        git(['update-ref', '--stdin'], refs.map((r) => `create ${r} ${c}\n`).join(''));
      // Harmless neighbours, loose and packed.
      create([
        'refs/heads/main',
        'refs/notes/commits',
        'refs/notes/breakglassx',
        `refs/breakglass/tickets/${ID}`,
        `refs/breakglass/consumed/20261129T031200Z-aaaaaa`,
      ]);
      git(['pack-refs', '--all']);
      assert.deepEqual(await refsBlockingRecording({ gitDir, env }), []);
      create(['refs/notes/breakglass/squat', `refs/breakglass/consumed/${ID}/x`]);
      git(['pack-refs', '--all']);
      create(['refs/notes/breakglass/later']); // loose
      assert.deepEqual(await refsBlockingRecording({ gitDir, env }), [
        `refs/breakglass/consumed/${ID}/x`,
        'refs/notes/breakglass/later',
        'refs/notes/breakglass/squat',
      ]);
      // Narrowed to other tickets, that ticket's use record is no one's concern.
      assert.deepEqual(await refsBlockingRecording({ gitDir, env }, ['20261129T031200Z-bbbbbb']), [
        'refs/notes/breakglass/later',
        'refs/notes/breakglass/squat',
      ]);
      // Over: refs/notes and refs/breakglass as refs (in a repository where they fit).
      const other = path.join(root, 'o.git');
      execFileSync('git', ['init', '-q', '--bare', other], { env });
      execFileSync('git', ['--git-dir', other, 'fetch', '-q', gitDir, `${c}:refs/heads/x`], {
        env,
      });
      for (const r of ['refs/notes', 'refs/breakglass']) {
        execFileSync('git', ['--git-dir', other, 'update-ref', r, c], { env });
      }
      execFileSync('git', ['--git-dir', other, 'pack-refs', '--all'], { env });
      assert.deepEqual(await refsBlockingRecording({ gitDir: other, env }), [
        'refs/breakglass',
        'refs/notes',
      ]);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
