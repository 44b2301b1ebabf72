import { spawn } from 'node:child_process';
import { parseUseRecord, type UseRecord } from '../audit/consumed.ts';
import { NoteCache, parseNote, parseNoteFast, type AuditEvent } from '../audit/note.ts';
import type { ApprovalStep, ReviewStep, TimelineInput } from '../audit/timeline.ts';
import {
  rowId,
  type AuditData,
  type AuditProblem,
  type NotedEvent,
  type ReviewFacts,
  type RevocationFacts,
  type TicketFacts,
} from '../audit/report.ts';
import { verifyReview } from '../audit/review.ts';
import { BreakglassError } from '../errors.ts';
import type { Policy } from '../policy/policy.ts';
import { parseEnvelope, type Envelope } from '../ticket/dsse.ts';
import { parsePayload, TICKET_PAYLOAD_TYPE, type TicketPayload } from '../ticket/payload.ts';
import { verifyRevocation } from '../ticket/revocation.ts';
import {
  payloadDigest,
  verifySignatures,
  verifyTicketEnvelope,
  type VerifiedTicket,
} from '../ticket/verify.ts';
import { CatFileBatch, runGit, type GitContext } from './git.ts';
import { ENVELOPE_FILE, REFS, type Namespace } from './store.ts';

/**
 * Reads everything `bg-sign audit` joins, with a fixed number of git processes however many
 * events there are (DESIGN §9: 100,000 events in < 3 s, < 200 MiB):
 * 1. `git for-each-ref refs/breakglass/ refs/notes/breakglass` (all evidence refs),
 * 2. `git ls-tree -r refs/notes/breakglass` (commit -> note blob),
 * 3. one `git cat-file --batch --buffer` for every distinct note blob (an event that annotated
 *    many commits has one blob text, parsed once), then ticket, revocation and review envelopes,
 * 4. one `git log -z` over all consumed/ refs (the use records).
 */

const MAX_NOTE_BYTES = 256 * 1024;
const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** Progress callback: phase name, items done, items in total (total 0 = unknown). */
export type Progress = (phase: string, done: number, total: number) => void;

export interface AuditSourceOptions {
  /**
   * Verifies reviews and revocations (and ticket approvers); null = nothing verified. May be a
   * promise: it is only needed after the notes and use records are read.
   */
  readonly policy: Policy | null | PromiseLike<Policy | null>;
  readonly notesRef?: string;
  readonly progress?: Progress | undefined;
}

interface BatchItem {
  readonly spec: string;
  readonly type: string | null;
  readonly data: Buffer | null;
}

/**
 * One `git cat-file --batch --buffer` for a known list of object specs: all requests are written
 * at once and answers parsed as they stream in; `onObject` gets each (null data when missing).
 */
export function catFileStream(
  ctx: GitContext,
  specs: readonly string[],
  onObject: (item: BatchItem, index: number) => void,
): Promise<void> {
  if (specs.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const child = spawn(
      'git',
      [...(ctx.gitDir ? ['--git-dir', ctx.gitDir] : []), 'cat-file', '--batch', '--buffer'],
      { cwd: ctx.cwd, env: ctx.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let buf: Buffer = Buffer.alloc(0);
    let index = 0;
    let failed = false;
    let stderr = '';
    const fail = (e: Error) => {
      if (failed) return;
      failed = true;
      child.kill();
      reject(e);
    };
    child.stdout.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      // Objects are read at an offset; the rest is kept once per chunk, not once per object.
      let off = 0;
      try {
        for (;;) {
          const nl = buf.indexOf(10, off);
          if (nl < 0) break;
          const header = slicer(buf).latin1Slice(off, nl);
          if (header.endsWith(' missing') || header.endsWith(' ambiguous')) {
            off = nl + 1;
            onObject({ spec: specs[index]!, type: null, data: null }, index);
            index++;
            continue;
          }
          // `<oid> SP <type> SP <size>`
          const sp1 = header.indexOf(' ');
          const sp2 = sp1 < 0 ? -1 : header.indexOf(' ', sp1 + 1);
          const size = sp2 < 0 ? NaN : Number(header.slice(sp2 + 1));
          if (sp2 < 0 || header.indexOf(' ', sp2 + 1) >= 0 || !Number.isSafeInteger(size)) {
            throw new BreakglassError(
              'GIT_FAILED',
              `git cat-file: unexpected output "${header.slice(0, 80)}"`,
            );
          }
          if (buf.length < nl + 1 + size + 1) break;
          const data = buf.subarray(nl + 1, nl + 1 + size);
          off = nl + 2 + size;
          onObject({ spec: specs[index]!, type: header.slice(sp1 + 1, sp2), data }, index);
          index++;
        }
      } catch (e) {
        fail(e as Error);
      }
      if (off > 0) buf = buf.subarray(off);
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString('utf8');
    });
    child.on('error', (e) => fail(new BreakglassError('GIT_FAILED', `git cat-file: ${e.message}`)));
    child.on('close', (code) => {
      if (failed) return;
      if (code !== 0 || index !== specs.length) {
        fail(
          new BreakglassError(
            'GIT_FAILED',
            `git cat-file ended after ${index} of ${specs.length} objects: ${stderr.trim() || `exit ${code}`}`,
          ),
        );
      } else resolve();
    });
    child.stdin.on('error', () => {});
    // A spec with a newline would desynchronise the answers; callers only pass ids and
    // `<id>:<file>`, but refuse anyway.
    const text = specs.map((s) => (/[\n\r]/.test(s) ? 'invalid-spec' : s)).join('\n') + '\n';
    child.stdin.end(text);
  });
}

/**
 * Runs git and hands each output line to `onLine` as it arrives (bytes [start, end) of `buf`,
 * without the newline), instead of collecting the whole output first: for-each-ref and ls-tree
 * print 10-20 MB for 100,000 events, and holding that twice (chunks, then one copy) showed up in
 * the audit's peak memory. Returns git's exit code; a failure throws unless `allowFail`.
 */
