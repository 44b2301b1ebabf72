// The pre-receive fast path for pushes that touch nothing this tool guards (DESIGN §9: within
// 1.3x of `node -e 0`). Loading the policy parser (js-yaml, zod) and the ticket code costs more
// than Node's own start-up, and so does starting one git process, so on a warm cache this module
// imports none of that and starts no process. It runs the same triage as the full hook
// (engine/triage.ts) with other sources: the `breakglass.*` settings as the shim read them
// (git's own view, handed over), the policy's protected ref patterns from a small cache, and
// symbolic refs from the ref files. A source that can't tell cheaply says so, and the push goes
// to the full hook (fail closed): the fast path only ever accepts, never refuses. It reads files
// synchronously (there is nothing to overlap) and loads child_process only when git must run:
// the CommonJS entry that runs it (hook-fast.ts) should load as little of Node as it can.
//
// The cache (FP1, FP4, docs/server-setup.md "Hook start-up cache"):
//   FP1  protected patterns are used only for the exact policy they were read from: a pinned
//        policy's bytes (read and compared whole on every push), or for an in-repository
//        policy the commit id of HEAD's branch (read from the ref files; objects are
//        content-addressed, and read with --no-replace-objects, TM16), and this very build;
//   FP4  the cache file lives in $GIT_DIR, written by the hook's own user only (tmp + rename).
// Settings are never cached: the shim's one `git config` hands them over on every push (so
// includes, `git -c` and GIT_CONFIG_* count exactly as git counts them); without the hand-over
// (an older shim) the fast path asks git.
import fs from 'node:fs';
import path from 'node:path';
import {
  MAX_STDIN_BYTES,
  settingsFromGit,
  triage,
  type PolicyView,
  type ServerSettings,
  type TriageSources,
} from '../engine/triage.ts';
import { MAX_POLICY_BYTES } from '../policy/limits.ts';
import { compileRefPattern, refMatches } from '../policy/refs.ts';
import { configFromEnv } from './config-env.ts';

/** Beside `$GIT_DIR/breakglass/` (not in it): it is a cache, never evidence or state. */
export const CACHE_FILE = 'breakglass-hook-cache.json';
const CACHE_VERSION = 3;
const MAX_CACHE_BYTES = 256 * 1024;
const MAX_PACKED_REFS_BYTES = 64 * 1024 * 1024;
const GIT_TIMEOUT_MS = 10_000;
const OID_FILE = /^([0-9a-f]{40}|[0-9a-f]{64})\n?$/;
/** The files of one build of the hooks (scripts/build.mjs): a new build, a new cache. */
const BUILD_FILES = ['bg-hook.cjs', 'bg-hook-full.cjs'];

/** Where the policy came from: a pinned file (absolute), or HEAD's branch in the repository. */
export type PolicySource = { kind: 'pinned'; file: string } | { kind: 'repo'; branch: string };

/** What the cache must match, and what the full hook needs to write it after a miss. */
export interface CacheMiss {
  readonly key: string;
  /** The policy bytes the key was made from (what the cache writer parses). */
  readonly policy: Buffer;
  readonly source: PolicySource;
}

export type FastResult =
  | { readonly decided: true; readonly code: 0 }
  | { readonly decided: false; readonly cacheMiss?: CacheMiss };

interface CacheFile {
  readonly version: number;
  readonly key: string;
  /** Ref patterns of every protected rule (their `source`). */
  readonly protected: string[];
}

/** Runs git to completion. child_process is loaded here, not up front: a hit needs no process. */
async function git(gitDir: string, env: NodeJS.ProcessEnv, args: string[]) {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync('git', ['--no-replace-objects', '--git-dir', gitDir, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'ignore'],
    timeout: GIT_TIMEOUT_MS,
    maxBuffer: 4 * 1024 * 1024,
  });
  return { code: r.error ? -1 : (r.status ?? -1), out: r.stdout ?? Buffer.alloc(0) };
}

/**
 * The hook's stdin, to its end or just past MAX_STDIN_BYTES (the full hook refuses that).
 * Read synchronously from fd 0 (no stream machinery to load); a non-blocking stdin (EAGAIN)
 * is finished through process.stdin.
 */
export async function readHookStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  const buf = Buffer.allocUnsafe(64 * 1024);
  try {
    for (;;) {
      const n = fs.readSync(0, buf, 0, buf.length, null);
      if (n === 0) return Buffer.concat(chunks);
      chunks.push(Buffer.from(buf.subarray(0, n)));
      size += n;
      if (size > MAX_STDIN_BYTES) return Buffer.concat(chunks);
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EOF') return Buffer.concat(chunks);
    if (code !== 'EAGAIN') throw e;
  }
  for await (const c of process.stdin) {
    const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
    chunks.push(b);
    size += b.length;
    if (size > MAX_STDIN_BYTES) break;
  }
  return Buffer.concat(chunks);
}

