import { parseTime } from '../ticket/time.ts';

/**
 * Audit notes (DESIGN §7): one git trailer block per event, blocks separated by a blank line,
 * stored under `refs/notes/breakglass` on every commit an event touched. Pure: no IO, no clock.
 */

/** One recorded event: a ticketed push (`breakglass`) or a bypass no ticket covers (`violation`). */
export interface AuditEvent {
  kind: 'breakglass' | 'violation';
  ticketId?: string;
  actions: string[];
  ref: string;
  oldSha: string;
  newSha: string;
  pusher: string;
  requester?: { principal: string; keyid: string };
  approvers: { principal: string; keyid: string }[];
  reason?: string;
  incident?: string;
  window?: { notBefore: string; expiresAt: string };
  /** RFC 3339 UTC with `Z`. */
  recordedAt: string;
  /** Who wrote the record, e.g. `pre-receive@git.example.com` or `action@github`. */
  recordedBy: string;
  /** Force push: the tip that was replaced. */
  replacedTip?: string;
  /** Force push: commits no longer reachable from the ref (the note lists at most 50). */
  dropped?: string[];
  /** Total dropped commits when more than `dropped` lists (set by parseNote on a bounded list). */
  droppedCount?: number;
  /** Violation: what happened, in one sentence. */
  violation?: string;
  /**
   * Every ref update of one push that the block names, in order, when there are several (DESIGN
   * §7: a commit that several refs of one push bring in gets one block for that push). The event's
   * own `ref`/`oldSha`/`newSha` is one of them. Absent for a block naming one ref.
   */
  refs?: RefUpdate[];
}

/** One ref's update as a note block names it (`Break-glass-Ref` + `Break-glass-Update`). */
export interface RefUpdate {
  ref: string;
  oldSha: string;
  newSha: string;
}

export const TRAILER_PREFIX = 'Break-glass-';
/** At most this many dropped commits are listed in a note; the rest are counted. */
export const MAX_DROPPED_LISTED = 50;
/** Longest note text parsed; the rest is ignored and reported (notes may come from a hostile clone). */
export const MAX_NOTE_CHARS = 1024 * 1024;
/** Longest value written for one trailer (a longer one is cut and marked); the ticket keeps the rest. */
export const MAX_VALUE_CHARS = 4096;

const K = {
  violation: 'Break-glass-Violation',
  ticket: 'Break-glass-Ticket',
  action: 'Break-glass-Action',
  ref: 'Break-glass-Ref',
  update: 'Break-glass-Update',
  pusher: 'Break-glass-Pusher',
  requester: 'Break-glass-Requester',
  approvers: 'Break-glass-Approvers',
  reason: 'Break-glass-Reason',
  incident: 'Break-glass-Incident',
  window: 'Break-glass-Window',
  replaced: 'Break-glass-Replaced',
  dropped: 'Break-glass-Dropped',
  recorded: 'Break-glass-Recorded',
} as const;

// Characters that could break a line, fake a trailer or reorder text on screen (bidi controls,
// "Trojan source"): C0, DEL, C1, line/paragraph separators, directional marks, BOM, and lone
// surrogates (UTF-8 can't store them; with the `u` flag a valid pair is not matched).
const UNSAFE_G = new RegExp(
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  '[\\u0000-\\u001f\\u007f-\\u009f\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069\\ufeff\\ud800-\\udfff]',
  'gu',
);

function hexEscape(c: string): string {
  return `\\u{${c.codePointAt(0)!.toString(16)}}`;
}

/**
 * Makes an untrusted string one safe line, reversibly: `\` doubles, CR/LF/TAB become `\r` `\n`
 * `\t`, other control and bidi characters become `\u{hex}`. A reason can't start a new trailer.
 */
