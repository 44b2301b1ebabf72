import { spawn } from 'node:child_process';
import { appendFile, mkdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { eventKey, parseNote, type AuditEvent } from '../audit/note.ts';
import { runGit, type GitContext } from '../git/git.ts';
import { readNotesFor, readRefTips, DEFAULT_NOTES_REF } from '../git/notes.ts';

/**
 * The notification hook (issue 5): `git config breakglass.notify "<command>"` runs the command
 * after post-receive has recorded the events, with them as one JSON document on stdin, so teams
 * can post to chat or a SIEM. The events are already in the notes when it runs: a slow, failing
 * or hanging command can't lose or block them. It gets `breakglass.notifyTimeout` (default 10 s)
 * and is then killed with its whole process group; every run is logged to
 * `$GIT_DIR/breakglass/notify.log`. Nothing here throws.
 */

export const DEFAULT_NOTIFY_TIMEOUT_MS = 10_000;
export const NOTIFY_SCHEMA_VERSION = 1;
const MAX_LOG_BYTES = 1024 * 1024;
const MAX_CAPTURE = 2048;

/** What post-receive has: a full event, or the short form flushJournal reports. */
export type NotifyInput =
  | AuditEvent
  | {
      readonly ticket: string;
      readonly ref: string;
      readonly oldSha: string;
      readonly newSha: string;
      readonly commits?: number;
    };

export interface NotifyResult {
  /** no command configured / ran and exited 0 / exited non-zero / killed at the timeout / could not start */
  readonly status: 'not-configured' | 'ok' | 'failed' | 'timeout' | 'error';
  readonly exitCode?: number | null;
  readonly ms?: number;
  readonly events: number;
}

export interface NotifyOptions {
  /** Overrides `breakglass.notifyTimeout`. */
  readonly timeoutMs?: number;
  /** Reference time for the log line (epoch ms); the edge passes its `now`. */
  readonly now?: number;
}

function isFull(e: NotifyInput): e is AuditEvent {
  return 'recordedAt' in e && 'kind' in e;
}

async function config(ctx: GitContext, key: string): Promise<string> {
  const r = await runGit(ctx, ['config', '--get', key], { allowFail: true });
  return r.code === 0 ? r.stdout.toString('utf8').trim() : '';
}

function parseTimeout(text: string): number | null {
  const m = /^(\d{1,4})(ms|s)?$/.exec(text);
  if (!m) return null;
  const ms = m[2] === 'ms' ? Number(m[1]) : Number(m[1]) * 1000;
  return ms > 0 && ms <= 600_000 ? ms : null;
}

/**
 * Fills in short-form events from the audit notes (one cat-file for all), so the command gets
 * what `bg-sign audit` would show. An event that can't be found is sent in its short form.
 */
async function fullEvents(ctx: GitContext, inputs: readonly NotifyInput[]): Promise<object[]> {
  const short = inputs.filter((e) => !isFull(e));
  if (!short.length) return [...inputs];
  const found = new Map<string, AuditEvent>();
  try {
    const tips = await readRefTips(ctx, [DEFAULT_NOTES_REF]);
    const commits = short.map((e) => (/^0+$/.test(e.newSha) ? e.oldSha : e.newSha));
    const notes = await readNotesFor(ctx, tips.get(DEFAULT_NOTES_REF), commits);
    for (const data of notes.values()) {
      for (const ev of parseNote(data.toString('utf8')).events) found.set(eventKey(ev), ev);
    }
  } catch {
    // Best effort: the short form is still worth sending.
  }
  return inputs.map((e) => {
    if (isFull(e)) return e;
    const key = eventKey({
      kind: 'breakglass',
      ticketId: e.ticket,
      ref: e.ref,
      oldSha: e.oldSha,
      newSha: e.newSha,
    });
    return (
      found.get(key) ?? {
        kind: 'breakglass',
        ticketId: e.ticket,
        ref: e.ref,
        oldSha: e.oldSha,
        newSha: e.newSha,
      }
    );
  });
}

function logLine(now: number, fields: Record<string, string | number | null>): string {
  const parts = Object.entries(fields).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${new Date(now).toISOString()} ${parts.join(' ')}\n`;
}

/** Appends to notify.log, rotating once at 1 MiB (notify.log.1) so it can't fill the disk. */
async function writeLog(gitDir: string, line: string): Promise<void> {
  try {
    const dir = join(gitDir, 'breakglass');
    await mkdir(dir, { recursive: true });
    const file = join(dir, 'notify.log');
    const size = await stat(file).then(
      (s) => s.size,
      () => 0,
    );
    if (size > MAX_LOG_BYTES) await rename(file, `${file}.1`).catch(() => {});
    await appendFile(file, line);
  } catch {
    // The log is a convenience; the events are in the notes either way.
  }
}

/**
 * Runs the configured notification command once with `{schemaVersion, type, gitDir, events}` on
 * stdin (`sh -c`, cwd = GIT_DIR, the hook's environment plus BREAKGLASS_EVENTS=<count>).
 * Bounded by the timeout; logs the outcome; never throws.
 */
export async function notifyEvents(
  gitDir: string,
  env: NodeJS.ProcessEnv,
  events: readonly NotifyInput[],
  opts: NotifyOptions = {},
): Promise<NotifyResult> {
  const ctx: GitContext = { gitDir, env };
  const now = opts.now ?? Date.now();
  if (events.length === 0) return { status: 'not-configured', events: 0 };
  let command = '';
  let timeoutMs = opts.timeoutMs ?? DEFAULT_NOTIFY_TIMEOUT_MS;
  try {
    command = await config(ctx, 'breakglass.notify');
    if (!command) return { status: 'not-configured', events: events.length };
    if (opts.timeoutMs === undefined) {
      const t = await config(ctx, 'breakglass.notifyTimeout');
      if (t) timeoutMs = parseTimeout(t) ?? DEFAULT_NOTIFY_TIMEOUT_MS;
    }
  } catch (e) {
    await writeLog(gitDir, logLine(now, { status: 'error', error: (e as Error).message }));
    return { status: 'error', events: events.length };
  }
  let payload: string;
  try {
    payload =
      JSON.stringify({
        schemaVersion: NOTIFY_SCHEMA_VERSION,
        type: 'git-breakglass/events',
        gitDir,
        events: await fullEvents(ctx, events),
      }) + '\n';
  } catch (e) {
    await writeLog(gitDir, logLine(now, { status: 'error', error: (e as Error).message }));
    return { status: 'error', events: events.length };
  }

  const started = Date.now();
  const result = await new Promise<{
    status: NotifyResult['status'];
    code: number | null;
    err: string;
  }>((resolve) => {
    let err = '';
    let settled = false;
    let timedOut = false;
    let child: ReturnType<typeof spawn>;
    try {
      // Own process group, so a timeout kills what the command started too.
      child = spawn('/bin/sh', ['-c', command], {
        cwd: gitDir,
        env: { ...env, BREAKGLASS_EVENTS: String(events.length) },
        stdio: ['pipe', 'ignore', 'pipe'],
        detached: true,
      });
    } catch (e) {
      resolve({ status: 'error', code: null, err: (e as Error).message });
      return;
    }
    const done = (status: NotifyResult['status'], code: number | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, code, err });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      // A grandchild holding stderr open must not keep us waiting.
      setTimeout(() => done('timeout', null), 200).unref();
    }, timeoutMs);
    child.stderr!.on('data', (d: Buffer) => {
      if (err.length < MAX_CAPTURE) err += d.toString('utf8').slice(0, MAX_CAPTURE - err.length);
    });
    child.on('error', (e) => {
      err += e.message;
      done('error', null);
    });
    child.on('exit', (code) => {
      if (timedOut) return done('timeout', null);
      done(code === 0 ? 'ok' : 'failed', code);
    });
    child.stdin!.on('error', () => {
      /* the command need not read stdin */
    });
    child.stdin!.end(payload);
  });
  const ms = Date.now() - started;
  await writeLog(
    gitDir,
    logLine(now, {
      status: result.status,
      exit: result.code,
      ms,
      events: events.length,
      tickets: [...new Set(events.map((e) => (isFull(e) ? (e.ticketId ?? '-') : e.ticket)))].join(
        ',',
      ),
      ...(result.status === 'timeout' ? { timeoutMs } : {}),
      ...(result.err ? { stderr: result.err.trim().slice(0, 500) } : {}),
    }),
  );
  return { status: result.status, exitCode: result.code, ms, events: events.length };
}
