// The ref names this tool guards, by name alone (DESIGN §4, docs/rules.md N1-N10). One function,
// `guardOf`, that both hook entries reach through the triage (engine/triage.ts): the fast path
// must not load the ticket code, so this module imports nothing.

/** Where bg-sign writes tickets, revocations, reviews, and where the recorder writes. */
export const REFS = {
  tickets: 'refs/breakglass/tickets/',
  revoked: 'refs/breakglass/revoked/',
  reviews: 'refs/breakglass/reviews/',
  consumed: 'refs/breakglass/consumed/',
  notes: 'refs/notes/breakglass',
} as const;

/**
 * How the namespace guard treats a ref:
 * - `evidence`: tickets, revocations, reviews, use records and the notes ref; judged update by
 *   update (N1-N8, server/namespace.ts);
 * - `replace`: `refs/replace/*`, never pushed (N9, TM16: git would show another object in place
 *   of any commit, tree or blob, the policy or a note included, to every reader that honours them);
 * - `blocks-recording`: a name that would make a name the recorder writes impossible to create
 *   (N10, E3): git keeps refs as paths, so `a/b` and `a/b/c` can't both exist;
 * - null: not this guard's business (protected refs are the policy's).
 */
export type RefGuard = 'evidence' | 'replace' | 'blocks-recording';

const CONSUMED = REFS.consumed.slice(0, -1); // refs/breakglass/consumed

/** The guard for one ref name (see RefGuard). */
export function guardOf(ref: string): RefGuard | null {
  if (ref.startsWith('refs/replace/')) return 'replace';
  // N10: the recorder writes refs/notes/breakglass and refs/breakglass/consumed/<id> (one path
  // component): nothing under the notes ref, under a use record, or at a directory of either.
  if (ref.startsWith(REFS.notes + '/') || ref === 'refs/notes') return 'blocks-recording';
  if (ref === 'refs/breakglass' || ref === CONSUMED) return 'blocks-recording';
  if (ref.startsWith(REFS.consumed) && ref.indexOf('/', REFS.consumed.length) >= 0) {
    return 'blocks-recording';
  }
  if (ref === REFS.notes || ref.startsWith('refs/breakglass/')) return 'evidence';
  return null;
}

/**
 * `git for-each-ref` patterns that list every existing ref `guardOf` calls `blocks-recording`
 * (the bracket makes a pattern match that one name only, not the refs under it); `ids` narrows
 * the use records to those tickets (default: all).
 */
export function blockingRefPatterns(ids?: readonly string[]): string[] {
  return [
    `${REFS.notes}/`,
    'refs/note[s]',
    'refs/breakglas[s]',
    `${CONSUMED.slice(0, -1)}[d]`,
    ...(ids ? ids.map((id) => `${REFS.consumed}${id}/`) : [`${REFS.consumed}*/**`]),
  ];
}
