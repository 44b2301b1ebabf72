import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { UpdateKind } from '../engine/update.ts';
import { BreakglassError } from '../errors.ts';
import type { Action } from '../ticket/payload.ts';
import { TICKET_ID } from '../ticket/payload.ts';
import {
  bootId,
  isProcessRef,
  liveness,
  selfRef,
  type Liveness,
  type ProcessRef,
} from './receive-pack.ts';

/**
 * The server's own state under `$GIT_DIR/breakglass/` (pre-receive can't write refs, it runs in
 * git's quarantine, so it writes files):
 *
 *   reservations/<ticket id>/<n>   one file per use slot n < maxUses, created with O_EXCL: the
 *                                  push that creates it owns that use. Kept as the permanent
 *                                  marker once the use is recorded; removed only when git says
 *                                  the push did not happen (E2). Never delete this by hand.
 *   journal/pending/<name>.json    events accepted by pre-receive, not yet recorded
 *   journal/processing/<name>~<k>.json  claimed by one flusher (a crash leaves it; reclaimed)
 *   journal/done/<name>.json       resolved entries (recorded or dropped), kept as a trail
 *   journal/bad/<file>             entries that can't be read: kept for a human, and while any
 *                                  is here new break-glass pushes are refused (E4)
 *   journal/tx/<name>/<state>-<h>  what git's reference-transaction hook reported for the
 *                                  entry's receive-pack: prepared, committed or aborted updates
 *   armed/<receive-pack pid>       names the entry of a receive-pack whose push a ticket let
 *                                  through: the reference-transaction shim goes past its first
 *                                  line only when this file exists (no cost on other pushes)
 *
 * Several Unix accounts may push to one repository (E6): every directory made here takes the
 * permission bits of its parent (the state root those of $GIT_DIR, which `git init --shared`
 * makes group-writable and setgid, as core.sharedRepository asks), and every file is written
 * readable and writable as its directory allows, whatever the writer's umask.
 */

export const STATE_DIR = 'breakglass';

/** One update that a ticket authorised, with what the audit note needs. */
export interface PendingEvent {
  readonly ticket: string;
  readonly ref: string;
  readonly oldSha: string;
  readonly newSha: string;
  readonly kind: UpdateKind;
  readonly actions: Action[];
  /** Entries written before E5 listed the commits; newer ones compute them when recording. */
  readonly commits?: string[];
  readonly pusher: string;
  readonly requester: { principal: string; keyid: string };
  readonly approvers: { principal: string; keyid: string }[];
  readonly reason: string;
  readonly incident?: string;
  readonly window: { notBefore: string; expiresAt: string };
  /**
   * A created ref: the tips of the other protected refs when it was pushed. The commits it
   * brings in are those not on any of them (E1); updates use old..new.
   */
  readonly base?: string[];
}

export interface Reservation {
  readonly ticket: string;
  readonly slot: number;
}

/** One accepted push. */
export interface JournalEntry {
  readonly version: 1;
  readonly name: string;
  /** When pre-receive accepted the push (RFC 3339); also the note's Recorded time. */
  readonly createdAt: string;
  readonly createdAtMs: number;
  /** e.g. `pre-receive@git.example.com`. */
  readonly recordedBy: string;
  readonly events: PendingEvent[];
  readonly reservations: Reservation[];
  /** The git receive-pack that ran pre-receive (null: not provable here, see receive-pack.ts). */
  readonly receivePack?: ProcessRef | null;
  /** false: no reference-transaction hook reported on this push (a forge's own hook set). */
  readonly transactionHook?: false;
  /** Flushes that failed on this entry, and the last error (E4: reported, blocks new pushes). */
  readonly failures?: number;
  readonly lastError?: string;
  /** Tickets whose one use for this push is already recorded (by an earlier partial flush). */
  readonly usesRecorded?: string[];
  /** Set when resolved (in done/). */
  readonly resolution?: { recorded: string[]; dropped: string[]; at: string };
}

export function stateDir(gitDir: string): string {
  return path.join(gitDir, STATE_DIR);
}

type JournalDir = 'pending' | 'processing' | 'done' | 'tmp' | 'bad' | 'tx';

function journalDir(gitDir: string, which: JournalDir) {
  return path.join(stateDir(gitDir), 'journal', which);
}