function gitLines(
  ctx: GitContext,
  args: readonly string[],
  onLine: (buf: Buffer, start: number, end: number) => void,
  opts: { allowFail?: boolean | undefined } = {},
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', [...(ctx.gitDir ? ['--git-dir', ctx.gitDir] : []), ...args], {
      cwd: ctx.cwd,
      env: ctx.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let carry: Buffer | null = null;
    let failed: Error | null = null;
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      if (failed) return;
      const buf = carry ? Buffer.concat([carry, d]) : d;
      let start = 0;
      try {
        for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10, start)) {
          onLine(buf, start, nl);
          start = nl + 1;
        }
      } catch (e) {
        failed = e as Error;
        child.kill();
      }
      // The unfinished line is copied: a view would keep the whole chunk alive.
      carry = start < buf.length ? Buffer.from(buf.subarray(start)) : null;
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString('utf8');
    });
    child.on('error', (e) =>
      reject(new BreakglassError('GIT_FAILED', `could not run git: ${e.message}`, { cause: e })),
    );
    child.on('close', (code, signal) => {
      if (failed) return reject(failed);
      const rc = code ?? (signal ? 128 : 1);
      if (rc === 0 && carry) onLine(carry, 0, carry.length);
      if (rc !== 0 && !opts.allowFail) {
        reject(
          new BreakglassError(
            'GIT_FAILED',
            `git ${args.slice(0, 3).join(' ')} failed${signal ? ` (${signal})` : ''}: ${stderr.trim().split('\n').slice(-3).join(' / ') || `exit ${rc}`}`,
          ),
        );
      } else resolve(rc);
    });
  });
}

/** Every evidence ref: namespace -> id -> tip, plus the notes tip. */
export interface EvidenceRefs {
  readonly notes: string | null;
  readonly byNs: ReadonlyMap<Namespace, ReadonlyMap<string, string>>;
  /** With `consumedTips`: the consumed/ tips, listed here instead of in byNs. */
  readonly consumedTips?: string[];
}

// Buffer's own decoders: toString(encoding, start, end) spends more time choosing the decoder
// than decoding a 40-byte id, and this runs a million times for 100,000 events. Each call makes
// a flat copy, so nothing cut from git's output keeps the whole output alive.
interface Slicer {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}
const slicer = (b: Buffer) => b as unknown as Slicer;

const BREAKGLASS_PREFIX = 'refs/breakglass/';
const NAMESPACES: ReadonlySet<string> = new Set<Namespace>([
  'tickets',
  'revoked',
  'reviews',
  'consumed',
]);

/**
 * Lists `refs/breakglass/*` and the notes ref with one for-each-ref. `consumedTips`: the audit
 * only needs consumed/ tips, not their ids (100,000 fewer strings and map entries).
 */
export async function listEvidenceRefs(
  ctx: GitContext,
  notesRef: string = REFS.notes,
  opts: { consumedTips?: boolean } = {},
): Promise<EvidenceRefs> {
  let notes: string | null = null;
  const byNs = new Map<Namespace, Map<string, string>>();
  const consumedTips: string[] | undefined = opts.consumedTips ? [] : undefined;
  const onLine = (out: Buffer, line: number, nl: number) => {
    const cut = slicer(out);
    const sp = out.indexOf(32, line);
    if (sp < 0 || sp > nl) return;
    const ref = cut.utf8Slice(sp + 1, nl);
    if (ref === notesRef) {
      notes = cut.latin1Slice(line, sp);
      return;
    }
    // parseBreakglassRef, without a regex match per ref.
    if (!ref.startsWith(BREAKGLASS_PREFIX)) return;
    const slash = ref.indexOf('/', BREAKGLASS_PREFIX.length);
    if (slash < 0 || slash === ref.length - 1 || ref.indexOf('/', slash + 1) >= 0) return;
    const nsName = ref.slice(BREAKGLASS_PREFIX.length, slash);
    if (!NAMESPACES.has(nsName)) return;
    const nsKey = nsName as Namespace;
    const sha = cut.latin1Slice(line, sp);
    if (consumedTips && nsKey === 'consumed') {
      consumedTips.push(sha);
      return;
    }
    let ns = byNs.get(nsKey);
    if (!ns) byNs.set(nsKey, (ns = new Map()));
    // An ASCII name (the byte count is the character count) is cut as a copy from the bytes.
    const id =
      ref.length === nl - sp - 1 ? cut.utf8Slice(sp + 2 + slash, nl) : flat(ref.slice(slash + 1));
    ns.set(id, sha);
  };
  await gitLines(
    ctx,
    ['for-each-ref', '--format=%(objectname) %(refname)', 'refs/breakglass/', notesRef],
    onLine,
  );
  return consumedTips ? { notes, byNs, consumedTips } : { notes, byNs };
}

