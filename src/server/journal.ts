import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { UpdateKind } from '../engine/update.ts';
import { BreakglassError } from '../errors.ts';
import type { Action } from '../ticket/payload.ts';
import { TICKET_ID } from '../ticket/payload.ts';
import { SWEEP_WINDOW_MS, ticketIdTime } from './ticket-time.ts';

/**
 * The server's own state under `$GIT_DIR/breakglass/` (pre-receive can't write refs, it runs in
 * git's quarantine, so it writes files):
 *
 *   reservations/<ticket id>/<n>   one file per use slot n < maxUses, created with O_EXCL: the
 *                                  push that creates it owns that use. Kept as the permanent
 *                                  marker once the use is recorded; removed only when the push
 *                                  did not land. Never delete this directory by hand.
 *   journal/pending/<name>.json    events accepted by pre-receive, not yet recorded
 *   journal/processing/<name>~<k>.json  claimed by one flusher (a crash leaves it; reclaimed)
 *   journal/done/<name>.json       resolved entries (recorded or dropped), kept as a trail
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
  /** Commits new to the repository that this update brought in. */
  readonly commits: string[];
  readonly pusher: string;
  readonly requester: { principal: string; keyid: string };
  readonly approvers: { principal: string; keyid: string }[];
  readonly reason: string;
  readonly incident?: string;
  readonly window: { notBefore: string; expiresAt: string };
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
  /** Tickets whose one use for this push is already recorded (by an earlier partial flush). */
  readonly usesRecorded?: string[];
  /** Set when resolved (in done/). */
  readonly resolution?: { recorded: string[]; dropped: string[]; at: string };
}

export function stateDir(gitDir: string): string {
  return path.join(gitDir, STATE_DIR);
}

