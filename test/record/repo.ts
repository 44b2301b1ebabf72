import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent } from '../../src/audit/note.ts';

/** Test fixture: a bare repository in a temp folder with a linear `main` of `n` commits. */
export interface TempRepo {
  readonly gitDir: string;
  /** Commit ids, oldest first. */
  readonly commits: string[];
  git(args: string[], input?: string): string;
  cleanup(): void;
}

export const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.com',
};

/** Makes a bare repo with `n` commits on main, built with one fast-import. */
export function makeRepo(n: number): TempRepo {
  const dir = mkdtempSync(join(tmpdir(), 'bg-record-'));
  const gitDir = join(dir, 'repo.git');
  const git = (args: string[], input?: string) =>
    execFileSync('git', ['--git-dir', gitDir, ...args], {
      env: GIT_ENV,
      input,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
  execFileSync('git', ['init', '-q', '--bare', gitDir], { env: GIT_ENV });
  const parts: string[] = [];
  for (let i = 1; i <= n; i++) {
    parts.push(
      `commit refs/heads/main\nmark :${i}\ncommitter Dev <dev@example.com> ${1_700_000_000 + i} +0000\ndata 9\ncommit ${String(i % 10)}\n`,
    );
    if (i > 1) parts.push(`from :${i - 1}\n`);
    parts.push(`M 644 inline file.txt\ndata ${String(i).length}\n${i}\n\n`);
  }
  if (n > 0) git(['fast-import', '--quiet'], parts.join(''));
  const commits = n > 0 ? git(['rev-list', '--reverse', 'main']).trim().split('\n') : [];
  return { gitDir, commits, git, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const TICKET = '20261129T031200Z-7f3a9c';

/** A realistic break-glass push event for `old..new`. */
export function pushEvent(
  oldSha: string,
  newSha: string,
  over: Partial<AuditEvent> = {},
): AuditEvent {
  return {
    kind: 'breakglass',
    ticketId: TICKET,
    actions: ['push'],
    ref: 'refs/heads/main',
    oldSha,
    newSha,
    pusher: 'alice',
    requester: { principal: 'alice', keyid: 'SHA256:aliceKEYid+/0' },
    approvers: [{ principal: 'bob', keyid: 'SHA256:bobKEYid' }],
    reason: 'INC-4711 payment outage hotfix',
    window: { notBefore: '2026-11-29T03:12:00Z', expiresAt: '2026-11-29T03:27:00Z' },
    recordedAt: '2026-11-29T03:14:09Z',
    recordedBy: 'pre-receive@git.example.com',
    ...over,
  };
}
