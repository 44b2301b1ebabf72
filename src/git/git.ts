import {
  spawn,
  type ChildProcess,
  type ChildProcessByStdio,
  type ChildProcessWithoutNullStreams,
  type StdioOptions,
} from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { BreakglassError } from '../errors.ts';

/** Where and how to run git. `env` is passed through whole (hooks need GIT_QUARANTINE_PATH etc.). */
export interface GitContext {
  /** Repository directory (`--git-dir`); for a bare repo or a hook's `$GIT_DIR`. */
  readonly gitDir?: string;
  /** Working directory (a clone) when gitDir is not given. */
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

export interface GitResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

export interface RunOptions {
  readonly input?: string | Buffer;
  /** Do not throw on a non-zero exit. */
  readonly allowFail?: boolean;
  /** Kill git after this many milliseconds (default 60 s). */
  readonly timeoutMs?: number;
}

const MAX_STDERR = 64 * 1024;

/**
 * Global options of every git process we run. `--no-replace-objects` (TM16): a replace ref
 * (`refs/replace/<id>`) would make git read another object in place of a commit, tree or blob,
 * so one could swap the policy, a ticket or a note under the hook; we read the objects
 * themselves, always.
 */
export function gitBaseArgs(ctx: GitContext): string[] {
  return ctx.gitDir ? ['--no-replace-objects', '--git-dir', ctx.gitDir] : ['--no-replace-objects'];
}

/**
 * The one place a git process is started (runGit, CatFileBatch and the audit's streaming
 * readers all come here): the global options of gitBaseArgs, the repository's working directory,
 * and the caller's whole environment.
 */
export function spawnGit(
  ctx: GitContext,
  args: readonly string[],
  stdio: StdioOptions,
): ChildProcess {
  return spawn('git', [...gitBaseArgs(ctx), ...args], {
    cwd: ctx.cwd,
    env: ctx.env ?? process.env,
    stdio,
  });
}

/** Runs one git command to completion, collecting stdout as bytes. */
export function runGit(
  ctx: GitContext,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    const child = spawnGit(ctx, args, ['pipe', 'pipe', 'pipe']) as ChildProcessWithoutNullStreams;
    const out: Buffer[] = [];
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      if (err.length < MAX_STDERR) err += d.toString('utf8');
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new BreakglassError('GIT_FAILED', `could not run git: ${e.message}`, { cause: e }));
    });
    child.stdin.on('error', () => {
      /* git may exit before reading all input; the exit code tells */
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out), stderr: err };
      if (result.code !== 0 && !opts.allowFail) {
        reject(
          new BreakglassError(
            'GIT_FAILED',
            `git ${args.slice(0, 3).join(' ')} failed${signal ? ` (${signal})` : ''}: ${err.trim().split('\n').slice(-3).join(' / ') || `exit ${result.code}`}`,
          ),
        );
      } else resolve(result);
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs git and returns trimmed stdout as text. */
export async function gitText(
  ctx: GitContext,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<string> {
  const r = await runGit(ctx, args, opts);
  return r.stdout.toString('utf8').replace(/\n$/, '');
}

export interface CatFileObject {
  readonly sha: string;
  readonly type: string;
  readonly data: Buffer;
}

/**
 * One long-lived `git cat-file --batch` process: read many objects with one spawn. Requests are
 * answered in order; each `read` resolves to the object or null when it is missing.
 */
export class CatFileBatch {
  private readonly child;
  private buffer: Buffer = Buffer.alloc(0);
  private readonly queue: {
    resolve: (o: CatFileObject | null) => void;
    reject: (e: Error) => void;
  }[] = [];
  private failed: Error | null = null;
  // TM12 (DoS by huge inputs): chunks of a large object are collected and joined once, not
  // re-concatenated per chunk (a 32 MB ticket.json took the hook past its 20 s watchdog).
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  /** Bytes the current object still needs before drain() can make progress. */
  private need = 0;
  /** Bytes of an oversized object still to be discarded as they arrive. */
  private skip = 0;
  private readonly maxObjectBytes: number;

  /**
   * `maxObjectBytes`: a larger object is not buffered; its read rejects with INPUT_TOO_LARGE
   * (untrusted repositories: the hook never needs big objects). Default: no limit.
   */
  constructor(ctx: GitContext, opts: { maxObjectBytes?: number } = {}) {
    this.maxObjectBytes = opts.maxObjectBytes ?? Infinity;
    this.child = spawnGit(
      ctx,
      ['cat-file', '--batch'],
      ['pipe', 'pipe', 'ignore'],
    ) as ChildProcessByStdio<Writable, Readable, null>;
    this.child.stdout.on('data', (d: Buffer) => {
      if (this.skip > 0) {
        const n = Math.min(this.skip, d.length);
        this.skip -= n;
        d = d.subarray(n);
        if (d.length === 0) return;
      }
      this.chunks.push(d);
      this.chunkBytes += d.length;
      if (this.chunkBytes < this.need) return;
      this.buffer = Buffer.concat([this.buffer, ...this.chunks]);
      this.chunks = [];
      this.chunkBytes = 0;
      this.need = 0;
      this.drain();
    });
    const fail = (e: Error) => {
      this.failed = e;
      for (const q of this.queue.splice(0)) q.reject(e);
    };
    this.child.on('error', (e) =>
      fail(new BreakglassError('GIT_FAILED', `git cat-file: ${e.message}`)),
    );
    this.child.on('close', () => fail(new BreakglassError('GIT_FAILED', 'git cat-file exited')));
    this.child.stdin.on('error', () => {});
  }

  private drain(): void {
    while (this.queue.length) {
      const nl = this.buffer.indexOf(10);
      if (nl < 0) return;
      const header = this.buffer.subarray(0, nl).toString('utf8');
      if (header.endsWith(' missing') || header.endsWith(' ambiguous')) {
        this.buffer = this.buffer.subarray(nl + 1);
        this.queue.shift()!.resolve(null);
        continue;
      }
      const [sha, type, sizeText] = header.split(' ');
      const size = Number(sizeText);
      if (size > this.maxObjectBytes) {
        const have = this.buffer.length - (nl + 1);
        if (have >= size + 1) this.buffer = this.buffer.subarray(nl + 1 + size + 1);
        else {
          this.skip = size + 1 - have;
          this.buffer = Buffer.alloc(0);
        }
        this.queue
          .shift()!
          .reject(
            new BreakglassError(
              'INPUT_TOO_LARGE',
              `git object ${sha} is ${size} bytes; the limit here is ${this.maxObjectBytes}`,
            ),
          );
        if (this.skip > 0) return;
        continue;
      }
      if (this.buffer.length < nl + 1 + size + 1) {
        this.need = nl + 1 + size + 1 - this.buffer.length;
        return;
      }
      const data = Buffer.from(this.buffer.subarray(nl + 1, nl + 1 + size));
      this.buffer = this.buffer.subarray(nl + 1 + size + 1);
      this.queue.shift()!.resolve({ sha: sha!, type: type!, data });
    }
  }

  /** Reads an object by any revision expression (`<sha>`, `<ref>:<path>`). */
  read(spec: string): Promise<CatFileObject | null> {
    if (this.failed) return Promise.reject(this.failed);
    if (/[\n\r]/.test(spec)) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      this.child.stdin.write(spec + '\n');
    });
  }

  /** Ends the process. */
  close(): void {
    this.child.removeAllListeners('close');
    this.child.stdin.end();
  }
}
