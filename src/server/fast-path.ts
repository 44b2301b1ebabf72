// The pre-receive fast path for pushes that touch nothing this tool guards (DESIGN §9: within
// 1.3x of `node -e 0`). Loading the policy parser (js-yaml, zod) and the ticket code costs more
// than Node's own start-up, and so does starting one git process, so on a warm cache this module
// imports none of that and starts no process: it decides from a small cache of the policy's
// protected ref patterns and of the `breakglass.*` settings, each valid only while what it was
// made from is unchanged. Anything unusual, and any doubt, means "not decided here": the full
// hook runs and decides (fail closed). It reads files synchronously (there is nothing to
// overlap) and loads child_process only when git must run: the CommonJS entry that runs it
// (hook-fast.ts) should load as little of Node as it can.
//
// It may only accept what the full hook (pre-receive.ts) accepts. For a push of unprotected,
// unguarded refs the full hook rejects only on: malformed or oversized input (TM12), push
// options (TM11), bad breakglass.* settings, a policy that is missing or invalid (incl. TM6),
// symbolic refs (TM9) and replace refs (N9, TM16). Each is mirrored below by sending the push to
// the full hook. A new check of that kind in pre-receive.ts must be mirrored here too (the
// adversarial suite runs through this entry, via the shims, and catches a miss).
//
// The cache (FP1-FP4, docs/server-setup.md "Hook start-up cache"):
//   FP1  protected patterns are used only for the exact policy they were read from: a pinned
//        policy's bytes (read and compared whole on every push), or for an in-repository
//        policy the commit id of HEAD's branch (read from the ref files; objects are
//        content-addressed, and read with --no-replace-objects, TM16), and this very bundle;
//   FP2  the settings are used only while every file git would read them from has the same
//        inode, size, mtime and ctime as when they were read, and the variables that choose
//        those files are unchanged; a file changed less than RACY_MS before it was fingerprinted
//        is not cached (its next change could share the timestamp, as in git's "racy git");
//   FP3  never cached: settings with include/includeIf, from the command line
//        (GIT_CONFIG_PARAMETERS, GIT_CONFIG_COUNT), from GIT_CONFIG, or from a file outside the
//        known list (our model of git's lookup would be wrong): git is asked on every push;
//   FP4  the cache file lives in $GIT_DIR, written by the hook's own user only (tmp + rename).
import fs from 'node:fs';
import path from 'node:path';
import { compileRefPattern, isValidRefName, refMatches } from '../policy/refs.ts';
import { configFromEnv } from './config-env.ts';
import { SWEEP_WINDOW_MS, ticketIdTime } from './ticket-time.ts';