export function escapeValue(s: string): string {
  const capped = s.length > MAX_VALUE_CHARS ? s.slice(0, MAX_VALUE_CHARS) + '...[truncated]' : s;
  return (
    capped
      .replace(/\\/g, '\\\\')
      .replace(UNSAFE_G, (c) =>
        c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : hexEscape(c),
      )
      // Trailing blanks would be trimmed by git and editors: keep the last one visible.
      .replace(/\s$/u, hexEscape)
  );
}

// List items (`bob SHA256:...`, actions, commits) also escape the separators they live between.
function escapeItem(s: string): string {
  return escapeValue(s).replace(/[ ,]/g, hexEscape);
}

/** Reverses escapeValue; unknown escapes are kept as written. */
export function unescapeValue(s: string): string {
  return s.replace(/\\(\\|n|r|t|u\{([0-9a-f]{1,6})\})/g, (all, what: string, hex?: string) => {
    if (what === '\\') return '\\';
    if (what === 'n') return '\n';
    if (what === 'r') return '\r';
    if (what === 't') return '\t';
    const cp = parseInt(hex!, 16);
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : all;
  });
}

function principalKey(p: { principal: string; keyid: string }): string {
  return `${escapeItem(p.principal)} ${escapeItem(p.keyid)}`;
}

function droppedValue(e: AuditEvent): string {
  const list = e.dropped ?? [];
  const total = Math.max(list.length, e.droppedCount ?? 0);
  const shown = list.slice(0, MAX_DROPPED_LISTED).map(escapeItem);
  const noun = total === 1 ? 'commit' : 'commits';
  if (shown.length === 0) return `${total} ${noun}`;
  const more = total - shown.length;
  return `${total} ${noun}: ${shown.join(', ')}${more > 0 ? `, ... and ${more} more` : ''}`;
}

/**
 * Formats one event as the DESIGN §7 trailer block (ends with a newline, no blank line). With
 * `e.refs` the block names every ref of the push (a `Ref`/`Update` pair each, in order); the
 * event's own update must be one of them.
 */
export function formatNoteBlock(e: AuditEvent): string {
  const updates = e.refs && e.refs.length > 0 ? e.refs : [e];
  if (!updates.some((u) => u.ref === e.ref && u.oldSha === e.oldSha && u.newSha === e.newSha)) {
    throw new Error('formatNoteBlock: the event ref update is not among its refs');
  }
  const lines: string[] = [];
  const add = (key: string, value: string) => lines.push(`${key}: ${value}`);
  if (e.kind === 'violation') add(K.violation, escapeValue(e.violation ?? 'unrecorded bypass'));
  if (e.ticketId !== undefined) add(K.ticket, escapeValue(e.ticketId));
  add(K.action, e.actions.map(escapeItem).join(', '));
  for (const u of updates) {
    add(K.ref, escapeValue(u.ref));
    add(K.update, `${escapeValue(u.oldSha)}..${escapeValue(u.newSha)}`);
  }
  add(K.pusher, escapeValue(e.pusher));
  if (e.requester) add(K.requester, principalKey(e.requester));
  if (e.approvers.length > 0) add(K.approvers, e.approvers.map(principalKey).join(', '));
  if (e.reason !== undefined) add(K.reason, escapeValue(e.reason));
  if (e.incident !== undefined) add(K.incident, escapeValue(e.incident));
  if (e.window)
    add(K.window, `${escapeValue(e.window.notBefore)}/${escapeValue(e.window.expiresAt)}`);
  if (e.replacedTip !== undefined) add(K.replaced, escapeValue(e.replacedTip));
  if (e.dropped !== undefined || e.droppedCount !== undefined) add(K.dropped, droppedValue(e));
  add(K.recorded, `${escapeValue(e.recordedAt)} ${escapeValue(e.recordedBy)}`);
  return lines.join('\n') + '\n';
}

