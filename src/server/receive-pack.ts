import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

/*
 * Which git process is receiving a push, and whether it has ended (E2, docs/threat-model.md).
 * A reserved ticket use is given back only when git says the update did not happen; one of the
 * ways git says it is "the receive-pack process ended without committing the update". So the
 * hooks name their receive-pack by pid, start time and boot, read from /proc, and "ended" means
 * provably gone: the pid is free, a zombie, or now belongs to a process that started later.
 * Anywhere that can't be proven (another host sharing the repository, no /proc), the answer is
 * "unknown", and callers keep the event pending (fail closed) rather than guess.
 */

/** A process, named so that a reused pid or a reboot can't be mistaken for it. */
export interface ProcessRef {
  readonly pid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22). */
  readonly start: string;
  /** This boot (/proc/sys/kernel/random/boot_id) and host, hashed. */
  readonly boot: string;
}

export type Liveness = 'alive' | 'gone' | 'unknown';

const PROC = '/proc';
/** Hooks are a few levels below receive-pack (a forge's wrapper script, a chained shim). */
const MAX_HOPS = 8;

interface Stat {
  readonly state: string;
  readonly ppid: number;
  readonly start: string;
}

function readStat(pid: number, proc: string): Stat | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(proc, String(pid), 'stat'), 'latin1');
  } catch {
    return null;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
  const close = text.lastIndexOf(')');
  const f = text.slice(close + 2).split(' ');
  const ppid = Number(f[1]);
  const start = f[19];
  if (!f[0] || !Number.isSafeInteger(ppid) || !start || !/^\d+$/.test(start)) return null;
  return { state: f[0], ppid, start };
}

let bootCache: string | undefined;

/** The kernel's boot id as it is (the reference-transaction shim compares it in sh). */
export function bootId(proc = PROC): string {
  try {
    return fs.readFileSync(path.join(proc, 'sys/kernel/random/boot_id'), 'utf8').trim();
  } catch {
    return '';
  }
}

/** This boot on this host (empty when the kernel doesn't say: then nothing is provable). */
export function bootTag(proc = PROC): string {
  if (proc === PROC && bootCache !== undefined) return bootCache;
  const id = bootId(proc); // empty when not Linux or /proc is not mounted
  const tag = id
    ? createHash('sha256').update(`${hostname()}\0${id}`).digest('hex').slice(0, 16)
    : '';
  if (proc === PROC) bootCache = tag;
  return tag;
}

function isReceivePack(pid: number, proc: string): boolean {
  let argv: string[];
  try {
    argv = fs.readFileSync(path.join(proc, String(pid), 'cmdline'), 'latin1').split('\0');
  } catch {
    return false;
  }
  const cmd = path.basename(argv[0] ?? '');
  if (cmd === 'git-receive-pack') return true;
  // `git [-c x=y ...] receive-pack ...`: the first word that is not an option or its value.
  if (cmd !== 'git') return false;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-c' || a === '-C' || a === '--git-dir' || a === '--work-tree') i++;
    else if (!a.startsWith('-')) return a === 'receive-pack';
  }
  return false;
}

/**
 * The receive-pack process that runs this hook: the nearest ancestor of `from` (the hook's
 * parent) that is `git-receive-pack` or `git receive-pack`. Null when there is none or /proc
 * can't tell (a hook run by hand, a test calling the hook in-process, not Linux).
 */
export function findReceivePack(from: number, proc = PROC): ProcessRef | null {
  const boot = bootTag(proc);
  if (!boot) return null;
  let pid = from;
  for (let hop = 0; hop < MAX_HOPS && pid > 1; hop++) {
    const st = readStat(pid, proc);
    if (!st) return null;
    if (isReceivePack(pid, proc)) return { pid, start: st.start, boot };
    pid = st.ppid;
  }
  return null;
}

/** A running process, named as `findReceivePack` names receive-pack (null where unprovable). */
export function processRef(pid: number, proc = PROC): ProcessRef | null {
  const boot = bootTag(proc);
  const st = boot ? readStat(pid, proc) : null;
  return st ? { pid, start: st.start, boot } : null;
}

/** This very process (the pre-receive that reserves a use). */
export function selfRef(proc = PROC): ProcessRef | null {
  return processRef(process.pid, proc);
}

/** Whether a process still runs. `gone` is a proof; anything unprovable is `unknown`. */
export function liveness(p: ProcessRef | null | undefined, proc = PROC): Liveness {
  if (!p || !p.boot || p.boot !== bootTag(proc)) return 'unknown';
  const st = readStat(p.pid, proc);
  if (!st) return fs.existsSync(proc) ? 'gone' : 'unknown';
  if (st.start !== p.start) return 'gone'; // the pid was reused
  return st.state === 'Z' || st.state === 'X' ? 'gone' : 'alive';
}

/** Strict shape check for a ProcessRef read back from a state file (untrusted JSON). */
export function isProcessRef(v: unknown): v is ProcessRef {
  const o = v as ProcessRef;
  return (
    typeof o === 'object' &&
    o !== null &&
    Number.isSafeInteger(o.pid) &&
    o.pid > 0 &&
    typeof o.start === 'string' &&
    /^\d{1,20}$/.test(o.start) &&
    typeof o.boot === 'string' &&
    /^[0-9a-f]{16}$/.test(o.boot)
  );
}