/** Commit -> note blob for every note under the notes commit (one `git ls-tree -r`). */
export async function listNotes(
  ctx: GitContext,
  notesCommit: string,
  opts: { allowMissing?: boolean } = {},
): Promise<{ commit: string; blob: string }[]> {
  const list: { commit: string; blob: string }[] = [];
  const onLine = (out: Buffer, start: number, end: number) => {
    const cut = slicer(out);
    // `<mode> SP <type> SP <oid> TAB <path>`; the path is the commit id split by fanout.
    const tab = out.indexOf(9, start);
    if (tab <= start || tab >= end) return;
    const head = cut.latin1Slice(start, tab);
    const rawPath = cut.latin1Slice(tab + 1, end);
    const path = rawPath.includes('/') ? flat(rawPath.replace(/\//g, '')) : rawPath;
    const blob = cut.latin1Slice(start + head.lastIndexOf(' ') + 1, tab);
    if (head.includes(' blob ') && OID.test(path) && OID.test(blob)) {
      list.push({ commit: path, blob });
    }
  };
  const code = await gitLines(ctx, ['ls-tree', '-r', '--full-tree', notesCommit], onLine, {
    allowFail: opts.allowMissing,
  });
  if (code !== 0) return [];
  return list;
}

// Memory for 100,000 events (DESIGN §9: < 200 MiB). Substrings cut from a note keep the whole
// note text alive (V8 sliced strings), and names repeat across events: unique values are copied
// flat, repeating ones interned, so an event costs its own bytes and not its note's.
const interned = new Map<string, unknown>();
function intern<T>(key: string, make: () => T): T {
  let v = interned.get(key) as T | undefined;
  if (v === undefined) {
    if (interned.size > 50_000) interned.clear();
    v = make();
    interned.set(key, v);
  }
  return v;
}
function flat(s: string): string;
function flat(s: string | undefined): string | undefined;
function flat(s: string | undefined): string | undefined {
  // Concatenation then slicing makes V8 copy the characters into a new flat string.
  return s === undefined || s.length < 13 ? s : (s + ' ').slice(0, -1);
}
function name(s: string): string {
  return intern(`s\0${s}`, () => flat(s));
}
function principalOf(p: { principal: string; keyid: string }) {
  return intern(`p\0${p.principal}\0${p.keyid}`, () => ({
    principal: flat(p.principal),
    keyid: flat(p.keyid),
  }));
}

/** A copy of a parsed event that holds no reference to its note's text. */
function compact(e: AuditEvent): AuditEvent {
  const out: AuditEvent = {
    kind: e.kind,
    actions: intern(`a\0${e.actions.join(',')}`, () => e.actions.map((a) => flat(a))),
    ref: name(e.ref),
    oldSha: flat(e.oldSha),
    newSha: flat(e.newSha),
    pusher: name(e.pusher),
    approvers: intern(`v\0${e.approvers.map((a) => `${a.principal} ${a.keyid}`).join(',')}`, () =>
      e.approvers.map(principalOf),
    ),
    recordedAt: flat(e.recordedAt),
    recordedBy: name(e.recordedBy),
  };
  if (e.ticketId !== undefined) out.ticketId = flat(e.ticketId);
  if (e.requester) out.requester = principalOf(e.requester);
  if (e.reason !== undefined) out.reason = flat(e.reason);
  if (e.incident !== undefined) out.incident = name(e.incident);
  if (e.window)
    out.window = { notBefore: flat(e.window.notBefore), expiresAt: flat(e.window.expiresAt) };
  if (e.replacedTip !== undefined) out.replacedTip = flat(e.replacedTip);
  if (e.dropped !== undefined) out.dropped = e.dropped.map((d) => flat(d));
  if (e.droppedCount !== undefined) out.droppedCount = e.droppedCount;
  if (e.violation !== undefined) out.violation = flat(e.violation);
  return out;
}

// Memory again: an event held as ~20 small objects and strings costs ~950 bytes in V8 and keeps
// the collector busy (100,000 events: ~95 MB, DESIGN §9). Packed, an event is one flat string
// (its own values, separated) plus one small object; shared values (ref, names, actions,
// approvers...) are indices into a table of the read. Unpacked on each access: the report reads
// an event a few times, each unpacked event is short-lived young-generation garbage.
const SEP = '\n';
const ABSENT = '\u0002';
const MAX_SHARED = 50_000;

/** Shared values of one read (by identity: the note cache shares repeated values already). */
class SharedValues {
  readonly values: unknown[] = [];
  private readonly index = new Map<unknown, number>();
  /** The value's index, or -1 when the table is full (the event is then kept unpacked). */
  add(v: unknown): number {
    let i = this.index.get(v);
    if (i === undefined) {
      if (this.values.length >= MAX_SHARED) return -1;
      i = this.values.length;
      this.values.push(v);
      this.index.set(v, i);
    }
    return i;
  }
}

/** A NotedEvent stored as one string (see SEP above); `event` and `commits` unpack it. */
class PackedEvent implements NotedEvent {
  useRecord?: boolean;
  constructor(
    private packed: string,
    private readonly shared: SharedValues,
  ) {}

  /** Packs a parsed event, or returns null when a value holds a separator (kept unpacked). */
  static pack(
    e: AuditEvent,
    commits: readonly string[],
    id: string | undefined,
    shared: SharedValues,
  ): PackedEvent | null {
    const idx = (v: unknown) => String(shared.add(v));
    const opt = (v: string | undefined) => (v === undefined ? ABSENT : v);
    const fields = [
      e.kind === 'breakglass' ? 'b' : 'v',
      opt(e.ticketId),
      idx(e.actions),
      idx(e.ref),
      e.oldSha,
      e.newSha,
      idx(e.pusher),
      e.requester ? idx(e.requester) : ABSENT,
      idx(e.approvers),
      opt(e.reason),
      e.incident === undefined ? ABSENT : idx(e.incident),
      e.window ? e.window.notBefore : ABSENT,
      e.window ? e.window.expiresAt : ABSENT,
      e.recordedAt,
      idx(e.recordedBy),
      opt(e.replacedTip),
      e.dropped ? e.dropped.join(' ') : ABSENT,
      e.droppedCount === undefined ? ABSENT : String(e.droppedCount),
      opt(e.violation),
      opt(id),
      commits.join(' '),
    ];
    for (const f of fields) {
      if (f === '-1' || f.includes(SEP) || (f !== ABSENT && f.includes(ABSENT))) return null;
    }
    for (const d of e.dropped ?? []) if (d === '' || d.includes(' ')) return null;
    for (const c of commits) if (c === '' || c.includes(' ')) return null;
    // Joining makes one new flat string: it holds nothing of the note or the parsed event.
    return new PackedEvent(fields.join(SEP), shared);
  }

  private fields(): string[] {
    return this.packed.split(SEP);
  }

  /** The fields a use record is matched on, without unpacking the rest. */
  head(): Pick<AuditEvent, 'kind' | 'ticketId' | 'ref' | 'oldSha'> {
    const f = this.packed.split(SEP, 5);
    return {
      kind: f[0] === 'b' ? 'breakglass' : 'violation',
      ...(f[1] === ABSENT ? {} : { ticketId: f[1]! }),
      ref: this.shared.values[Number(f[3])] as string,
      oldSha: f[4]!,
    };
  }

  get event(): AuditEvent {
    const f = this.fields();
    const v = this.shared.values;
    const e: AuditEvent = {
      kind: f[0] === 'b' ? 'breakglass' : 'violation',
      actions: v[Number(f[2])] as string[],
      ref: v[Number(f[3])] as string,
      oldSha: f[4]!,
      newSha: f[5]!,
      pusher: v[Number(f[6])] as string,
      approvers: v[Number(f[8])] as AuditEvent['approvers'],
      recordedAt: f[13]!,
      recordedBy: v[Number(f[14])] as string,
    };
    if (f[1] !== ABSENT) e.ticketId = f[1]!;
    if (f[7] !== ABSENT) e.requester = v[Number(f[7])] as AuditEvent['requester'];
    if (f[9] !== ABSENT) e.reason = f[9]!;
    if (f[10] !== ABSENT) e.incident = v[Number(f[10])] as string;
    if (f[11] !== ABSENT) e.window = { notBefore: f[11]!, expiresAt: f[12]! };
    if (f[15] !== ABSENT) e.replacedTip = f[15]!;
    if (f[16] !== ABSENT) e.dropped = f[16] === '' ? [] : f[16]!.split(' ');
    if (f[17] !== ABSENT) e.droppedCount = Number(f[17]);
    if (f[18] !== ABSENT) e.violation = f[18]!;
    return e;
  }

  get commits(): readonly string[] {
    const c = this.packed.slice(this.packed.lastIndexOf(SEP) + 1);
    return c === '' ? [] : c.split(' ');
  }

  get id(): string | undefined {
    // The id is the field before the commits (the last one).
    const last = this.packed.lastIndexOf(SEP);
    const f = this.packed.slice(this.packed.lastIndexOf(SEP, last - 1) + 1, last);
    return f === ABSENT ? undefined : f;
  }

  /** Adds commits (another blob held the same event); false if one cannot be packed. */
  addCommits(more: readonly string[]): boolean {
    for (const c of more) if (c === '' || c.includes(' ') || c.includes(SEP)) return false;
    const cut = this.packed.lastIndexOf(SEP) + 1;
    const have = this.packed.slice(cut);
    this.packed = this.packed.slice(0, cut) + [...(have ? [have] : []), ...more].join(' ');
    return true;
  }
}

/**
 * Reads and parses every note, de-duplicating events across commits (one event annotates every
 * commit its push brought in). Malformed notes become problems, never a crash.
 */
export async function readNotedEvents(
  ctx: GitContext,
  notesCommit: string | null,
  problems: AuditProblem[],
  progress?: Progress,
): Promise<NotedEvent[]> {
  if (!notesCommit) return [];
  return parseNotes(ctx, await listNotes(ctx, notesCommit), problems, progress);
}

/** Reads the listed note blobs with one cat-file and parses them (see readNotedEvents). */
async function parseNotes(
  ctx: GitContext,
  notes: readonly { commit: string; blob: string }[],
  problems: AuditProblem[],
  progress?: Progress,
  byNew: Map<string, NotedEvent | NotedEvent[]> = new Map(),
  withIds = false,
): Promise<NotedEvent[]> {
  const commitsByBlob = new Map<string, string[]>();
  for (const n of notes) {
    const list = commitsByBlob.get(n.blob);
    if (list) list.push(n.commit);
    else commitsByBlob.set(n.blob, [n.commit]);
  }
  const blobs = [...commitsByBlob.keys()];
  // Events by new tip (`byNew`: a flat string that hashes once), then compared field by field:
  // cheaper than building and hashing a long key string per event.
  const found: NotedEvent[] = [];
  const shared = new SharedValues();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const cache = new NoteCache();
  let done = 0;
  await catFileStream(ctx, blobs, ({ spec, data, type }) => {
    const commits = commitsByBlob.get(spec)!;
    if (++done % 5000 === 0) progress?.('notes', done, blobs.length);
    if (!data || type !== 'blob') {
      problems.push({ kind: 'note', where: commits[0]!, message: 'note object is missing' });
      return;
    }
    if (data.length > MAX_NOTE_BYTES) {
      problems.push({
        kind: 'note',
        where: commits[0]!,
        message: `note is ${data.length} bytes; skipped`,
      });
      return;
    }
    // Notes as the recorder writes them take the fast path: values are cut straight from the
    // blob's bytes (flat strings, nothing keeps the note alive) and repeated ones are shared.
    const cut = slicer(data);
    const fast = parseNoteFast(cut.latin1Slice(0, data.length), cut.latin1Slice.bind(data), cache);
    let parsed: { events: AuditEvent[]; errors: string[] };
    if (fast) parsed = fast;
    else {
      let text: string;
      try {
        text = decoder.decode(data);
      } catch {
        problems.push({ kind: 'note', where: commits[0]!, message: 'note is not UTF-8' });
        return;
      }
      if (!text.includes('Break-glass-')) return;
      const slow = parseNote(text);
      parsed = { events: slow.events.map(compact), errors: slow.errors };
    }
    for (const err of parsed.errors) {
      problems.push({ kind: 'note', where: commits.join(' ').slice(0, 200), message: err });
    }
    for (const event of parsed.events) {
      const have = byNew.get(event.newSha);
      const same = ({ event: e }: NotedEvent) =>
        e.oldSha === event.oldSha &&
        e.ref === event.ref &&
        e.kind === event.kind &&
        (e.ticketId ?? '-') === (event.ticketId ?? '-');
      const seen =
        have === undefined
          ? undefined
          : Array.isArray(have)
            ? have.find(same)
            : same(have)
              ? have
              : undefined;
      if (seen) {
        if (!(seen instanceof PackedEvent)) {
          for (const c of commits) (seen.commits as string[]).push(c);
        } else if (!seen.addCommits(commits)) {
          // Not packable after all: the unpacked event takes its place in both lists.
          const plain: NotedEvent = {
            event: seen.event,
            commits: [...seen.commits, ...commits],
            ...(seen.id === undefined ? {} : { id: seen.id }),
            ...(seen.useRecord ? { useRecord: true } : {}),
          };
          found[found.indexOf(seen)] = plain;
          if (Array.isArray(have)) have[have.indexOf(seen)] = plain;
          else byNew.set(event.newSha, plain);
        }
        continue;
      }
      // For the report, the row id is hashed here, while git is still producing notes.
      const id = withIds ? rowId(event) : undefined;
      // One event per blob (the usual case) owns the blob's commit list; more share copies.
      const noted: NotedEvent =
        (withIds ? PackedEvent.pack(event, commits, id, shared) : null) ??
        (id === undefined
          ? { event, commits: parsed.events.length === 1 ? commits : [...commits] }
          : { event, commits: parsed.events.length === 1 ? commits : [...commits], id });
      found.push(noted);
      if (have === undefined) byNew.set(event.newSha, noted);
      else if (Array.isArray(have)) have.push(noted);
      else byNew.set(event.newSha, [have, noted]);
    }
  });
  progress?.('notes', blobs.length, blobs.length);
  // A commit can only be listed twice for one event if two blobs held it: not possible in one
  // notes tree, so the lists are already unique.
  return found;
}

// Use-record chains are walked level by level (one cat-file per level); a ticket used more
// often than this is finished with one `git log` over what is left.
const MAX_LEVELS = 8;

function parseUseCommit(
  sha: string,
  data: Buffer,
  problems: AuditProblem[],
): { use: UseRecord | null; parents: string[] } {
  const split = data.indexOf('\n\n');
  const header = data.toString('latin1', 0, split < 0 ? data.length : split);
  const parents = [...header.matchAll(/^parent ([0-9a-f]{40,64})$/gm)].map((m) => m[1]!);
  try {
    if (split < 0) throw new Error('commit has no message');
    return { use: parseUseRecord(data.toString('utf8', split + 2)), parents };
  } catch (e) {
    problems.push({ kind: 'use', where: sha, message: (e as Error).message });
    return { use: null, parents };
  }
}

/** The identity of a use record: which event of which ticket it records. */
interface UseIdentity {
  readonly ticket: string;
  readonly ref: string;
  readonly oldSha: string;
  readonly newSha: string;
  readonly commit: string;
}

function quickUseKey(sha: string, data: Buffer, problems: AuditProblem[]): UseIdentity | null {
  // Fast path for the join: the JSON line's identity fields. Anything odd goes through the
  // strict parser, which names the problem.
  const split = data.indexOf('\n\n');
  const brace = split < 0 ? -1 : data.indexOf('\n{', split);
  if (brace >= 0) {
    try {
      const o = JSON.parse(slicer(data).utf8Slice(brace + 1, data.length)) as Record<
        string,
        unknown
      >;
      if (
        typeof o.ticket === 'string' &&
        typeof o.ref === 'string' &&
        typeof o.oldSha === 'string' &&
        typeof o.newSha === 'string'
      ) {
        return { ticket: o.ticket, ref: o.ref, oldSha: o.oldSha, newSha: o.newSha, commit: sha };
      }
    } catch {
      // fall through to the strict parser for the message
    }
  }
  parseUseCommit(sha, data, problems);
  return null;
}

/**
 * The identity (ticket, ref, old..new) of every use record on the consumed/ chains from `tips`,
 * mapped to its commit; one cat-file per chain depth. Only the records no note covers need the
 * strict parse afterwards (readUseCommits).
 */
export async function scanUseKeys(
  ctx: GitContext,
  tips: readonly string[],
  problems: AuditProblem[],
  onKey?: (key: UseIdentity) => void,
): Promise<UseIdentity[]> {
  const keys: UseIdentity[] = [];
  // With onKey, identities are handed over as they are read instead of collected.
  const take = onKey ?? ((key: UseIdentity) => keys.push(key));
  const seen = new Set<string>();
  let level = [...new Set(tips)];
  for (let depth = 0; level.length > 0; depth++) {
    for (const sha of level) seen.add(sha);
    if (depth >= MAX_LEVELS) {
      // Long chains (a ticket used many times): list the rest once, then read them.
      const r = await runGit(ctx, ['rev-list', ...level, '--']);
      const rest = r.stdout
        .toString('latin1')
        .split('\n')
        .filter((x) => x && (!seen.has(x) || level.includes(x)));
      await catFileStream(ctx, rest, ({ spec, type, data }) => {
        if (!data || type !== 'commit') return;
        const key = quickUseKey(spec, data, problems);
        if (key) take(key);
      });
      break;
    }
    const next: string[] = [];
    await catFileStream(ctx, level, ({ spec, type, data }) => {
      if (!data || type !== 'commit') {
        problems.push({ kind: 'use', where: spec, message: 'use record commit is missing' });
        return;
      }
      const key = quickUseKey(spec, data, problems);
      if (key) take(key);
      const end = data.indexOf('\n\n');
      // Most use records have no parent (a single-use ticket): skip the header scan then.
      const firstParent = data.indexOf('\nparent ');
      const noParent = firstParent < 0 || (end >= 0 && firstParent > end);
      if (noParent && data.indexOf('parent ') !== 0) return;
      const header = data.toString('latin1', 0, end < 0 ? data.length : end);
      for (const m of header.matchAll(/^parent ([0-9a-f]{40,64})$/gm)) {
        if (!seen.has(m[1]!)) next.push(m[1]!);
      }
    });
    level = [...new Set(next)];
  }
  return keys;
}

/** Strictly parses the use-record commits given (one cat-file). */
export async function readUseCommits(
  ctx: GitContext,
  shas: readonly string[],
  problems: AuditProblem[],
): Promise<UseRecord[]> {
  const uses: UseRecord[] = [];
  await catFileStream(ctx, shas, ({ spec, type, data }) => {
    if (!data || type !== 'commit') return;
    const { use } = parseUseCommit(spec, data, problems);
    if (use) uses.push(use);
  });
  return uses;
}

/**
 * Every use record on the consumed/ chains starting at `tips`: one commit per use, read with one
 * `cat-file --batch` per chain depth (single-use tickets: one process for all). `onUse` sees each
 * record; only those it returns true for are kept (the audit keeps just the ones no note covers).
 */
export async function readUseRecords(
  ctx: GitContext,
  tips: readonly string[],
  problems: AuditProblem[],
  onUse: (u: UseRecord) => boolean = () => true,
): Promise<UseRecord[]> {
  const uses: UseRecord[] = [];
  const seen = new Set<string>();
  let level = [...new Set(tips)];
  for (let depth = 0; level.length > 0; depth++) {
    for (const sha of level) seen.add(sha);
    if (depth >= MAX_LEVELS) {
      const r = await runGit(ctx, ['log', '-z', '--format=%H%n%B', ...level, '--']);
      for (const entry of r.stdout.toString('utf8').split('\0')) {
        if (!entry) continue;
        const nl = entry.indexOf('\n');
        const sha = entry.slice(0, nl);
        if (seen.has(sha) && !level.includes(sha)) continue;
        try {
          // git log adds a newline after %B; the record's own newline stays.
          const u = parseUseRecord(entry.slice(nl + 1).replace(/\n$/, ''));
          if (onUse(u)) uses.push(u);
        } catch (e) {
          problems.push({ kind: 'use', where: sha, message: (e as Error).message });
        }
      }
      break;
    }
    const next: string[] = [];
    await catFileStream(ctx, level, ({ spec, type, data }) => {
      if (!data || type !== 'commit') {
        problems.push({ kind: 'use', where: spec, message: 'use record commit is missing' });
        return;
      }
      const { use, parents } = parseUseCommit(spec, data, problems);
      if (use && onUse(use)) uses.push(use);
      for (const p of parents) if (!seen.has(p)) next.push(p);
    });
    level = [...new Set(next)];
  }
  return uses;
}

function envelopeOf(data: Buffer | null, what: string): Envelope {
  if (!data)
    throw new BreakglassError('TICKET_REF_INVALID', `${what}: no envelope file in its tree`);
  return parseEnvelope(data);
}

/** A ticket read for the report: verified when a policy is given, else only parsed. */
interface TicketRead {
  readonly payload: TicketPayload;
  /**
   * The ticket bound to its payload digest, for checking reviews and revocations against it.
   * Its own signatures are not re-verified here: what makes a review valid is the reviewer's
   * signature over this exact payload digest (R2-R5); the ticket's authenticity was checked by
   * the hook when it was pushed and is checked by `bg-sign verify`/`show`.
   */
  readonly bound: VerifiedTicket | null;
}

/**
 * Reads the envelopes the report needs with one cat-file process: tickets named by `ticketIds`
 * and those with a review or revocation to check, every revocation and every review tip.
 * Reviews and revocations are verified under the policy (one signature check each).
 */
export async function readEnvelopes(
  ctx: GitContext,
  refs: EvidenceRefs,
  ticketIds: ReadonlySet<string>,
  policy: Policy | null,
  problems: AuditProblem[],
): Promise<{
  tickets: Map<string, TicketFacts>;
  revocations: Map<string, RevocationFacts>;
  reviews: Map<string, ReviewFacts>;
}> {
  const tickets = new Map<string, TicketFacts>();
  const revocations = new Map<string, RevocationFacts>();
  const reviews = new Map<string, ReviewFacts>();
  const revokedRefs = refs.byNs.get('revoked') ?? new Map<string, string>();
  const reviewRefs = refs.byNs.get('reviews') ?? new Map<string, string>();
  const ticketRefs = refs.byNs.get('tickets') ?? new Map<string, string>();
  const needVerified = new Set([...revokedRefs.keys(), ...reviewRefs.keys()]);
  const wanted = new Set([...ticketIds, ...needVerified]);

  const specs: { ns: Exclude<Namespace, 'consumed'>; id: string }[] = [];
  for (const id of wanted) if (ticketRefs.has(id)) specs.push({ ns: 'tickets', id });
  for (const id of revokedRefs.keys()) specs.push({ ns: 'revoked', id });
  for (const id of reviewRefs.keys()) specs.push({ ns: 'reviews', id });
  const tip = (ns: Namespace, id: string) => refs.byNs.get(ns)!.get(id)!;

  const raw = new Map<string, Buffer | null>();
  const read = new Map<string, TicketRead>();
  await catFileStream(
    ctx,
    specs.map((s) => `${tip(s.ns, s.id)}:${ENVELOPE_FILE[s.ns]}`),
    ({ data, type }, i) => {
      const s = specs[i]!;
      const bytes = data && type === 'blob' ? Buffer.from(data) : null;
      if (s.ns !== 'tickets') {
        raw.set(`${s.ns}/${s.id}`, bytes);
        return;
      }
      try {
        const env = envelopeOf(bytes, `ticket ${s.id}`);
        if (env.payloadType !== TICKET_PAYLOAD_TYPE) {
          throw new BreakglassError(
            'PAYLOAD_TYPE',
            `payloadType is "${env.payloadType.slice(0, 80)}"`,
          );
        }
        const payload = parsePayload(env.payload);
        const bound: VerifiedTicket | null = needVerified.has(s.id)
          ? {
              envelope: env,
              payload,
              payloadDigest: payloadDigest(env.payload),
              signers: [],
              unverified: [],
            }
          : null;
        if (payload.id !== s.id) {
          throw new BreakglassError(
            'TICKET_REF_INVALID',
            `ref names ${s.id} but holds ticket ${payload.id}`,
          );
        }
        read.set(s.id, { payload, bound });
        tickets.set(s.id, {
          id: s.id,
          requester: payload.requester,
          holder: payload.holder,
          reason: payload.reason,
          incident: payload.incident,
          notBefore: payload.notBefore,
          expiresAt: payload.expiresAt,
          maxUses: payload.maxUses,
        });
      } catch (e) {
        problems.push({
          kind: 'ticket',
          where: REFS.tickets + s.id,
          message: (e as Error).message,
        });
      }
    },
  );

  for (const id of revokedRefs.keys()) {
    try {
      const env = envelopeOf(raw.get(`revoked/${id}`) ?? null, `revocation ${id}`);
      const t = read.get(id);
      if (policy && t?.bound) {
        const r = verifyRevocation(env, t.bound, policy);
        revocations.set(id, {
          ticket: id,
          revoker: r.revoker,
          revokedAt: r.revokedAt,
          reason: r.reason,
          valid: true,
        });
      } else {
        // Unverifiable (no policy or no ticket): report what it claims, marked as such.
        const p = JSON.parse(env.payload.toString('utf8')) as Record<string, unknown>;
        revocations.set(id, {
          ticket: id,
          revoker: String(p.revoker ?? '?'),
          revokedAt: String(p.revokedAt ?? ''),
          reason: String(p.reason ?? ''),
          valid: policy && !t ? false : null,
          error: t ? undefined : 'ticket not found',
        });
      }
    } catch (e) {
      problems.push({
        kind: 'revocation',
        where: REFS.revoked + id,
        message: (e as Error).message,
      });
    }
  }

  for (const id of reviewRefs.keys()) {
    const where = REFS.reviews + id;
    let env: Envelope;
    let claimed: Record<string, unknown>;
    try {
      env = envelopeOf(raw.get(`reviews/${id}`) ?? null, `review ${id}`);
      claimed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(env.payload)) as Record<
        string,
        unknown
      >;
      if (!claimed || typeof claimed !== 'object') throw new Error('payload is not an object');
    } catch (e) {
      problems.push({ kind: 'review', where, message: (e as Error).message });
      continue;
    }
    const t = read.get(id);
    const base = {
      ticket: id,
      reviewer: String(claimed.reviewer ?? '?'),
      outcome: claimed.outcome as ReviewFacts['outcome'],
      note: String(claimed.note ?? ''),
      reviewedAt: String(claimed.reviewedAt ?? ''),
      reviewedAtMs: Date.parse(String(claimed.reviewedAt ?? '')) || 0,
    };
    if (!policy) {
      reviews.set(id, { ...base, valid: null, error: 'no policy to verify the review with' });
      continue;
    }
    if (!t?.bound) {
      reviews.set(id, { ...base, valid: false, error: 'the reviewed ticket could not be read' });
      problems.push({ kind: 'review', where, message: 'the reviewed ticket could not be read' });
      continue;
    }
    try {
      const r = verifyReview(env, t.bound, policy);
      reviews.set(id, {
        ...base,
        reviewer: r.reviewer,
        outcome: r.outcome,
        note: r.note,
        reviewedAt: r.reviewedAt,
        reviewedAtMs: r.reviewedAtMs,
        valid: true,
      });
    } catch (e) {
      reviews.set(id, { ...base, valid: false, error: (e as Error).message });
      problems.push({ kind: 'review', where, message: (e as Error).message });
    }
  }
  return { tickets, revocations, reviews };
}

/** Reads everything the audit report joins, with a fixed number of git processes. */
export async function readAuditData(ctx: GitContext, opts: AuditSourceOptions): Promise<AuditData> {
  const problems: AuditProblem[] = [];
  const notesRef = opts.notesRef ?? REFS.notes;
  // Refs and the notes listing at once, then notes and use records at once: git works on one
  // core while we parse on the other.
  const [refs, noteList] = await Promise.all([
    listEvidenceRefs(ctx, notesRef, { consumedTips: true }),
    listNotes(ctx, notesRef, { allowMissing: true }),
  ]);
  opts.progress?.('refs', 1, 1);
  const consumedTips = refs.consumedTips ?? [];
  // A use record matching a note only sets its flag; the others (no note) become rows. Uses are
  // matched as they are read, against the events parsed so far; the rest wait for the notes.
  const byNew = new Map<string, NotedEvent | NotedEvent[]>();
  const matchUse = (u: UseIdentity): boolean => {
    const have = byNew.get(u.newSha);
    if (have === undefined) return false;
    const hit = (e: NotedEvent): boolean => {
      const ev = e instanceof PackedEvent ? e.head() : e.event;
      if (
        ev.kind === 'breakglass' &&
        !!ev.ticketId &&
        ev.ticketId === u.ticket &&
        ev.ref === u.ref &&
        ev.oldSha === u.oldSha
      ) {
        e.useRecord = true;
        return true;
      }
      return false;
    };
    return Array.isArray(have) ? have.some(hit) : hit(have);
  };
  const pending: UseIdentity[] = [];
  // Notes first, then use records: each use then meets its event at once, and 100,000 pending
  // use identities are never held next to the events (measured: the audit's peak memory).
  const events = await parseNotes(
    ctx,
    refs.notes ? noteList : [],
    problems,
    opts.progress,
    byNew,
    true,
  );
  noteList.length = 0;
  await scanUseKeys(ctx, consumedTips, problems, (u) => {
    if (!matchUse(u)) pending.push(u);
  });
  consumedTips.length = 0;
  const orphans: string[] = [];
  for (const u of pending) if (!matchUse(u)) orphans.push(u.commit);
  pending.length = 0;
  byNew.clear();
  const uses = await readUseCommits(ctx, orphans, problems);
  opts.progress?.('records', 1, 1);
  // Tickets are read only where the records leave something out: notes written by the recorder
  // carry requester, approvers, reason and window already.
  const ids = new Set<string>();
  const ticketOf: (string | undefined)[] = [];
  for (const { event: e } of events) {
    if (e.ticketId && (!e.requester || e.reason === undefined || !e.window)) ids.add(e.ticketId);
    ticketOf.push(e.ticketId);
  }
  for (const u of uses) ids.add(u.ticket);
  const { tickets, revocations, reviews } = await readEnvelopes(
    ctx,
    refs,
    ids,
    await opts.policy,
    problems,
  );
  opts.progress?.('tickets', 1, 1);
  const ticketRefs = refs.byNs.get('tickets');
  // Only the answer for the ids the rows ask about is kept, holding the events' own strings: the
  // ref listing (an id and a tip per ticket, 100,000 of them) can go before the rows are built.
  const withRef = new Set<string>();
  for (const t of ticketOf) if (t !== undefined && ticketRefs?.has(t)) withRef.add(t);
  ticketOf.length = 0;
  for (const u of uses) if (ticketRefs?.has(u.ticket)) withRef.add(u.ticket);
  const ticketIds: { has(id: string): boolean } = withRef;
  return { events, tickets, ticketIds, uses, revocations, reviews, problems };
}

// Ticket and review chains are one commit per signature or review; anything longer is not ours.
const MAX_CHAIN = 64;

async function chainOf(ctx: GitContext, tip: string): Promise<{ sha: string; at: number }[]> {
  const r = await runGit(ctx, [
    'log',
    '--first-parent',
    `--max-count=${MAX_CHAIN}`,
    '--format=%H %ct',
    tip,
    '--',
  ]);
  return r.stdout
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [sha, ct] = l.split(' ');
      return { sha: sha!, at: Number(ct) * 1000 };
    })
    .reverse();
}

