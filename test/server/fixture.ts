// A throwaway server repository (bare, no hooks) and a developer clone, for calling the hook
// functions directly. Pushed objects are made visible the way git's quarantine does it: the
// clone's object directory as GIT_ALTERNATE_OBJECT_DIRECTORIES in the hook environment.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeEnvelope } from '../../src/git/store.ts';
import { runPreReceive } from '../../src/server/pre-receive.ts';
import { flushJournal, type FlushResult } from '../../src/server/post-receive.ts';
import { shimText } from '../../src/server/install.ts';
import { processRef, type ProcessRef } from '../../src/server/receive-pack.ts';
import type { Envelope } from '../../src/ticket/dsse.ts';
import { policyYaml, T0 } from '../helpers/fixtures.ts';

export const ZERO = '0'.repeat(40);
export const NOW = T0 + 60_000;

const baseEnv: NodeJS.ProcessEnv = {
  PATH: process.env.PATH,
  HOME: os.tmpdir(),
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Alice',
  GIT_AUTHOR_EMAIL: 'alice@example.com',
  GIT_COMMITTER_NAME: 'Alice',
  GIT_COMMITTER_EMAIL: 'alice@example.com',
  GIT_AUTHOR_DATE: '2026-11-29T03:00:00Z',
  GIT_COMMITTER_DATE: '2026-11-29T03:00:00Z',
};

const fakes = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of fakes) c.kill('SIGKILL');
});

/**
 * A stand-in for git receive-pack: a real process whose end the hooks can observe (E2), and
 * whose children are the installed reference-transaction shim, run as git runs it (cwd and
 * GIT_DIR the repository, the transaction's lines on stdin, the state as argument). The hook
 * functions take it as `receivePack`, as the installed hooks find the real one in /proc.
 */