/** The `breakglass.*` settings as git reads them (as config.ts does), or null if git failed. */
async function gitSettings(
  gitDir: string,
  env: NodeJS.ProcessEnv,
): Promise<[string, string][] | null> {
  const r = await git(gitDir, env, ['config', '-z', '--get-regexp', '^breakglass\\.']);
  if (r.code !== 0 && r.code !== 1) return null;
  return settingsFromGit(r.out.toString('utf8'));
}

/** Identity of the hook build this runs from (FP1: a new build, a new cache). */
function buildId(): string {
  const dir = path.dirname(path.resolve(process.argv[1] ?? ''));
  return BUILD_FILES.map((name) => {
    const f = path.join(dir, name);
    try {
      const st = fs.statSync(f);
      return `${f}:${st.size}:${st.mtimeMs}`;
    } catch {
      return `${f}:absent`;
    }
  }).join(' ');
}

function readBounded(file: string, max: number): Buffer | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    for (;;) {
      const r = fs.readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
      if (n > max) return null;
    }
    return buf.subarray(0, n);
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The commit a branch points to, from the ref files (a loose ref, else packed-refs), or null
 * when it isn't that simple (a symbolic or odd loose ref, reftable, a worktree's common dir).
 */
export function branchCommit(gitDir: string, ref: string): string | null {
  if (fs.existsSync(path.join(gitDir, 'commondir'))) return null;
  if (fs.existsSync(path.join(gitDir, 'reftable'))) return null;
  const loose = path.join(gitDir, ref);
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(loose);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return null;
  }
  if (st) {
    if (!st.isFile() || st.size > 100) return null;
    const m = OID_FILE.exec(fs.readFileSync(loose, 'utf8'));
    return m ? m[1]! : null;
  }
  const packed = readBounded(path.join(gitDir, 'packed-refs'), MAX_PACKED_REFS_BYTES);
  if (!packed) return null;
  const text = packed.toString('utf8');
  const needle = ` ${ref}\n`;
  const at = text.indexOf(needle);
  if (at < 0) return null;
  const start = text.lastIndexOf('\n', at) + 1;
  const m = /^([0-9a-f]{40}|[0-9a-f]{64})$/.exec(text.slice(start, at));
  return m ? m[1]! : null;
}

interface PolicyKey {
  readonly key: string;
  readonly source: PolicySource;
  /** A pinned policy's bytes (read anyway, to compare); for the repository, read on a miss. */
  readonly policy?: Buffer;
  /** The commit of HEAD's branch the in-repository policy is read from. */
  readonly commit?: string;
}

/** The policy as the full hook would load it, when that is simple (else null; FP1). */
function policyKey(gitDir: string, policyFile: string | undefined): PolicyKey | null {
  const id = buildId();
  if (policyFile) {
    const file = path.resolve(gitDir, policyFile);
    const policy = readBounded(file, MAX_POLICY_BYTES);
    if (!policy) return null;
    return {
      key: `pinned ${file} ${id}\n${policy.toString('base64')}`,
      policy,
      source: { kind: 'pinned', file },
    };
  }
  // In-repository policy: HEAD must be a plain symbolic ref to a branch (the full hook also
  // checks that the policy protects that branch; the cache is only written when it does).
  let head: string;
  try {
    head = fs.readFileSync(path.join(gitDir, 'HEAD'), 'utf8');
  } catch {
    return null;
  }
  const m = /^ref: (refs\/heads\/\S+)\n?$/.exec(head);
  if (!m || m[1] === 'refs/heads/.invalid') return null;
  const branch = m[1]!;
  const commit = branchCommit(gitDir, branch);
  if (!commit) return null;
  return { key: `repo ${branch} ${commit} ${id}`, source: { kind: 'repo', branch }, commit };
}

/** The policy bytes at a commit (no replace refs: TM16), or null. */
async function policyAt(
  gitDir: string,
  env: NodeJS.ProcessEnv,
  commit: string,
): Promise<Buffer | null> {
  const r = await git(gitDir, env, ['cat-file', 'blob', `${commit}:.breakglass/policy.yml`]);
  return r.code === 0 && r.out.length <= MAX_POLICY_BYTES ? r.out : null;
}

/**
 * True when no updated ref is a symbolic ref on the server (TM9: git would move its target, which
 * the full hook judges), as symref.ts checks it. Reftable or anything odd: not sure, so false.
 */