function journalDir(gitDir: string, which: 'pending' | 'processing' | 'done' | 'tmp' | 'bad') {
  return path.join(stateDir(gitDir), 'journal', which);
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
  await fs.mkdir(dir, { recursive: true });
  await fs.mkdir(tmpDir, { recursive: true });
  const tmp = path.join(tmpDir, `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await fs.open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, path.join(dir, file));
  await fsyncDir(dir);
}

/** Number of use slots taken (pending or recorded) for a ticket. */
export async function countReservations(gitDir: string, ticket: string): Promise<number> {
  try {
    const names = await fs.readdir(reservationDir(gitDir, ticket));
    return names.filter((n) => /^\d{1,4}$/.test(n)).length;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    // Unknown use count: fail closed (S7), the push can't be ticketed.
    throw new BreakglassError(
      'JOURNAL_UNAVAILABLE',
      `cannot read the use reservations of ticket ${ticket} under ${stateDir(gitDir)}: ${(e as Error).message}`,
      { hint: 'the server admin must make $GIT_DIR/breakglass readable and writable' },
    );
  }
}

// TM7, TM14: the use is taken before pre-receive says yes, so concurrent pushes race on O_EXCL.
/**
 * Takes one free use slot of a ticket with an exclusive create (O_EXCL): of any number of
 * concurrent pushes, only maxUses get a slot. Slots are tried from 0 up, so a slot released by a
 * push that did not land is reused. Returns the slot, or null when every slot is taken.
 */
export async function reserveUse(
  gitDir: string,
  ticket: string,
  maxUses: number,
  entryName: string,
  now: number,
): Promise<number | null> {
  const dir = reservationDir(gitDir, ticket);
  await fs.mkdir(dir, { recursive: true });
  for (let slot = 0; slot < maxUses; slot++) {
    let fh;
    try {
      fh = await fs.open(path.join(dir, String(slot)), 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
    try {
      await fh.writeFile(JSON.stringify({ entry: entryName, at: now }) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncDir(dir);
    return slot;
  }
  return null;
}

/** Gives a use slot back (the push it was taken for did not land). */
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
      !Array.isArray(json.reservations)
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

/**
 * Claims every pending entry (and processing entries older than `staleMs`, left by a crashed
 * flusher) by renaming it into processing/ under a fresh name; a rename only one process can win.
 */
export async function claimEntries(
  gitDir: string,
  now: number,
  staleMs: number,
): Promise<Claimed[]> {
  const pendingDir = journalDir(gitDir, 'pending');
  const procDir = journalDir(gitDir, 'processing');
  const list = async (dir: string) => {
    try {
      return (await fs.readdir(dir)).filter((f) => f.endsWith('.json')).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  };
  const sources: string[] = (await list(pendingDir)).map((f) => path.join(pendingDir, f));
  for (const f of await list(procDir)) {
    const full = path.join(procDir, f);
    try {
      if (claimOwnerDead(f) || now - (await fs.stat(full)).mtimeMs > staleMs) sources.push(full);
    } catch {
      /* claimed and finished by someone else meanwhile */
    }
  }
  if (sources.length === 0) return [];
  await fs.mkdir(procDir, { recursive: true });
  const claimed: Claimed[] = [];
  for (const src of sources) {
    const base = path.basename(src, '.json').replace(CLAIM_SUFFIX, '');
    const dest = path.join(procDir, `${base}~${claimTag()}.json`);
    try {
      await fs.rename(src, dest);
      const t = new Date(now);
      await fs.utimes(dest, t, t);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // someone else won
      throw e;
    }
    claimed.push({ file: dest, ...(await readEntry(dest)) });
  }
  return claimed;
}

/** Puts a claimed entry (possibly with fewer events) back into pending/ for a later flush. */
export async function unclaim(gitDir: string, c: Claimed, entry: JournalEntry): Promise<void> {
  await writePending(gitDir, entry);
  await fs.rm(c.file, { force: true });
}

/** Files a resolved entry under done/. */
export async function finish(gitDir: string, c: Claimed, entry: JournalEntry): Promise<void> {
  await writeDurably(
    journalDir(gitDir, 'done'),
    `${entry.name}.json`,
    JSON.stringify(entry) + '\n',
    journalDir(gitDir, 'tmp'),
  );
  await fs.rm(c.file, { force: true });
}

/** Moves an unreadable journal file aside (bad/) so it stops blocking, keeping it for a human. */
export async function quarantineBad(gitDir: string, c: Claimed): Promise<void> {
  const dir = journalDir(gitDir, 'bad');
  await fs.mkdir(dir, { recursive: true });
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

// Policies cap maxTtl at 7 days: a ticket id older than that has no live use to protect.

/**
 * Releases reservations whose journal entry never got written (pre-receive killed between the
 * two steps) once they are older than `graceMs`. Only recent ticket ids are looked at.
 */
export async function sweepOrphanReservations(
  gitDir: string,
  now: number,
  graceMs: number,
): Promise<Reservation[]> {
  const root = path.join(stateDir(gitDir), 'reservations');
  let ids: string[];
  try {
    ids = (await fs.readdir(root)).filter(
      (id) => TICKET_ID.test(id) && now - ticketIdTime(id) < SWEEP_WINDOW_MS,
    );
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  if (ids.length === 0) return [];
  let known: Set<string> | undefined;
  const released: Reservation[] = [];
  for (const id of ids) {
    const dir = path.join(root, id);
    for (const f of await fs.readdir(dir).catch(() => [] as string[])) {
      if (!/^\d{1,4}$/.test(f)) continue;
      const full = path.join(dir, f);
      let owner: string | undefined;
      try {
        const st = await fs.stat(full);
        if (now - st.mtimeMs < graceMs) continue;
        owner = (JSON.parse(await fs.readFile(full, 'utf8')) as { entry?: string }).entry;
      } catch {
        continue; // unreadable: keep it (a kept slot fails closed)
      }
      known ??= await knownEntries(gitDir);
      if (owner && !known.has(owner)) {
        await fs.rm(full, { force: true });
        released.push({ ticket: id, slot: Number(f) });
      }
    }
  }
  return released;
}
