// The pre-receive fast path for pushes that touch nothing this tool guards (DESIGN §9: within
// 1.3x of `node -e 0`). Loading the policy parser (js-yaml, zod) and the ticket code costs more
// than Node's own start-up, so this module imports none of it: it decides from a small cache of
// the policy's protected ref patterns, keyed by the exact policy bytes. Anything unusual, and
// any doubt, means "not decided here": the full hook runs and decides (fail closed).
//
// It may only accept what the full hook (pre-receive.ts) accepts. For a push of unprotected,
// unguarded refs the full hook rejects only on: malformed or oversized input (TM12), push
// options (TM11), bad breakglass.* settings, a policy that is missing or invalid (incl. TM6),
// and symbolic refs (TM9). Each is mirrored below by sending the push to the full hook. A new
// check of that kind in pre-receive.ts must be mirrored here too (the adversarial suite runs
// through this entry, via the shims, and catches a miss).
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { compileRefPattern, isValidRefName, refMatches } from '../policy/refs.ts';

/** Beside `$GIT_DIR/breakglass/` (not in it): it is a cache, never evidence or state. */
export const CACHE_FILE = 'breakglass-hook-cache.json';
const CACHE_VERSION = 1;
// Same bounds as the full hook (push-input.ts, policy/yaml.ts): past them the full hook decides.
const MAX_STDIN_BYTES = 1024 * 1024;
const MAX_LINES = 10_000;
const MAX_POLICY_BYTES = 64 * 1024;
const LINE = /^([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) (\S+)$/;

/**
 * What the cache must match: where the policy came from, this bundle, and the policy bytes
 * themselves (compared whole, not hashed: no crypto module to load, no collision to argue).
 */
export interface CacheKey {
  readonly key: string;
  /** The policy bytes the key was made from (what the cache writer parses). */
  readonly policy: Buffer;
  /** Pinned file (absolute), or the blob id of `.breakglass/policy.yml` at HEAD. */
  readonly source: { kind: 'pinned'; file: string } | { kind: 'repo'; branch: string };
}

export type FastResult =
  | { readonly decided: true; readonly code: 0 }
  | { readonly decided: false; readonly stdin: Buffer; readonly cacheMiss?: CacheKey };

function git(gitDir: string, env: NodeJS.ProcessEnv, args: string[]) {
  return new Promise<{ code: number; out: Buffer }>((resolve) => {
    const child = spawn('git', ['--no-replace-objects', '--git-dir', gitDir, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.on('error', () => resolve({ code: -1, out: Buffer.alloc(0) }));
    child.on('close', (code) => resolve({ code: code ?? -1, out: Buffer.concat(chunks) }));
  });
}

/** Reads stdin, stopping once past the limit (what was read is still over it for the full hook). */
async function readStdin(input: AsyncIterable<Buffer | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of input) {
    const b = typeof c === 'string' ? Buffer.from(c) : c;
    size += b.length;
    chunks.push(b);
    if (size > MAX_STDIN_BYTES) break;
  }
  return Buffer.concat(chunks);
}

/** The refs of plain, well-formed update lines, or null for anything the full hook must see. */
function plainRefs(stdin: Buffer): string[] | null {
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
    // TM8, TM10: the evidence namespace is always the full hook's business.
    if (m[3]!.startsWith('refs/breakglass/') || m[3] === 'refs/notes/breakglass') return null;
    refs.add(m[3]!);
  }
  return [...refs];
}

/** `breakglass.*` settings, only when every one is a value the full hook accepts as is. */
function simpleConfig(out: Buffer): { policyFile: string | undefined } | null {
  const values = new Map<string, string>();
  for (const item of out.toString('utf8').split('\0')) {
    if (!item) continue;
    const nl = item.indexOf('\n');
    values.set((nl < 0 ? item : item.slice(0, nl)).toLowerCase(), nl < 0 ? '' : item.slice(nl + 1));
  }
  const identity = values.get('breakglass.identity');
  if (identity !== undefined && !['', 'auto', 'unix', 'none'].includes(identity)) return null;
  const timeout = values.get('breakglass.timeout');
  if (timeout !== undefined && !(/^\d{1,3}$/.test(timeout) && +timeout >= 1 && +timeout <= 600)) {
    return null;
  }
  return { policyFile: values.get('breakglass.policy') || undefined };
}

async function bundleId(): Promise<string> {
  const file = process.argv[1] ?? '';
  const st = await fs.stat(file);
  return `${path.resolve(file)}:${st.size}:${st.mtimeMs}`;
}

async function readPinned(gitDir: string, file: string): Promise<Buffer | null> {
  try {
    const fh = await fs.open(path.resolve(gitDir, file), 'r');
    try {
      const buf = Buffer.alloc(MAX_POLICY_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return bytesRead > MAX_POLICY_BYTES ? null : buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch {
    return null;
  }
}

/** The policy as the full hook would load it, when that is simple (else null). */
async function policyKey(
  gitDir: string,
  env: NodeJS.ProcessEnv,
  policyFile: string | undefined,
): Promise<CacheKey | null> {
  const id = await bundleId();
  if (policyFile) {
    const file = path.resolve(gitDir, policyFile);
    const policy = await readPinned(gitDir, file);
    if (!policy) return null;
    return {
      key: `pinned ${file} ${id}\n${policy.toString('base64')}`,
      policy,
      source: { kind: 'pinned', file },
    };
  }
  // In-repository policy: HEAD must be a plain symbolic ref to a branch (the full hook also
  // checks that the policy protects that branch; the cache is only written when it does).
  const head = await fs.readFile(path.join(gitDir, 'HEAD'), 'utf8').catch(() => '');
  const m = /^ref: (refs\/heads\/\S+)\n?$/.exec(head);
  if (!m || m[1] === 'refs/heads/.invalid') return null;
  const r = await git(gitDir, env, ['cat-file', 'blob', 'HEAD:.breakglass/policy.yml']);
  if (r.code !== 0 || r.out.length > MAX_POLICY_BYTES) return null;
  return {
    key: `repo ${m[1]} ${id}\n${r.out.toString('base64')}`,
    policy: r.out,
    source: { kind: 'repo', branch: m[1]! },
  };
}

/**
 * True when no updated ref is a symbolic ref on the server (TM9: git would move its target, which
 * the full hook judges), as symref.ts checks it. Reftable or anything odd: not sure, so false.
 */
async function noSymbolicRefs(gitDir: string, refs: readonly string[]): Promise<boolean> {
  if (
    await fs.stat(path.join(gitDir, 'reftable')).then(
      () => true,
      () => false,
    )
  )
    return false;
  for (const ref of refs) {
    const file = path.join(gitDir, ref);
    let st;
    try {
      st = await fs.lstat(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // absent, or packed (never symbolic)
      return false;
    }
    if (!st.isFile() || st.size >= 4096) return false;
    if ((await fs.readFile(file, 'utf8')).startsWith('ref:')) return false;
  }
  return true;
}

interface CacheFile {
  readonly version: number;
  readonly key: string;
  /** Ref patterns of every protected rule (their `source`). */
  readonly protected: string[];
}

async function readCache(gitDir: string): Promise<CacheFile | null> {
  try {
    const c = JSON.parse(await fs.readFile(path.join(gitDir, CACHE_FILE), 'utf8')) as CacheFile;
    if (c?.version !== CACHE_VERSION || typeof c.key !== 'string') return null;
    if (!Array.isArray(c.protected) || !c.protected.every((p) => typeof p === 'string')) {
      return null;
    }
    return c;
  } catch {
    return null;
  }
}

/**
 * Accepts a push at once when no updated ref is guarded or protected under the current policy
 * (by its cached patterns), with no push options and a configuration the full hook would read
 * the same way. Otherwise returns the stdin it consumed for the full hook, and the cache key
 * when only the cache was missing or stale.
 */
export async function fastPreReceive(
  gitDir: string,
  env: NodeJS.ProcessEnv,
  input: AsyncIterable<Buffer | string>,
): Promise<FastResult> {
  const [stdin, cache] = await Promise.all([readStdin(input), readCache(gitDir)]);
  const slow: FastResult = { decided: false, stdin };
  if (stdin.length > MAX_STDIN_BYTES) return slow;
  try {
    const refs = plainRefs(stdin);
    if (!refs) return slow;
    // Push options may carry a malformed ticket id, which the full hook rejects (TM11).
    if (env.GIT_PUSH_OPTION_COUNT !== undefined && env.GIT_PUSH_OPTION_COUNT !== '0') return slow;
    // A ref protected under the cached policy goes to the full hook at once, without a git
    // process here: whether the cache is current doesn't matter for that answer.
    const patterns = cache?.protected.map((p) => compileRefPattern(p));
    if (patterns && refs.some((ref) => patterns.some((p) => refMatches(p, ref)))) return slow;
    const r = await git(gitDir, env, ['config', '-z', '--get-regexp', '^breakglass\\.']);
    if (r.code !== 0 && r.code !== 1) return slow;
    const config = simpleConfig(r.out);
    if (!config) return slow;
    const [key, plain] = await Promise.all([
      policyKey(gitDir, env, config.policyFile),
      noSymbolicRefs(gitDir, refs),
    ]);
    if (!key || !plain) return slow;
    // Decided only by a cache made from these very policy bytes (and this bundle).
    if (!cache || !patterns || cache.key !== key.key) {
      return { decided: false, stdin, cacheMiss: key };
    }
    return { decided: true, code: 0 };
  } catch {
    return slow;
  }
}

/**
 * Writes the cache for a key, from the same policy bytes, after the full hook ran. Only a policy
 * that parses (and, from the repository, protects its own branch) is cached; failures are
 * ignored (the next push takes the full path again).
 */
export async function writeFastPathCache(
  gitDir: string,
  key: CacheKey,
  protectedOf: (policy: Buffer, source: CacheKey['source']) => string[] | null,
): Promise<void> {
  try {
    const patterns = protectedOf(key.policy, key.source);
    if (!patterns) return;
    const body: CacheFile = { version: CACHE_VERSION, key: key.key, protected: patterns };
    const file = path.join(gitDir, CACHE_FILE);
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(body) + '\n', { mode: 0o644, flag: 'wx' });
    await fs.rename(tmp, file);
  } catch {
    /* a cache: never worth failing a push over */
  }
}