/** Beside `$GIT_DIR/breakglass/` (not in it): it is a cache, never evidence or state. */
export const CACHE_FILE = 'breakglass-hook-cache.json';
const CACHE_VERSION = 2;
// Same bounds as the full hook (push-input.ts, policy/yaml.ts): past them the full hook decides.
export const MAX_STDIN_BYTES = 1024 * 1024;
const MAX_LINES = 10_000;
const MAX_POLICY_BYTES = 64 * 1024;
const MAX_CACHE_BYTES = 256 * 1024;
const MAX_PACKED_REFS_BYTES = 64 * 1024 * 1024;
/** FP2: a config file changed this recently is not fingerprinted (timestamps are coarse). */
export const RACY_MS = 2000;
const GIT_TIMEOUT_MS = 10_000;
const LINE = /^([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) (\S+)$/;
const OID_FILE = /^([0-9a-f]{40}|[0-9a-f]{64})\n?$/;
/** Variables that choose the files git reads its configuration from (FP2). */
const CONFIG_ENV = [
  'HOME',
  'XDG_CONFIG_HOME',
  'GIT_CONFIG_GLOBAL',
  'GIT_CONFIG_SYSTEM',
  'GIT_CONFIG_NOSYSTEM',
] as const;
/** FP3: configuration from these can't be fingerprinted. */
const UNCACHEABLE_ENV = ['GIT_CONFIG', 'GIT_CONFIG_PARAMETERS', 'GIT_CONFIG_COUNT'] as const;

/** Where the policy came from: a pinned file (absolute), or HEAD's branch in the repository. */
export type PolicySource = { kind: 'pinned'; file: string } | { kind: 'repo'; branch: string };

/** The settings part of the cache (FP2). */
export interface ConfigRecord {
  /** The values of CONFIG_ENV and the repository, as one string. */
  readonly env: string;
  /** [file, fingerprint] for every file git reads settings from (absent ones too). */
  readonly files: [string, string][];
  /** The `breakglass.*` entries, in git's order. */
  readonly values: [string, string][];
}

/** What the cache must match, and what the full hook needs to write it after a miss. */
export interface CacheMiss {
  readonly key: string;
  /** The policy bytes the key was made from (what the cache writer parses). */
  readonly policy: Buffer;
  readonly source: PolicySource;
  /** Fresh settings to store with the patterns, when they may be cached. */
  readonly config?: ConfigRecord;
}

export type FastResult =
  | { readonly decided: true; readonly code: 0 }
  | { readonly decided: false; readonly cacheMiss?: CacheMiss };

interface CacheFile {
  readonly version: number;
  readonly key: string;
  /** Ref patterns of every protected rule (their `source`). */
  readonly protected: string[];
  readonly config?: ConfigRecord;
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

/** The refs of plain, well-formed update lines, or null for anything the full hook must see. */
export function plainRefs(stdin: Buffer): string[] | null {
  if (stdin.length > MAX_STDIN_BYTES) return null;
  const text = stdin.toString('utf8');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.length === 0 || lines.length > MAX_LINES) return null;
  const refs = new Set<string>();
  for (const line of lines) {
    const m = LINE.exec(line);
    if (!m || m[1]!.length !== m[2]!.length || refs.has(m[3]!) || !isValidRefName(m[3]!)) {
      return null;
    }
    const ref = m[3]!;
    // TM8, TM10, TM16: the evidence namespace and replace refs are the full hook's business.
    if (ref.startsWith('refs/breakglass/') || ref === 'refs/notes/breakglass') return null;
    if (ref.startsWith('refs/replace/')) return null;
    refs.add(ref);
  }
  return [...refs];
}

/** `breakglass.*` settings, only when every one is a value the full hook accepts as is. */
function simpleConfig(values: readonly [string, string][]): { policyFile?: string } | null {
  const map = new Map(values.map(([k, v]) => [k.toLowerCase(), v]));
  const identity = map.get('breakglass.identity');
  if (identity !== undefined && !['', 'auto', 'unix', 'none'].includes(identity)) return null;
  const timeout = map.get('breakglass.timeout');
  if (timeout !== undefined && !(/^\d{1,3}$/.test(timeout) && +timeout >= 1 && +timeout <= 600)) {
    return null;
  }
  const policy = map.get('breakglass.policy');
  return policy ? { policyFile: policy } : {};
}

/** A file's identity and state (FP2), `absent`, or null when it can't be told (or is racy). */
function fingerprint(file: string, now: number): string | null {
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(file, { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'absent' : null;
  }
  const changed = Number((st.ctimeNs > st.mtimeNs ? st.ctimeNs : st.mtimeNs) / 1_000_000n);
  if (changed > now - RACY_MS) return null;
  return `${st.dev}:${st.ino}:${st.mode}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** FP3: false when settings may come from the command line or GIT_CONFIG. */
function cacheableEnv(env: NodeJS.ProcessEnv): boolean {
  return UNCACHEABLE_ENV.every((k) => !env[k] || (k === 'GIT_CONFIG_COUNT' && env[k] === '0'));
}

function envKey(gitDir: string, env: NodeJS.ProcessEnv): string {
  return JSON.stringify([gitDir, ...CONFIG_ENV.map((k) => env[k] ?? null)]);
}

/**
 * The files git reads settings from for this repository and environment (git's
 * do_git_config_sequence): system, global (XDG, then ~/.gitconfig, or GIT_CONFIG_GLOBAL),
 * the repository's config and config.worktree. The system file's compiled-in path is learned
 * once from git itself (`git config --system --edit` with `echo` as the editor).
 */
async function configFiles(gitDir: string, env: NodeJS.ProcessEnv): Promise<string[] | null> {
  const files = [path.join(gitDir, 'config'), path.join(gitDir, 'config.worktree')];
  if (env.GIT_CONFIG_GLOBAL !== undefined) {
    files.push(env.GIT_CONFIG_GLOBAL);
  } else {
    if (env.XDG_CONFIG_HOME) files.push(path.join(env.XDG_CONFIG_HOME, 'git', 'config'));
    else if (env.HOME) files.push(path.join(env.HOME, '.config', 'git', 'config'));
    if (env.HOME) files.push(path.join(env.HOME, '.gitconfig'));
  }
  let system = env.GIT_CONFIG_SYSTEM;
  if (system === undefined) {
    const r = await git(gitDir, { ...env, GIT_EDITOR: 'echo' }, ['config', '--system', '--edit']);
    const out = r.out.toString('utf8').replace(/\n$/, '');
    if (r.code !== 0 || !path.isAbsolute(out) || out.includes('\n')) return null;
    system = out;
  }
  files.push(system);
  return files.filter((f) => f !== '');
}

/** The settings from the cache, when FP2 holds for every file (else null). */
function cachedConfig(
  record: ConfigRecord | undefined,
  gitDir: string,
  env: NodeJS.ProcessEnv,
  now: number,
): [string, string][] | null {
  if (!record || !cacheableEnv(env) || record.env !== envKey(gitDir, env)) return null;
  for (const [file, print] of record.files) {
    if (fingerprint(file, now) !== print) return null;
  }
  return record.values;
}

/** The settings as git reads them, and a record of them when they may be cached (FP2, FP3). */
async function readConfig(
  gitDir: string,
  env: NodeJS.ProcessEnv,
  now: number,
): Promise<{ values: [string, string][]; record?: ConfigRecord } | null> {
  // Fingerprints first, then the read: a change in between shows as a new fingerprint.
  const files = cacheableEnv(env) ? await configFiles(gitDir, env) : null;
  const prints = files?.map((f) => [f, fingerprint(f, now)] as const);
  const r = await git(gitDir, env, [
    'config',
    '-z',
    '--show-origin',
    '--get-regexp',
    '^(breakglass|include|includeif)\\.',
  ]);
  if (r.code !== 0 && r.code !== 1) return null;
  const values: [string, string][] = [];
  const origins = new Set<string>();
  let included = false;
  const items = r.out.toString('utf8').split('\0');
  for (let i = 0; i + 1 < items.length; i += 2) {
    const origin = items[i]!;
    const item = items[i + 1]!;
    const nl = item.indexOf('\n');
    const key = (nl < 0 ? item : item.slice(0, nl)).toLowerCase();
    if (!key.startsWith('breakglass.')) {
      included = true;
      continue;
    }
    values.push([key, nl < 0 ? '' : item.slice(nl + 1)]);
    origins.add(origin.startsWith('file:') ? path.resolve(origin.slice(5)) : origin);
  }
  if (!prints || included || prints.some(([, p]) => p === null)) return { values };
  // git runs in our working directory: relative names mean the same to it and to us.
  const known = new Set(prints.map(([f]) => path.resolve(f)));
  if ([...origins].some((o) => !known.has(o))) return { values };
  return {
    values,
    record: { env: envKey(gitDir, env), files: prints as [string, string][], values },
  };
}

/** Identity of the hook bundles (a new build, a new cache). */
function bundleId(): string {
  // The same for both entries (bg-hook.cjs, bg-hook.js), so either can use the other's cache.
  const dir = path.dirname(path.resolve(process.argv[1] ?? ''));
  const ids = ['bg-hook.cjs', 'bg-hook.js'].map((name) => {
    const f = path.join(dir, name);
    try {
      const st = fs.statSync(f);
      return `${f}:${st.size}:${st.mtimeMs}`;
    } catch {
      return `${f}:absent`;
    }
  });
  return ids.join(' ');
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
  const id = bundleId();
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

function isPair(x: unknown): x is [string, string] {
  return Array.isArray(x) && x.length === 2 && x.every((s) => typeof s === 'string');
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
    const r = c.config;
    if (
      r !== undefined &&
      !(
        typeof r === 'object' &&
        typeof r.env === 'string' &&
        Array.isArray(r.files) &&
        r.files.every(isPair) &&
        Array.isArray(r.values) &&
        r.values.every(isPair)
      )
    ) {
      return { version: c.version, key: c.key, protected: c.protected };
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
 * Accepts a push at once when no updated ref is guarded or protected under the current policy
 * (by its cached patterns), with no push options and settings the full hook reads the same way.
 * Otherwise "not decided", with what the full hook needs to write the cache when only the cache
 * was missing or stale. `now` is the hook's reference time (FP2's racy check).
 */
export async function fastPreReceive(
  gitDir: string,
  env: NodeJS.ProcessEnv,
  stdin: Buffer,
  now: number,
): Promise<FastResult> {
  const slow: FastResult = { decided: false };
  try {
    const refs = plainRefs(stdin);
    if (!refs) return slow;
    // Push options may carry a malformed ticket id, which the full hook rejects (TM11).
    if (env.GIT_PUSH_OPTION_COUNT !== undefined && env.GIT_PUSH_OPTION_COUNT !== '0') return slow;
    // Settings from the environment (BREAKGLASS_POLICY, ...: config.ts) are the full hook's: the
    // cache knows only git config's, and a policy pinned this way may protect other refs.
    if (configFromEnv(env)) return slow;
    const cache = readCache(gitDir);
    // A ref protected under the cached policy goes to the full hook at once: whether the cache
    // is current doesn't matter for that answer.
    const patterns = cache?.protected.map((p) => compileRefPattern(p));
    if (patterns && refs.some((ref) => patterns.some((p) => refMatches(p, ref)))) return slow;
    if (!noSymbolicRefs(gitDir, refs)) return slow;

    // Settings: from the cache while FP2 holds, else from git (and cached when FP3 allows).
    let values = cachedConfig(cache?.config, gitDir, env, now);
    let record = values ? cache?.config : undefined;
    let fresh = false;
    if (!values) {
      const r = await readConfig(gitDir, env, now);
      if (!r) return slow;
      values = r.values;
      record = r.record;
      fresh = record !== undefined;
    }
    const config = simpleConfig(values);
    if (!config) return slow;
    const key = policyKey(gitDir, config.policyFile);
    if (!key) return slow;
    if (cache && patterns && cache.key === key.key) {
      if (fresh) writeCache(gitDir, { ...cache, config: record });
      return { decided: true, code: 0 };
    }
    const policy = key.policy ?? (key.commit ? await policyAt(gitDir, env, key.commit) : null);
    if (!policy) return slow;
    return {
      decided: false,
      cacheMiss: {
        key: key.key,
        policy,
        source: key.source,
        ...(record ? { config: record } : {}),
      },
    };
  } catch {
    return slow;
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
      ...(miss.config ? { config: miss.config } : {}),
    });
  } catch {
    /* a cache: never worth failing a push over */
  }
}

/**
 * True when post-receive has nothing to do (flushJournal and the sweep in journal.ts would find
 * nothing): no journal entry pending or in processing, and no reservation of a ticket recent
 * enough to be swept. Then the hook needn't load the recorder at all. Any doubt (an unreadable
 * directory, an odd name): false.
 */
export function postReceiveIdle(gitDir: string, now: number): boolean {
  const list = (dir: string): string[] | null => {
    try {
      return fs.readdirSync(path.join(gitDir, 'breakglass', dir));
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ENOENT' ? [] : null;
    }
  };
  const pending = list('journal/pending');
  const processing = list('journal/processing');
  const reserved = list('reservations');
  if (!pending || !processing || !reserved) return false;
  if ([...pending, ...processing].some((f) => f.endsWith('.json'))) return false;
  // As the sweep selects them (a superset: a name that is not provably old counts as recent).
  return reserved.every((id) => now - ticketIdTime(id) >= SWEEP_WINDOW_MS);
}