/** Appends a block to a note's text, separated by one blank line (as `git notes append` does). */
export function appendBlock(existing: string | undefined, block: string): string {
  const body = block.replace(/\n+$/, '') + '\n';
  const head = (existing ?? '').replace(/\s+$/, '');
  return head === '' ? body : `${head}\n\n${body}`;
}

/** Splits note text into blocks (runs of non-blank lines), trailing whitespace removed. */
export function splitBlocks(text: string): string[] {
  return text
    .replace(/\r\n/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((b) => b.replace(/^\n+|\s+$/g, ''))
    .filter((b) => b !== '');
}

/** True when the note already holds exactly this block (how a retried recorder skips an event). */
export function noteHasBlock(text: string | undefined, block: string): boolean {
  if (!text) return false;
  const want = block.replace(/\s+$/, '');
  return splitBlocks(text).includes(want);
}

/** Identity of an event for de-duplication: kind, ticket, ref and the exact update. */
export function eventKey(
  e: Pick<AuditEvent, 'kind' | 'ticketId' | 'ref' | 'oldSha' | 'newSha'>,
): string {
  return `${e.kind} ${e.ticketId ?? '-'} ${e.ref} ${e.oldSha}..${e.newSha}`;
}

const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const TRAILER_LINE = /^(Break-glass-[A-Za-z0-9-]+):(?: (.*))?$/;

function parsePrincipal(item: string): { principal: string; keyid: string } | undefined {
  const parts = item.split(' ');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') return undefined;
  return { principal: unescapeValue(parts[0]!), keyid: unescapeValue(parts[1]!) };
}

function checkTime(text: string, what: string): string | undefined {
  try {
    parseTime(text, what);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The block's `Ref`/`Update` pairs. One pair may sit anywhere in the block (as always); several
 * must each be a `Ref` line directly followed by its `Update` line, and name distinct refs.
 */
function refPairs(
  refLines: { at: number; value: string }[],
  updateLines: { at: number; value: string }[],
  errors: string[],
): { ref: string; update: string }[] {
  if (refLines.length === 0) errors.push(`${K.ref} missing`);
  if (updateLines.length === 0) errors.push(`${K.update} missing`);
  if (refLines.length <= 1 && updateLines.length <= 1) {
    return [{ ref: refLines[0]?.value ?? '', update: updateLines[0]?.value ?? '' }];
  }
  const paired =
    refLines.length === updateLines.length &&
    refLines.every((r, i) => updateLines[i]!.at === r.at + 1);
  if (!paired) {
    errors.push(`${K.ref} and ${K.update} repeat but not as adjacent pairs`);
    return [];
  }
  const refs = refLines.map((r) => r.value);
  if (new Set(refs).size !== refs.length) errors.push(`${K.ref} names one ref twice`);
  return refLines.map((r, i) => ({ ref: r.value, update: updateLines[i]!.value }));
}

function parseUpdate(update: string, errors: string[]): { oldSha: string; newSha: string } {
  const u = /^(.*)\.\.(.*)$/.exec(update);
  if (update !== '' && (!u || !OID.test(u[1]!) || !OID.test(u[2]!))) {
    errors.push(`${K.update} is not <old>..<new> object ids`);
  }
  return { oldSha: u?.[1] ?? '', newSha: u?.[2] ?? '' };
}

function parseBlock(lines: string[]): { events?: AuditEvent[]; errors: string[] } {
  const errors: string[] = [];
  const fields = new Map<string, string>();
  const refLines: { at: number; value: string }[] = [];
  const updateLines: { at: number; value: string }[] = [];
  lines.forEach((line, at) => {
    const m = TRAILER_LINE.exec(line);
    if (!m) {
      errors.push(`not a trailer line: ${JSON.stringify(line.slice(0, 80))}`);
      return;
    }
    if (m[1] === K.ref) refLines.push({ at, value: m[2] ?? '' });
    else if (m[1] === K.update) updateLines.push({ at, value: m[2] ?? '' });
    else if (fields.has(m[1]!)) errors.push(`${m[1]} appears twice`);
    else fields.set(m[1]!, m[2] ?? '');
  });
  const need = (key: string): string => {
    const v = fields.get(key);
    if (v === undefined) errors.push(`${key} missing`);
    return v ?? '';
  };
  const violation = fields.get(K.violation);
  const kind = violation === undefined ? 'breakglass' : 'violation';
  const ticket = fields.get(K.ticket);
  if (kind === 'breakglass' && ticket === undefined) errors.push(`${K.ticket} missing`);
  const actionText = need(K.action);
  const pairs = refPairs(refLines, updateLines, errors);
  const pusher = need(K.pusher);
  const recorded = need(K.recorded);
  const updates = pairs.map((p) => ({
    ref: unescapeValue(p.ref),
    ...parseUpdate(p.update, errors),
  }));
  const first = updates[0] ?? { ref: '', oldSha: '', newSha: '' };

  const sp = recorded.indexOf(' ');
  const recordedAt = sp < 0 ? recorded : recorded.slice(0, sp);
  const recordedBy = sp < 0 ? '' : unescapeValue(recorded.slice(sp + 1));
  if (recorded !== '') {
    const bad = checkTime(recordedAt, K.recorded);
    if (bad) errors.push(bad);
    if (recordedBy === '') errors.push(`${K.recorded} names no recorder`);
  }

  const event: AuditEvent = {
    kind,
    ...(violation !== undefined ? { violation: unescapeValue(violation) } : {}),
    ...(ticket !== undefined ? { ticketId: unescapeValue(ticket) } : {}),
    actions: actionText === '' ? [] : actionText.split(', ').map(unescapeValue),
    ref: first.ref,
    oldSha: first.oldSha,
    newSha: first.newSha,
    pusher: unescapeValue(pusher),
    approvers: [],
    recordedAt,
    recordedBy,
  };
  if (event.actions.length === 0) errors.push(`${K.action} is empty`);

  const requester = fields.get(K.requester);
  if (requester !== undefined) {
    const p = parsePrincipal(requester);
    if (p) event.requester = p;
    else errors.push(`${K.requester} is not "<principal> <keyid>"`);
  }
  const approvers = fields.get(K.approvers);
  if (approvers !== undefined) {
    for (const item of approvers.split(', ')) {
      const p = parsePrincipal(item);
      if (p) event.approvers.push(p);
      else errors.push(`${K.approvers} item is not "<principal> <keyid>"`);
    }
  }
  const reason = fields.get(K.reason);
  if (reason !== undefined) event.reason = unescapeValue(reason);
  const incident = fields.get(K.incident);
  if (incident !== undefined) event.incident = unescapeValue(incident);
  const window = fields.get(K.window);
  if (window !== undefined) {
    const parts = window.split('/');
    const bad =
      parts.length !== 2
        ? `${K.window} is not <start>/<end>`
        : (checkTime(parts[0]!, `${K.window} start`) ?? checkTime(parts[1]!, `${K.window} end`));
    if (bad) errors.push(bad);
    else event.window = { notBefore: parts[0]!, expiresAt: parts[1]! };
  }
  const replaced = fields.get(K.replaced);
  if (replaced !== undefined) {
    if (OID.test(replaced)) event.replacedTip = replaced;
    else errors.push(`${K.replaced} is not an object id`);
  }
  const dropped = fields.get(K.dropped);
  if (dropped !== undefined) {
    const d = /^(\d{1,9}) commits?(?:: (.*))?$/.exec(dropped);
    if (!d) errors.push(`${K.dropped} is not "<n> commits: <id>, ..."`);
    else {
      const total = Number(d[1]);
      const items = d[2] === undefined ? [] : d[2].split(', ');
      const more = items.length
        ? /^\.\.\. and (\d{1,9}) more$/.exec(items[items.length - 1]!)
        : null;
      if (more) items.pop();
      const ids = items.map(unescapeValue);
      if (!ids.every((x) => OID.test(x))) errors.push(`${K.dropped} lists a non-object id`);
      else if (ids.length + (more ? Number(more[1]) : 0) !== total) {
        errors.push(`${K.dropped} count ${total} does not match the list`);
      } else {
        event.dropped = ids;
        if (total > ids.length) event.droppedCount = total;
      }
    }
  }
  if (errors.length) return { errors };
  if (updates.length === 1) return { events: [event], errors };
  // One event per ref, as one report row per protected-branch update; each keeps the whole list
  // so formatNoteBlock gives back the block from any of them.
  return { events: updates.map((u) => ({ ...event, ...u, refs: updates })), errors };
}

/**
 * Parses every break-glass block of a note. Never throws: malformed blocks are reported in
 * `errors` (numbered by block) and left out of `events`; blocks that are not break-glass
 * trailers (someone's free text) are ignored; unknown `Break-glass-*` trailers are tolerated.
 */
export function parseNote(text: string): { events: AuditEvent[]; errors: string[] } {
  const events: AuditEvent[] = [];
  const errors: string[] = [];
  if (typeof text !== 'string') return { events, errors: ['note is not text'] };
  if (text.length > MAX_NOTE_CHARS) {
    errors.push(`note is longer than ${MAX_NOTE_CHARS} characters; the rest was not read`);
    text = text.slice(0, MAX_NOTE_CHARS);
  }
  splitBlocks(text).forEach((block, i) => {
    const lines = block.split('\n');
    if (!lines.some((l) => l.startsWith(TRAILER_PREFIX))) return;
    const r = parseBlock(lines);
    if (r.events) events.push(...r.events);
    for (const e of r.errors) errors.push(`block ${i + 1}: ${e}`);
  });
  return { events, errors };
}

// ---------------------------------------------------------------------------------------------
// Fast path for the audit (100,000 notes, DESIGN §9). parseNote stays the contract; this reads
// only the exact shape formatNoteBlock writes and returns null for anything else, so the caller
// falls back to parseNote. A property test checks it gives parseNote's result whenever it answers.

// Printable ASCII and LF only, no backslash: no escapes to undo, no CR/TAB/bidi to normalise,
// and a string index is a byte index (the caller may cut values from the note's bytes).
const NOT_PLAIN = /[^\n\x20-\x5b\x5d-\x7e]/;

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function digits(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** True only for `YYYY-MM-DDTHH:MM:SSZ` at text[a, b) that parseTime accepts (else: not sure). */
function plainTimeOk(s: string, a: number, b: number): boolean {
  if (b - a !== 20 || s.charCodeAt(a + 4) !== 45 || s.charCodeAt(a + 7) !== 45) return false;
  if (s.charCodeAt(a + 10) !== 84 || s.charCodeAt(a + 13) !== 58) return false;
  if (s.charCodeAt(a + 16) !== 58 || s.charCodeAt(a + 19) !== 90) return false;
  const y = digits(s, a, 4);
  const mo = digits(s, a + 5, 2);
  const d = digits(s, a + 8, 2);
  const h = digits(s, a + 11, 2);
  const mi = digits(s, a + 14, 2);
  const se = digits(s, a + 17, 2);
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59) return false;
  if (se < 0 || se > 59) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  return d <= (mo === 2 && leap ? 29 : DAYS[mo - 1]!);
}

/** OID.test(text.slice(a, b)) without the slice. */
function isOid(s: string, a: number, b: number): boolean {
  if (b - a !== 40 && b - a !== 64) return false;
  for (let i = a; i < b; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** Values that repeat across notes (refs, names, approver lists), shared between events. */
export class NoteCache {
  // Keyed by the value's text as written (the fast path reads only unescaped values).
  readonly strings = new Map<string, string>();
  readonly actions = new Map<string, string[]>();
  readonly principals = new Map<string, { principal: string; keyid: string } | null>();
  readonly approvers = new Map<string, { principal: string; keyid: string }[] | null>();
  /** Bounded: a hostile clone full of distinct names must not grow these without end. */
  room(map: Map<string, unknown>): void {
    if (map.size >= 20_000) map.clear();
  }
}

/**
 * A copy of `s` that shares no memory with the text it was cut from (V8 keeps a slice's whole
 * parent string alive): concatenating flattens into a new string, whose slice is then its own.
 */
function standalone(s: string): string {
  return s.length < 13 ? s : (s + ' ').slice(0, -1);
}

const same = (s: string) => s;

function fastApprovers(
  value: string,
  keep: (s: string) => string = same,
): { principal: string; keyid: string }[] | null {
  const out: { principal: string; keyid: string }[] = [];
  for (const item of value.split(', ')) {
    const p = fastPrincipal(item, keep);
    if (!p) return null;
    out.push(p);
  }
  return out;
}

function fastPrincipal(
  item: string,
  keep: (s: string) => string = same,
): { principal: string; keyid: string } | undefined {
  const sp = item.indexOf(' ');
  if (sp <= 0 || sp === item.length - 1 || item.indexOf(' ', sp + 1) >= 0) return undefined;
  return { principal: keep(item.slice(0, sp)), keyid: keep(item.slice(sp + 1)) };
}

/**
 * parseNote for notes exactly as formatNoteBlock writes them (plain ASCII, fields in order, no
 * escapes, no dropped list): the same events, or null when the note needs the full parser.
 * `take(start, end)` cuts a value (default: a slice of `text`; the audit copies from the note's
 * bytes so no event keeps the whole note alive); `cache` shares repeated values between events.
 */
export function parseNoteFast(
  text: string,
  take?: (start: number, end: number) => string,
  cache?: NoteCache,
): { events: AuditEvent[]; errors: string[] } | null {
  const n = text.length;
  if (n === 0 || n > MAX_NOTE_CHARS || text.charCodeAt(n - 1) !== 10) return null;
  if (NOT_PLAIN.test(text) || text.includes(' \n') || text.includes('\n\n\n')) return null;
  const cut = take ?? ((a: number, b: number) => text.slice(a, b));
  const events: AuditEvent[] = [];
  let pos = 0;
  // The current line's value is text[vs, ve); `key` checks the trailer name and moves on.
  let vs = 0;
  let ve = 0;
  const key = (name: string): boolean => {
    if (pos >= n || !text.startsWith(name, pos)) return false;
    const colon = pos + name.length;
    if (text.charCodeAt(colon) !== 58 || text.charCodeAt(colon + 1) !== 32) return false;
    vs = colon + 2;
    ve = text.indexOf('\n', vs);
    if (ve <= vs) return false;
    pos = ve + 1;
    return true;
  };
  const val = () => text.slice(vs, ve);
  // A name (ref, pusher, recorder, incident) that other events share. What the cache keeps is a
  // copy, never a slice: it outlives this note.
  const name = (a: number, b: number): string => {
    if (!cache) return cut(a, b);
    const v = text.slice(a, b);
    let hit = cache.strings.get(v);
    if (hit === undefined) {
      cache.room(cache.strings);
      cache.strings.set(v, (hit = take ? take(a, b) : standalone(v)));
    }
    return hit;
  };
  while (pos < n) {
    let violation: string | undefined;
    let ticketId: string | undefined;
    if (key(K.violation)) violation = cut(vs, ve);
    if (key(K.ticket)) ticketId = cut(vs, ve);
    if (violation === undefined && ticketId === undefined) return null;
    if (!key(K.action)) return null;
    let actions: string[];
    if (cache) {
      const v = val();
      let hit = cache.actions.get(v);
      if (hit === undefined) {
        cache.room(cache.actions);
        cache.actions.set(v, (hit = v.split(', ').map(standalone)));
      }
      actions = hit;
    } else actions = val().split(', ');
    if (!key(K.ref)) return null;
    const ref = name(vs, ve);
    if (!key(K.update)) return null;
    const dots = text.indexOf('..', vs);
    if (dots < 0 || dots > ve || !isOid(text, vs, dots) || !isOid(text, dots + 2, ve)) return null;
    const oldSha = cut(vs, dots);
    const newSha = cut(dots + 2, ve);
    if (!key(K.pusher)) return null;
    const pusher = name(vs, ve);
    let requester: { principal: string; keyid: string } | null | undefined;
    if (key(K.requester)) {
      if (cache) {
        const v = val();
        requester = cache.principals.get(v);
        if (requester === undefined) {
          cache.room(cache.principals);
          cache.principals.set(v, (requester = fastPrincipal(v, standalone) ?? null));
        }
      } else requester = fastPrincipal(val());
      if (!requester) return null;
    }
    let approvers: { principal: string; keyid: string }[] | null | undefined;
    if (key(K.approvers)) {
      if (cache) {
        const v = val();
        approvers = cache.approvers.get(v);
        if (approvers === undefined) {
          cache.room(cache.approvers);
          cache.approvers.set(v, (approvers = fastApprovers(v, standalone)));
        }
      } else approvers = fastApprovers(val());
      if (!approvers) return null;
    }
    const reason = key(K.reason) ? cut(vs, ve) : undefined;
    const incident = key(K.incident) ? name(vs, ve) : undefined;
    let window: { notBefore: string; expiresAt: string } | undefined;
    if (key(K.window)) {
      const slash = text.indexOf('/', vs);
      if (slash < 0 || slash >= ve) return null;
      const again = text.indexOf('/', slash + 1);
      if (again >= 0 && again < ve) return null;
      if (!plainTimeOk(text, vs, slash) || !plainTimeOk(text, slash + 1, ve)) return null;
      window = { notBefore: cut(vs, slash), expiresAt: cut(slash + 1, ve) };
    }
    let replacedTip: string | undefined;
    if (key(K.replaced)) {
      if (!isOid(text, vs, ve)) return null;
      replacedTip = cut(vs, ve);
    }
    if (!key(K.recorded)) return null;
    const sp = text.indexOf(' ', vs);
    if (sp < 0 || sp >= ve - 1 || !plainTimeOk(text, vs, sp)) return null;
    const recordedAt = cut(vs, sp);
    const recordedBy = name(sp + 1, ve);
    // Literals in parseNote's field order (one shape each), optional fields only when present.
    const event: AuditEvent =
      violation === undefined
        ? {
            kind: 'breakglass',
            ticketId,
            actions,
            ref,
            oldSha,
            newSha,
            pusher,
            approvers: approvers ?? [],
            recordedAt,
            recordedBy,
          }
        : ticketId === undefined
          ? {
              kind: 'violation',
              violation,
              actions,
              ref,
              oldSha,
              newSha,
              pusher,
              approvers: approvers ?? [],
              recordedAt,
              recordedBy,
            }
          : {
              kind: 'violation',
              violation,
              ticketId,
              actions,
              ref,
              oldSha,
              newSha,
              pusher,
              approvers: approvers ?? [],
              recordedAt,
              recordedBy,
            };
    if (requester) event.requester = requester;
    if (reason !== undefined) event.reason = reason;
    if (incident !== undefined) event.incident = incident;
    if (window) event.window = window;
    if (replacedTip !== undefined) event.replacedTip = replacedTip;
    events.push(event);
    // Blocks are separated by exactly one blank line; anything else (free text, an unknown or
    // repeated trailer, a dropped list) is the full parser's business.
    if (pos < n) {
      if (text.charCodeAt(pos) !== 10) return null;
      pos++;
    }
  }
  return { events, errors: [] };
}