// E6: the permission bits a directory gives what is made in it (shared repositories).
const DIR_BITS = 0o2777;

/**
 * Makes a directory and any missing parents, each with its parent's permission bits (setgid and
 * group write included), so a repository shared by several accounts stays writable by all.
 */
export async function ensureDir(dir: string): Promise<void> {
  const missing: string[] = [];
  let d = path.resolve(dir);
  for (;;) {
    try {
      if ((await fs.stat(d)).isDirectory()) break;
      throw new Error(`${d} is not a directory`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    missing.push(d);
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  for (const m of missing.reverse()) {
    const parentMode = (await fs.stat(path.dirname(m))).mode & DIR_BITS;
    try {
      await fs.mkdir(m, { mode: parentMode & 0o777 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
    // mkdir's mode passes through the umask, and setgid is not taken from it at all.
    if (parentMode & 0o070) await fs.chmod(m, parentMode).catch(() => {});
  }
}

/** The mode for a file in `dir`: read/write as the directory allows (no execute bits). */
async function fileModeIn(dir: string): Promise<number> {
  return ((await fs.stat(dir)).mode & 0o666) | 0o600;
}

/** Creates a file exclusively with the directory's sharing, whatever the umask. */
async function openShared(file: string, flags: string): Promise<fs.FileHandle> {
  const mode = await fileModeIn(path.dirname(file));
  const fh = await fs.open(file, flags, mode);
  if (mode & 0o066) await fh.chmod(mode).catch(() => {});
  return fh;
}

function reservationDir(gitDir: string, ticket: string): string {
  if (!TICKET_ID.test(ticket)) throw new BreakglassError('INTERNAL', `bad ticket id ${ticket}`);
  return path.join(stateDir(gitDir), 'reservations', ticket);
}

/** A unique, time-sortable journal entry name. */
export function newEntryName(now: number): string {
  const t = new Date(now)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${t}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a file durably: temp file, fsync, rename into place, fsync the directory. */
async function writeDurably(dir: string, file: string, data: string, tmpDir: string) {
  await ensureDir(dir);
  await ensureDir(tmpDir);
  const tmp = path.join(tmpDir, `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await openShared(tmp, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, path.join(dir, file));
  await fsyncDir(dir);
}

/** What a reservation file says: which entry the use is for, and who wrote it. */
interface SlotOwner {
  readonly entry?: string;
  /** The pre-receive that reserved it (null where not provable). */
  readonly writer?: ProcessRef | null;
}

function unavailable(ticket: string, gitDir: string, e: unknown): BreakglassError {
  return new BreakglassError(
    'JOURNAL_UNAVAILABLE',
    `cannot read the use reservations of ticket ${ticket} under ${stateDir(gitDir)}: ${(e as Error).message}`,
    { hint: 'the server admin must make $GIT_DIR/breakglass readable and writable' },
  );
}

async function takenSlots(gitDir: string, ticket: string): Promise<string[]> {
  try {
    const names = await fs.readdir(reservationDir(gitDir, ticket));
    return names.filter((n) => /^\d{1,4}$/.test(n));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    // Unknown use count: fail closed (S7), the push can't be ticketed.
    throw unavailable(ticket, gitDir, e);
  }
}

/** How long a holder's retry waits for the receive-pack of a refused push to finish exiting. */
const RETRY_WAIT_MS = 3000;

/**
 * Number of use slots taken (pending or recorded) for a ticket. When that is all `maxUses`, the
 * slots of pushes git did not commit are given back first (E2, `reclaimSlots`), so the holder's
 * retry after a push another hook refused works at once.
 */
export async function countReservations(
  gitDir: string,
  ticket: string,
  maxUses = Infinity,
): Promise<number> {
  let taken = (await takenSlots(gitDir, ticket)).length;
  if (taken < maxUses) return taken;
  const deadline = Date.now() + RETRY_WAIT_MS;
  for (;;) {
    const { released, inFlight } = await reclaimSlots(gitDir, ticket);
    taken -= released;
    if (taken < maxUses || !inFlight || Date.now() > deadline) return taken;
    await new Promise((r) => setTimeout(r, 50));
    taken = (await takenSlots(gitDir, ticket)).length;
  }
}

// TM7, TM14: the use is taken before pre-receive says yes, so concurrent pushes race on O_EXCL.
/**
 * Takes one free use slot of a ticket with an exclusive create (O_EXCL): of any number of
 * concurrent pushes, only maxUses get a slot. Slots are tried from 0 up, so a slot given back
 * by a push that did not land is reused. Returns the slot, or null when every slot is taken.
 */
export async function reserveUse(
  gitDir: string,
  ticket: string,
  maxUses: number,
  entryName: string,
  now: number,
): Promise<number | null> {
  const dir = reservationDir(gitDir, ticket);
  await ensureDir(dir);
  const owner = JSON.stringify({ entry: entryName, at: now, writer: selfRef() }) + '\n';
  for (let slot = 0; slot < maxUses; slot++) {
    let fh;
    try {
      fh = await openShared(path.join(dir, String(slot)), 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
    try {
      await fh.writeFile(owner);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncDir(dir);
    return slot;
  }
  return null;
}

/** Gives a use slot back (git did not commit the push it was taken for). */
export async function releaseUse(gitDir: string, r: Reservation): Promise<void> {
  await fs.rm(path.join(reservationDir(gitDir, r.ticket), String(r.slot)), { force: true });
}

/** Appends an accepted push to the journal, durably (pending/). */
export async function writePending(gitDir: string, entry: JournalEntry): Promise<void> {
  await writeDurably(
    journalDir(gitDir, 'pending'),
    `${entry.name}.json`,
    JSON.stringify(entry) + '\n',
    journalDir(gitDir, 'tmp'),
  );
}

/** Removes a pending entry that was never acted on (pre-receive rolling back). */
export async function removePending(gitDir: string, name: string): Promise<void> {
  await fs.rm(path.join(journalDir(gitDir, 'pending'), `${name}.json`), { force: true });
}

/** A claimed journal file: only the flusher that renamed it into processing/ works on it. */
export interface Claimed {
  readonly file: string;
  readonly entry: JournalEntry | null;
  readonly error?: string;
}

const ENTRY_NAME = /^[0-9TZ]+-\d+-[0-9a-f]+$/;
// Entries carry no commit lists since E5 (a few KiB for 64 refs); older ones could be larger.
const MAX_ENTRY_BYTES = 64 * 1024 * 1024;

async function readEntry(file: string): Promise<{ entry: JournalEntry | null; error?: string }> {
  try {
    const st = await fs.stat(file);
    if (st.size > MAX_ENTRY_BYTES) return { entry: null, error: 'journal entry too large' };
    const json = JSON.parse(await fs.readFile(file, 'utf8')) as JournalEntry;
    if (
      json?.version !== 1 ||
      typeof json.name !== 'string' ||
      !ENTRY_NAME.test(json.name) ||
      !Array.isArray(json.events) ||
      !Array.isArray(json.reservations) ||
      (json.receivePack != null && !isProcessRef(json.receivePack))
    ) {
      return { entry: null, error: 'not a journal entry' };
    }
    return { entry: json };
  } catch (e) {
    return { entry: null, error: (e as Error).message };
  }
}

// A claim's file name says who holds it: `<entry>~<pid>-<host hash>-<random>.json`. A claim whose
// holder was a process on this host that no longer exists (a post-receive killed mid-flush) is
// taken over at once; any other is taken over only once it is older than `staleMs`.
const CLAIM_SUFFIX = /~[0-9a-f]+(?:-[0-9a-f]+-[0-9a-f]+)?$/;
const HOST_TAG = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

function claimTag(): string {
  return `${process.pid.toString(16)}-${HOST_TAG}-${randomBytes(4).toString('hex')}`;
}

/** True if the claim file was made by a process on this host that is gone. */
function claimOwnerDead(file: string): boolean {
  const m = /~([0-9a-f]+)-([0-9a-f]+)-[0-9a-f]+\.json$/.exec(file);
  if (!m || m[2] !== HOST_TAG) return false;
  const pid = parseInt(m[1]!, 16);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Same receive-pack (pid, start time and boot). */
export function sameProcess(a: ProcessRef | null | undefined, b: ProcessRef | null | undefined) {
  return !!a && !!b && a.pid === b.pid && a.start === b.start && a.boot === b.boot;
}

async function listJson(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).filter((f) => f.endsWith('.json')).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

export interface ClaimOptions {
  /** The flusher's own receive-pack (post-receive): its entry is claimed although it runs. */
  readonly mine?: ProcessRef | null;
  /** Only entries naming this ticket (pre-receive giving back uses of one ticket). */
  readonly ticket?: string;
  /** The updates git listed to the calling post-receive (`updateKey`s). */
  readonly mineKeys?: ReadonlySet<string>;
  /** Told about a file that could not be claimed (another account's file, a race): skipped. */
  readonly onError?: (message: string) => void;
  /** Told about an entry left alone because its push is still running. */
  readonly onInFlight?: (entry: JournalEntry) => void;
}

/**
 * Claims pending entries (and processing entries older than `staleMs`, left by a crashed
 * flusher) by renaming them into processing/ under a fresh name; a rename only one process can
 * win. An entry whose receive-pack still runs, other than the caller's own, is left alone: its
 * own post-receive records it. A file that can't be claimed is reported and skipped (E6).
 */
export async function claimEntries(
  gitDir: string,
  now: number,
  staleMs: number,
  o: ClaimOptions = {},
): Promise<Claimed[]> {
  const pendingDir = journalDir(gitDir, 'pending');
  const procDir = journalDir(gitDir, 'processing');
  const sources: string[] = [];
  for (const f of await listJson(pendingDir)) {
    const full = path.join(pendingDir, f);
    const { entry } = await readEntry(full);
    if (entry && !due(entry, o)) {
      if (entry.receivePack && liveness(entry.receivePack) === 'alive') o.onInFlight?.(entry);
      continue;
    }
    sources.push(full);
  }
  for (const f of await listJson(procDir)) {
    const full = path.join(procDir, f);
    try {
      if (claimOwnerDead(f) || now - (await fs.stat(full)).mtimeMs > staleMs) {
        const { entry } = await readEntry(full);
        if (entry && o.ticket && !entry.events.some((e) => e.ticket === o.ticket)) continue;
        sources.push(full);
      }
    } catch {
      /* claimed and finished by someone else meanwhile */
    }
  }
  if (sources.length === 0) return [];
  await ensureDir(procDir);
  const claimed: Claimed[] = [];
  for (const src of sources) {
    const base = path.basename(src, '.json').replace(CLAIM_SUFFIX, '');
    const dest = path.join(procDir, `${base}~${claimTag()}.json`);
    try {
      await fs.rename(src, dest);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // someone else won
      o.onError?.(`journal file ${src} could not be claimed: ${(e as Error).message}`);
      continue;
    }
    const read = await readEntry(dest);
    try {
      await touchClaim(dest, now, read.entry);
    } catch (e) {
      o.onError?.(`journal file ${dest} could not be marked as claimed: ${(e as Error).message}`);
    }
    claimed.push({ file: dest, ...read });
  }
  return claimed;
}

/**
 * Dates a claim now (its mtime is what another flusher reads as its age). Changing the times of
 * another account's file is not allowed (E6: a repository pushed to by several accounts): then
 * the claim is written again as the claimer's own file, in place.
 */
async function touchClaim(file: string, now: number, entry: JournalEntry | null): Promise<void> {
  const t = new Date(now);
  try {
    await fs.utimes(file, t, t);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM' || !entry) throw e;
    await writeDurably(
      path.dirname(file),
      path.basename(file),
      JSON.stringify(entry) + '\n',
      path.join(path.dirname(path.dirname(file)), 'tmp'),
    );
  }
}

/**
 * Whether this flusher may take an entry now. Never an entry of a push still running other than
 * its own (that push's post-receive records it). An entry with no provable receive-pack (written
 * where /proc can't tell) is taken only by the post-receive git listed its updates to, or by an
 * admin's flush: anyone else could only put it back, and would hide it from its own post-receive
 * meanwhile.
 */
function due(entry: JournalEntry, o: ClaimOptions): boolean {
  if (o.ticket && !entry.events.some((e) => e.ticket === o.ticket)) return false;
  if (sameProcess(entry.receivePack, o.mine)) return true;
  if (!entry.receivePack) {
    if (o.mineKeys?.size) {
      return entry.events.some((e) => o.mineKeys!.has(updateKey(e.ref, e.oldSha, e.newSha)));
    }
    return !o.ticket && !o.mine;
  }
  return liveness(entry.receivePack) !== 'alive';
}

/** Puts a claimed entry (possibly with fewer events) back into pending/ for a later flush. */
export async function unclaim(gitDir: string, c: Claimed, entry: JournalEntry): Promise<void> {
  await writePending(gitDir, entry);
  await fs.rm(c.file, { force: true });
}

/** Files a resolved entry under done/ and removes what only an open entry needs. */
export async function finish(gitDir: string, c: Claimed, entry: JournalEntry): Promise<void> {
  await writeDurably(
    journalDir(gitDir, 'done'),
    `${entry.name}.json`,
    JSON.stringify(entry) + '\n',
    journalDir(gitDir, 'tmp'),
  );
  await fs.rm(c.file, { force: true });
  // The entry is resolved and filed: what is left here is inert (an arming is checked against
  // the process's start time, a finished entry's records are never read), so a failure to tidy
  // it up is no recording failure.
  await disarm(gitDir, entry);
  await fs
    .rm(path.join(journalDir(gitDir, 'tx'), entry.name), { recursive: true, force: true })
    .catch(() => {});
}

/**
 * Moves an unreadable journal file aside (bad/), keeping it for a human. Not forgotten: while
 * bad/ holds a file, new break-glass pushes are refused and `bg-sign audit` reports it (E4, E5).
 */
export async function quarantineBad(gitDir: string, c: Claimed): Promise<void> {
  const dir = journalDir(gitDir, 'bad');
  await ensureDir(dir);
  await fs.rename(c.file, path.join(dir, path.basename(c.file)));
}

/**
 * Entry names that still count (pending, processing or done). An entry moves between folders
 * while we read them; two scans in opposite orders together see every entry at least once.
 */
async function knownEntries(gitDir: string): Promise<Set<string>> {
  const names = new Set<string>();
  const order = ['pending', 'processing', 'done'] as const;
  for (const which of [...order, ...[...order].reverse()]) {
    try {
      for (const f of await fs.readdir(journalDir(gitDir, which))) {
        names.add(f.replace(/\.json$/, '').replace(CLAIM_SUFFIX, ''));
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return names;
}

// ---- What git said about the updates of an accepted push (E2) ----

export type TxState = 'prepared' | 'committed' | 'aborted';

/** `<ref> <old> <new>`: one update, as journal events and git's hook lines both name it. */
export const updateKey = (ref: string, oldSha: string, newSha: string) =>
  `${ref} ${oldSha} ${newSha}`;

function armedFile(gitDir: string, pid: number): string {
  return path.join(stateDir(gitDir), 'armed', String(pid));
}

/**
 * Arms the reference-transaction hook for this receive-pack: from now on its ref transactions
 * are written down under journal/tx/<entry>/ (the directory is made here, so the hook only adds
 * files to it). One line, `<entry> <pid> <start time> <boot id>`, that the sh shim reads with
 * `read` and checks against /proc, so a later process that reuses the pid is not taken for it.
 */
export async function arm(gitDir: string, entry: JournalEntry): Promise<void> {
  const rp = entry.receivePack;
  if (!rp) return;
  await ensureDir(path.join(journalDir(gitDir, 'tx'), entry.name));
  await writeDurably(
    path.join(stateDir(gitDir), 'armed'),
    String(rp.pid),
    `${entry.name} ${rp.pid} ${rp.start} ${bootId()}\n`,
    journalDir(gitDir, 'tmp'),
  );
}

function readArmed(text: string): { entry: string; pid: number; start: string } | null {
  const m = /^(\S+) (\d+) (\d+) (\S+)\n?$/.exec(text);
  if (!m || !ENTRY_NAME.test(m[1]!) || m[4] !== bootId()) return null;
  return { entry: m[1]!, pid: Number(m[2]), start: m[3]! };
}

/** Removes the arming of an entry's receive-pack (if it still names that entry). */
export async function disarm(gitDir: string, entry: JournalEntry): Promise<void> {
  const rp = entry.receivePack;
  if (!rp) return;
  const file = armedFile(gitDir, rp.pid);
  try {
    if (readArmed(await fs.readFile(file, 'utf8'))?.entry === entry.name) {
      await fs.rm(file, { force: true });
    }
  } catch {
    /* gone already */
  }
}

/** The entry a receive-pack was armed for, if the arming is really that process's. */
export async function armedEntry(gitDir: string, rp: ProcessRef | null): Promise<string | null> {
  if (!rp) return null;
  try {
    const armed = readArmed(await fs.readFile(armedFile(gitDir, rp.pid), 'utf8'));
    return armed && armed.pid === rp.pid && armed.start === rp.start ? armed.entry : null;
  } catch {
    return null;
  }
}

/** The updates git reported in each transaction state for an entry, as `updateKey`s. */
export async function readTxMarkers(
  gitDir: string,
  entryName: string,
): Promise<Record<TxState, Set<string>>> {
  const out = {
    prepared: new Set<string>(),
    committed: new Set<string>(),
    aborted: new Set<string>(),
  };
  const dir = path.join(journalDir(gitDir, 'tx'), entryName);
  let files: string[];
  try {
    files = await fs.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw e;
  }
  for (const f of files) {
    // `<state>-XXXXXXXX` as the shim's mktemp names them; `.tmp.*` are being written.
    const state = /^(prepared|committed|aborted)-[0-9A-Za-z]{6,16}$/.exec(f)?.[1] as
      TxState | undefined;
    if (!state) continue;
    for (const line of (await fs.readFile(path.join(dir, f), 'utf8')).split('\n')) {
      const m = /^(\S+) (\S+) (\S+)$/.exec(line);
      if (m) out[state].add(updateKey(m[3]!, m[1]!, m[2]!));
    }
  }
  return out;
}

/**
 * An admin's word on an entry git left uncertain (E2: prepared, then no outcome; or no
 * reference-transaction hook on this platform): written as the record git would have written,
 * for every update of the entry, so the next flush records it (`landed`) or gives its uses back
 * (`dropped`). `bg-sign audit flush GIT_DIR --resolve <entry>=landed|dropped`.
 */
export async function resolveEntry(
  gitDir: string,
  name: string,
  outcome: 'landed' | 'dropped',
): Promise<JournalEntry> {
  if (!ENTRY_NAME.test(name)) {
    throw new BreakglassError('USAGE', `"${name.slice(0, 80)}" is not a journal entry name`);
  }
  const found = (await openEntries(gitDir)).find((o) => o.entry?.name === name)?.entry;
  if (!found) {
    throw new BreakglassError(
      'USAGE',
      `no open journal entry ${name} (bg-sign audit flush lists them)`,
    );
  }
  const lines = found.events.map((e) => `${e.oldSha} ${e.newSha} ${e.ref}`).join('\n') + '\n';
  const state: TxState = outcome === 'landed' ? 'committed' : 'aborted';
  await writeDurably(
    path.join(journalDir(gitDir, 'tx'), name),
    `${state}-admin${randomBytes(4).toString('hex')}`,
    lines,
    journalDir(gitDir, 'tmp'),
  );
  return found;
}

export type EventStatus = 'landed' | 'dropped' | 'waiting' | 'uncertain';

export interface StatusFacts {
  /** post-receive's stdin: the updates git made. */
  readonly updated: ReadonlySet<string>;
  /** The caller is the post-receive of this entry's own receive-pack (git is done with it). */
  readonly own: boolean;
  readonly markers: Record<TxState, ReadonlySet<string>>;
  readonly receivePack: Liveness;
  /** Whether git's reference-transaction hook reported on this push (else no marker proves). */
  readonly transactionHook: boolean;
}

// E2: only what git says decides, never where the ref points now.
/**
 * Did git commit this update? `landed`: post-receive listed it, or the reference-transaction
 * hook saw it committed. `dropped`: the transaction aborted, or git has finished with the push
 * (its post-receive, or its receive-pack provably ended) without committing or even preparing
 * it. `uncertain`: prepared, then the receive-pack ended with no word on the outcome (kept,
 * reported, its use kept). `waiting`: the push may still be landing.
 */
export function eventStatus(key: string, f: StatusFacts): EventStatus {
  if (f.updated.has(key) || f.markers.committed.has(key)) return 'landed';
  if (f.markers.aborted.has(key)) return 'dropped';
  if (f.own) return 'dropped';
  if (f.receivePack === 'gone') {
    // Without the hook, "no prepared record" proves nothing.
    if (!f.transactionHook || f.markers.prepared.has(key)) return 'uncertain';
    return 'dropped';
  }
  return 'waiting';
}

/**
 * Gives back the use slots of a ticket that git did not commit (E2): a slot whose entry was
 * never written by a pre-receive that is gone (killed between the two steps), and the slots of
 * entries all of whose events git dropped. Returns how many were given back, and whether a
 * slot's push may still be landing (its receive-pack still runs).
 */
export async function reclaimSlots(
  gitDir: string,
  ticket: string,
  onRelease: (r: Reservation) => void = () => {},
): Promise<{ released: number; inFlight: boolean }> {
  let released = 0;
  let inFlight = false;
  const known = await knownEntries(gitDir);
  for (const slot of await takenSlots(gitDir, ticket)) {
    const file = path.join(reservationDir(gitDir, ticket), slot);
    let owner: SlotOwner;
    try {
      owner = JSON.parse(await fs.readFile(file, 'utf8')) as SlotOwner;
    } catch {
      continue; // unreadable: keep it (a kept slot fails closed)
    }
    if (owner.entry && !known.has(owner.entry)) {
      const w = liveness(isProcessRef(owner.writer) ? owner.writer : null);
      if (w === 'gone') {
        await fs.rm(file, { force: true });
        released++;
        onRelease({ ticket, slot: Number(slot) });
      } else if (w === 'alive') inFlight = true;
    }
  }
  // Entries of this ticket whose receive-pack ended: resolve those git dropped whole.
  for (const c of await claimEntries(gitDir, Date.now(), Infinity, { ticket })) {
    if (!c.entry) continue; // picked up again by the next flush, which files it under bad/
    const markers = await readTxMarkers(gitDir, c.entry.name);
    const rp = liveness(c.entry.receivePack);
    const facts = {
      updated: new Set<string>(),
      own: false,
      markers,
      receivePack: rp,
      transactionHook: c.entry.transactionHook !== false,
    };
    const all = c.entry.events.map((e) => eventStatus(updateKey(e.ref, e.oldSha, e.newSha), facts));
    if (all.length > 0 && all.every((s) => s === 'dropped')) {
      for (const r of c.entry.reservations) {
        await releaseUse(gitDir, r);
        if (r.ticket === ticket) released++;
        onRelease(r);
      }
      await finish(gitDir, c, {
        ...c.entry,
        resolution: {
          recorded: [],
          dropped: c.entry.events.map((e) => e.ref),
          at: new Date().toISOString(),
        },
      });
    } else {
      if (all.includes('waiting')) inFlight = true;
      await unclaim(gitDir, c, c.entry);
    }
  }
  return { released, inFlight };
}

/** Tickets that have use slots (every one: an admin's `bg-sign audit flush` sweeps them all). */
export async function reservedTickets(gitDir: string): Promise<string[]> {
  try {
    return (await fs.readdir(path.join(stateDir(gitDir), 'reservations'))).filter((id) =>
      TICKET_ID.test(id),
    );
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** A journal problem that stops new break-glass pushes (E4). */
export interface RecordingProblem {
  readonly file: string;
  readonly why: string;
}

/**
 * Signs that recording is broken (E4): unreadable entries kept in bad/, and entries that a flush
 * already failed on. Events merely waiting for their post-receive are not problems.
 */
export async function recordingProblems(gitDir: string): Promise<RecordingProblem[]> {
  const problems: RecordingProblem[] = [];
  const bad = journalDir(gitDir, 'bad');
  for (const f of await fs.readdir(bad).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw e;
  })) {
    problems.push({ file: path.join(bad, f), why: 'unreadable journal entry kept for a human' });
  }
  for (const which of ['pending', 'processing'] as const) {
    for (const f of await listJson(journalDir(gitDir, which))) {
      const full = path.join(journalDir(gitDir, which), f);
      const { entry } = await readEntry(full);
      if (entry && (entry.failures ?? 0) > 0) {
        problems.push({
          file: full,
          why: `recording failed: ${entry.lastError ?? 'unknown error'}`,
        });
      }
    }
  }
  return problems;
}

/** Every journal entry still open (pending or being flushed), for reports. */
export async function openEntries(
  gitDir: string,
): Promise<{ file: string; entry: JournalEntry | null; error?: string }[]> {
  const out: { file: string; entry: JournalEntry | null; error?: string }[] = [];
  for (const which of ['pending', 'processing', 'bad'] as const) {
    const dir = journalDir(gitDir, which);
    let files: string[];
    try {
      files = (await fs.readdir(dir)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    for (const f of files)
      out.push({ file: path.join(dir, f), ...(await readEntry(path.join(dir, f))) });
  }
  return out;
}