/**
 * Everything `bg-sign log ID` shows about one ticket: the ticket chain (who added which
 * signature, when), its uses (notes and use records), revocation and every review on the chain.
 */
export async function readTicketHistory(
  ctx: GitContext,
  id: string,
  policy: Policy | null,
): Promise<{ input: Omit<TimelineInput, 'now'>; problems: AuditProblem[] }> {
  const problems: AuditProblem[] = [];
  const refs = await listEvidenceRefs(ctx);
  const tip = refs.byNs.get('tickets')?.get(id);
  if (!tip) {
    throw new BreakglassError('TICKET_NOT_FOUND', `ticket ${id} not found (${REFS.tickets}${id})`, {
      hint: 'fetch the break-glass refs first (bg-sign fetch)',
    });
  }
  const reader = new CatFileBatch(ctx);
  try {
    const chain = await chainOf(ctx, tip);
    const signatures: ApprovalStep[] = [];
    const seen = new Set<string>();
    let last: Envelope | null = null;
    for (const c of chain) {
      const obj = await reader.read(`${c.sha}:${ENVELOPE_FILE.tickets}`);
      let env: Envelope;
      try {
        env = envelopeOf(obj?.type === 'blob' ? obj.data : null, `ticket ${id} at ${c.sha}`);
      } catch (e) {
        problems.push({ kind: 'ticket', where: c.sha, message: (e as Error).message });
        continue;
      }
      last = env;
      for (const sig of env.signatures) {
        const k = sig.sig.toString('base64');
        if (seen.has(k)) continue;
        seen.add(k);
        const who = policy
          ? verifySignatures({ ...env, signatures: [sig] }, policy.keyOwners).signers[0]
          : undefined;
        signatures.push({
          at: c.at,
          principal: who?.principal ?? null,
          keyid: who?.keyid ?? sig.keyid,
        });
      }
    }
    if (!last)
      throw new BreakglassError('TICKET_REF_INVALID', `ticket ${id} holds no readable envelope`);
    const verified = policy ? verifyTicketEnvelope(last, policy.keyOwners) : null;
    const payload = verified?.payload ?? parsePayload(last.payload);
    if (payload.id !== id) {
      throw new BreakglassError(
        'TICKET_REF_INVALID',
        `${REFS.tickets}${id} holds ticket ${payload.id}`,
      );
    }

    const [events, uses] = await Promise.all([
      readNotedEvents(ctx, refs.notes, problems),
      readUseRecords(
        ctx,
        refs.byNs.get('consumed')?.has(id) ? [refs.byNs.get('consumed')!.get(id)!] : [],
        problems,
      ),
    ]);

    let revocation: RevocationFacts | null = null;
    const revTip = refs.byNs.get('revoked')?.get(id);
    if (revTip) {
      const obj = await reader.read(`${revTip}:${ENVELOPE_FILE.revoked}`);
      try {
        const env = envelopeOf(obj?.type === 'blob' ? obj.data : null, `revocation ${id}`);
        if (policy && verified) {
          try {
            const r = verifyRevocation(env, verified, policy);
            revocation = {
              ticket: id,
              revoker: r.revoker,
              revokedAt: r.revokedAt,
              reason: r.reason,
              valid: true,
            };
          } catch (e) {
            const p = JSON.parse(env.payload.toString('utf8')) as Record<string, unknown>;
            revocation = {
              ticket: id,
              revoker: String(p.revoker ?? '?'),
              revokedAt: String(p.revokedAt ?? ''),
              reason: String(p.reason ?? ''),
              valid: false,
              error: (e as Error).message,
            };
          }
        } else {
          const p = JSON.parse(env.payload.toString('utf8')) as Record<string, unknown>;
          revocation = {
            ticket: id,
            revoker: String(p.revoker ?? '?'),
            revokedAt: String(p.revokedAt ?? ''),
            reason: String(p.reason ?? ''),
            valid: null,
          };
        }
      } catch (e) {
        problems.push({
          kind: 'revocation',
          where: REFS.revoked + id,
          message: (e as Error).message,
        });
      }
    }

    const reviews: ReviewStep[] = [];
    const reviewTip = refs.byNs.get('reviews')?.get(id);
    if (reviewTip) {
      for (const c of await chainOf(ctx, reviewTip)) {
        const obj = await reader.read(`${c.sha}:${ENVELOPE_FILE.reviews}`);
        try {
          const env = envelopeOf(
            obj?.type === 'blob' ? obj.data : null,
            `review ${id} at ${c.sha}`,
          );
          const claimed = JSON.parse(env.payload.toString('utf8')) as Record<string, unknown>;
          const base = {
            reviewer: String(claimed.reviewer ?? '?'),
            keyid: null,
            outcome: String(claimed.outcome ?? '?'),
            note: String(claimed.note ?? ''),
            reviewedAt: String(claimed.reviewedAt ?? ''),
          };
          if (!policy || !verified) {
            reviews.push({
              ...base,
              valid: policy ? false : null,
              error: policy ? 'ticket not verified' : undefined,
            });
            continue;
          }
          try {
            const r = verifyReview(env, verified, policy);
            reviews.push({ ...base, keyid: r.keyid, valid: true });
          } catch (e) {
            reviews.push({ ...base, valid: false, error: (e as Error).message });
          }
        } catch (e) {
          problems.push({ kind: 'review', where: c.sha, message: (e as Error).message });
        }
      }
    }

    return {
      input: {
        id,
        requester: payload.requester,
        holder: payload.holder,
        reason: payload.reason,
        incident: payload.incident,
        refs: payload.scope.refs,
        actions: payload.scope.actions,
        issuedAt: payload.issuedAt,
        notBefore: payload.notBefore,
        expiresAt: payload.expiresAt,
        maxUses: payload.maxUses,
        signatures,
        events: events.filter((e) => e.event.kind === 'breakglass' && e.event.ticketId === id),
        uses: uses.filter((u) => u.ticket === id),
        revocation,
        reviews,
      },
      problems,
    };
  } finally {
    reader.close();
  }
}