function noSymbolicRefs(gitDir: string, refs: readonly string[]): boolean {
  if (fs.existsSync(path.join(gitDir, 'reftable'))) return false;
  for (const ref of refs) {
    let st;
    try {
      st = fs.lstatSync(path.join(gitDir, ref));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // absent, or packed (never symbolic)
      return false;
    }
    if (!st.isFile() || st.size >= 4096) return false;
    if (fs.readFileSync(path.join(gitDir, ref), 'utf8').startsWith('ref:')) return false;
  }
  return true;
}

function readCache(gitDir: string): CacheFile | null {
  try {
    const bytes = readBounded(path.join(gitDir, CACHE_FILE), MAX_CACHE_BYTES);
    if (!bytes) return null;
    const c = JSON.parse(bytes.toString('utf8')) as CacheFile;
    if (c?.version !== CACHE_VERSION || typeof c.key !== 'string') return null;
    if (!Array.isArray(c.protected) || !c.protected.every((p) => typeof p === 'string')) {
      return null;
    }
    return c;
  } catch {
    return null;
  }
}

function writeCache(gitDir: string, body: CacheFile): void {
  const file = path.join(gitDir, CACHE_FILE);
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    fs.writeFileSync(tmp, JSON.stringify(body) + '\n', { mode: 0o644, flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch {
    fs.rmSync(tmp, { force: true });
    /* a cache: never worth failing a push over */
  }
}

/**
 * Accepts a push at once when the triage (engine/triage.ts) finds nothing in it that is this
 * tool's business, answered from the handed-over settings, the cache and the ref files.
 * Otherwise "not decided", with what the full hook needs to write the cache when only the cache
 * was missing or stale. `settings`: what the shim handed over (null: ask git).
 */
export async function fastPreReceive(
  gitDir: string,
  env: NodeJS.ProcessEnv,
  stdin: Buffer,
  settings: readonly (readonly [string, string])[] | null,
): Promise<FastResult> {
  let cacheMiss: CacheMiss | undefined;
  const sources: TriageSources = {
    settings: async () => settings ?? (await gitSettings(gitDir, env)),
    policy: async (s: ServerSettings): Promise<PolicyView | null> => {
      const key = policyKey(gitDir, s.policyFile);
      if (!key) return null;
      const cache = readCache(gitDir);
      if (cache && cache.key === key.key) {
        const patterns = cache.protected.map((p) => compileRefPattern(p));
        return { kind: 'policy', protects: (ref) => patterns.some((p) => refMatches(p, ref)) };
      }
      const policy = key.policy ?? (key.commit ? await policyAt(gitDir, env, key.commit) : null);
      if (policy) cacheMiss = { key: key.key, policy, source: key.source };
      return null;
    },
    symbolicRefs: async (refs) => (noSymbolicRefs(gitDir, refs) ? new Map() : null),
  };
  try {
    // Settings from the environment (BREAKGLASS_POLICY, ...: hook environments without git
    // config) are left to the full hook: the cache is kept for git config's settings only.
    if (configFromEnv(env)) return { decided: false };
    const t = await triage(stdin, env, sources);
    if (t.kind === 'accept') return { decided: true, code: 0 };
    return cacheMiss ? { decided: false, cacheMiss } : { decided: false };
  } catch {
    return { decided: false };
  }
}

/**
 * Writes the cache for a miss, from the same policy bytes, after the full hook ran. Only a policy
 * that parses (and, from the repository, protects its own branch) is cached; failures are
 * ignored (the next push takes the full path again).
 */
export function writeFastPathCache(
  gitDir: string,
  miss: CacheMiss,
  protectedOf: (policy: Buffer, source: PolicySource) => string[] | null,
): void {
  try {
    const patterns = protectedOf(miss.policy, miss.source);
    if (!patterns) return;
    writeCache(gitDir, {
      version: CACHE_VERSION,
      key: miss.key,
      protected: patterns,
    });
  } catch {
    /* a cache: never worth failing a push over */
  }
}

/**
 * True when post-receive has nothing to do (flushJournal would find nothing): no journal entry
 * pending or in processing. Then the hook needn't load the recorder at all. Uses given back are
 * settled by pre-receive when a ticket runs out (E2), so there is no per-push sweep. Any doubt
 * (an unreadable directory): false.
 */
export function postReceiveIdle(gitDir: string): boolean {
  const list = (dir: string): string[] | null => {
    try {
      return fs.readdirSync(path.join(gitDir, 'breakglass', dir));
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ENOENT' ? [] : null;
    }
  };
  const pending = list('journal/pending');
  const processing = list('journal/processing');
  if (!pending || !processing) return false;
  return ![...pending, ...processing].some((f) => f.endsWith('.json'));
}