export class FakeReceivePack {
  private readonly child: ChildProcess;
  readonly ref: ProcessRef;
  private seq = 0;
  constructor(private readonly gitDir?: string) {
    // Reads "<state> <input file>" lines and runs the hook on each, writing its exit code.
    const loop =
      'while read -r state file; do sh ./hooks/reference-transaction "$state" <"$file" 2>"$file.err"; echo $? >"$file.rc.tmp"; mv "$file.rc.tmp" "$file.rc"; done';
    this.child = spawn('sh', ['-c', loop], {
      cwd: gitDir ?? os.tmpdir(),
      env: { PATH: process.env.PATH, GIT_DIR: '.' },
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    // Never what keeps a test run alive: ended with the test process at the latest.
    this.child.unref();
    (this.child.stdin as unknown as { unref?: () => void }).unref?.();
    fakes.add(this.child);
    const ref = processRef(this.child.pid!);
    if (!ref) throw new Error('no /proc: receive-pack liveness cannot be tested here');
    this.ref = ref;
  }

  /** Runs the installed reference-transaction hook as this receive-pack's child. */
  async transaction(state: string, lines: string[][]): Promise<{ code: number; stderr: string }> {
    if (!this.gitDir) throw new Error('FakeReceivePack made without a repository');
    const file = path.join(os.tmpdir(), `bg-tx-${process.pid}-${this.child.pid}-${++this.seq}`);
    fs.writeFileSync(file, lines.map((l) => l.join(' ') + '\n').join(''));
    this.child.stdin!.write(`${state} ${file}\n`);
    for (let i = 0; i < 400 && !fs.existsSync(`${file}.rc`); i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    const code = Number(fs.readFileSync(`${file}.rc`, 'utf8'));
    const stderr = fs.readFileSync(`${file}.err`, 'utf8');
    for (const f of [file, `${file}.rc`, `${file}.err`]) fs.rmSync(f, { force: true });
    return { code, stderr };
  }

  /** The receive-pack process ends (and is reaped, as git's parent would). */
  end(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((res) => {
      this.child.ref(); // waiting for its exit keeps the test alive
      this.child.once('exit', () => res());
      this.child.kill('SIGKILL');
    });
  }
}

export interface HookRun {
  code: number;
  out: string;
  err: string;
  text: string;
}

const templates = new Map<string, string>();
process.on('exit', () => {
  for (const t of templates.values()) fs.rmSync(t, { recursive: true, force: true });
});

export class Fixture {
  readonly dir: string;
  readonly server: string;
  readonly work: string;
  readonly env = baseEnv;
  private n = 0;

  constructor(opts: { policy?: string | null } = {}) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bg-server-'));
    this.server = path.join(this.dir, 'server.git');
    this.work = path.join(this.dir, 'work');
    const policy = opts.policy === null ? null : (opts.policy ?? policyYaml());
    // Building the two repositories costs several git runs; copy a finished pair instead.
    const key = policy ?? '';
    let template = templates.get(key);
    if (!template) {
      template = fs.mkdtempSync(path.join(os.tmpdir(), 'bg-template-'));
      this.build(template, policy);
      templates.set(key, template);
    }
    fs.cpSync(template, this.dir, { recursive: true });
  }

  private build(dir: string, policy: string | null): void {
    const server = path.join(dir, 'server.git');
    const work = path.join(dir, 'work');
    this.git(dir, 'init', '-q', '--bare', '-b', 'main', server);
    this.git(dir, 'init', '-q', '-b', 'main', work);
    if (policy === null) return;
    fs.mkdirSync(path.join(work, '.breakglass'));
    fs.writeFileSync(path.join(work, '.breakglass', 'policy.yml'), policy);
    fs.writeFileSync(path.join(work, 'README.md'), 'hello\n');
    this.git(work, 'add', '-A');
    this.git(work, 'commit', '-q', '-m', 'initial commit with policy');
    this.git(work, 'push', '-q', server, 'HEAD:refs/heads/main');
  }

  git(cwd: string, ...args: string[]): string {
    return execFileSync('git', args, {
      cwd,
      env: this.env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  }

  /** git in the server repository. */
  sgit(...args: string[]): string {
    return this.git(this.server, ...args);
  }

  write(file: string, content: string): void {
    const full = path.join(this.work, file);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, content);
  }

  commitAll(message: string): string {
    this.git(this.work, 'add', '-A');
    this.git(this.work, 'commit', '-q', '--allow-empty', '-m', message);
    return this.git(this.work, 'rev-parse', 'HEAD');
  }

  /** A new commit on the clone's HEAD. */
  commit(message = `change ${++this.n}`): string {
    this.write(`file-${this.n}-${message.length}.txt`, `${message}\n`);
    return this.commitAll(message);
  }

  /** What git does after pre-receive accepted: the objects arrive and the ref moves. */
  land(sha: string, ref: string): void {
    this.git(this.work, 'push', '-q', '--force', this.server, `${sha}:${ref}`);
  }

  serverRef(ref: string): string | null {
    try {
      return this.sgit('rev-parse', '--verify', '-q', ref);
    } catch {
      return null;
    }
  }

  /** Stores a ticket on the server, as if pushed earlier. */
  async serverTicket(id: string, envelope: Envelope): Promise<string> {
    return writeEnvelope(
      { gitDir: this.server, env: this.env },
      'tickets',
      id,
      envelope,
      'ticket',
      {
        name: 'Alice',
        email: 'alice@example.com',
      },
    );
  }

  /** Writes an envelope in the clone (to be pushed), returning the commit. */
  async workEnvelope(
    ns: 'tickets' | 'revoked' | 'reviews',
    id: string,
    envelope: Envelope,
  ): Promise<string> {
    return writeEnvelope(
      { gitDir: path.join(this.work, '.git'), env: this.env },
      ns,
      id,
      envelope,
      ns,
      { name: 'Alice', email: 'alice@example.com' },
    );
  }

  hookEnv(extra: NodeJS.ProcessEnv = {}, options: string[] = []): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...this.env,
      GIT_ALTERNATE_OBJECT_DIRECTORIES: path.join(this.work, '.git', 'objects'),
      GL_USERNAME: 'alice',
      ...extra,
    };
    if (options.length) {
      env.GIT_PUSH_OPTION_COUNT = String(options.length);
      options.forEach((o, i) => (env[`GIT_PUSH_OPTION_${i}`] = o));
    }
    return env;
  }

  /** Runs pre-receive on `<old> <new> <ref>` lines. */
  async pre(
    lines: string[][],
    o: {
      env?: NodeJS.ProcessEnv;
      options?: string[];
      now?: number;
      timeoutMs?: number;
      receivePack?: FakeReceivePack;
      /** Leave the reference-transaction hook out (a forge that runs only its own hook set). */
      noTransactionHook?: boolean;
    } = {},
  ): Promise<HookRun> {
    let out = '';
    let err = '';
    // pre-receive checks that git will report the outcome (E2) before it arms receive-pack.
    if (o.receivePack && !o.noTransactionHook) this.installTransactionHook();
    const code = await runPreReceive({
      gitDir: this.server,
      env: this.hookEnv(o.env, o.options),
      stdin: lines.map((l) => l.join(' ') + '\n').join(''),
      now: o.now ?? NOW,
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      hostname: 'test-server',
      ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
      receivePack: o.receivePack?.ref ?? null,
    });
    return { code, out, err, text: out + err };
  }

  flush(
    now = NOW + 1000,
    updated: string[][] = [],
    o: { receivePack?: FakeReceivePack; sweep?: boolean } = {},
  ): Promise<FlushResult> {
    return flushJournal(this.server, this.env, now, {
      updated: updated.map(([oldSha, newSha, ref]) => ({
        oldSha: oldSha!,
        newSha: newSha!,
        ref: ref!,
      })),
      receivePack: o.receivePack?.ref ?? null,
      ...(o.sweep ? { sweep: true } : {}),
    });
  }

  /** A receive-pack stand-in for this server repository. */
  receivePack(): FakeReceivePack {
    return new FakeReceivePack(this.server);
  }

  /** The real reference-transaction shim in the server's hooks (pre-receive checks for it). */
  installTransactionHook(): void {
    const hook = path.join(this.server, 'hooks', 'reference-transaction');
    if (!fs.existsSync(hook)) {
      fs.writeFileSync(hook, shimText('reference-transaction'), { mode: 0o755 });
    }
  }

  /** What git's reference-transaction hook does for `rp` around one update; returns the exit code. */
  async tx(rp: FakeReceivePack, state: string, lines: string[][]): Promise<number> {
    return (await rp.transaction(state, lines)).code;
  }

  /** Moves a ref on the server as receive-pack would, with the hook's prepared/committed calls. */
  async landVia(rp: FakeReceivePack, oldSha: string, newSha: string, ref: string): Promise<void> {
    if ((await this.tx(rp, 'prepared', [[oldSha, newSha, ref]])) !== 0) {
      throw new Error('the reference-transaction hook refused the update');
    }
    if (newSha === ZERO) this.sgit('update-ref', '-d', ref);
    else this.land(newSha, ref);
    await this.tx(rp, 'committed', [[oldSha, newSha, ref]]);
  }

  /** Files under $GIT_DIR/breakglass/<sub>, recursively (relative paths). */
  state(sub: string): string[] {
    const root = path.join(this.server, 'breakglass', sub);
    if (!fs.existsSync(root)) return [];
    return (fs.readdirSync(root, { recursive: true }) as string[])
      .filter((f) => fs.statSync(path.join(root, f)).isFile())
      .sort();
  }

  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
