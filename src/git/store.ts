import { BreakglassError } from '../errors.ts';
import { parseEnvelope, serializeEnvelope, type Envelope } from '../ticket/dsse.ts';
import { TICKET_ID } from '../ticket/payload.ts';
import { REFS } from '../engine/guard.ts';
import { CatFileBatch, gitText, runGit, type GitContext } from './git.ts';

/** DESIGN §4: everything lives under the repository so the evidence travels with it. The names
 * live with the namespace guard (engine/guard.ts), which the hook's fast path loads. */
export { REFS };

export type Namespace = 'tickets' | 'revoked' | 'reviews' | 'consumed';

/** The file in a ticket (or revocation, review) commit's tree that holds the envelope. */
export const ENVELOPE_FILE = {
  tickets: 'ticket.json',
  revoked: 'revocation.json',
  reviews: 'review.json',
} as const;

export const ZERO = '0000000000000000000000000000000000000000';

/** Full ref name for an id in a namespace; the id must be a valid ticket id. */
export function refFor(ns: Namespace, id: string): string {
  if (!TICKET_ID.test(id)) {
    throw new BreakglassError(
      'USAGE',
      `"${id.slice(0, 80)}" is not a ticket id (expected e.g. 20261129T031200Z-7f3a9c)`,
    );
  }
  return REFS[ns] + id;
}

/** Parses `refs/breakglass/<ns>/<id>`; null for anything else. */
export function parseBreakglassRef(ref: string): { ns: Namespace; id: string } | null {
  const m = /^refs\/breakglass\/(tickets|revoked|reviews|consumed)\/([^/]+)$/.exec(ref);
  if (!m) return null;
  return { ns: m[1] as Namespace, id: m[2]! };
}

export interface RefEntry {
  readonly ref: string;
  readonly id: string;
  readonly sha: string;
  readonly type: string;
}

/** Lists the refs of one namespace with one `for-each-ref`. */
export async function listRefs(ctx: GitContext, ns: Namespace): Promise<RefEntry[]> {
  const out = await gitText(ctx, [
    'for-each-ref',
    '--format=%(objectname) %(objecttype) %(refname)',
    REFS[ns],
  ]);
  if (!out) return [];
  return out.split('\n').map((line) => {
    const [sha, type, ref] = line.split(' ') as [string, string, string];
    return { ref, sha, type, id: ref.slice(REFS[ns].length) };
  });
}

/**
 * Reads the envelope stored at a ticket/revocation/review commit. The object must be a commit
 * whose tree holds the envelope file; anything else (blob, tag, missing file) is
 * TICKET_REF_INVALID, so a hostile ref can't slip through as "no ticket".
 */
export async function readEnvelopeAt(
  reader: CatFileBatch,
  ns: Exclude<Namespace, 'consumed'>,
  revision: string,
  what: string,
): Promise<Envelope> {
  const commit = await reader.read(revision);
  if (!commit) throw new BreakglassError('TICKET_NOT_FOUND', `${what} not found`);
  if (commit.type !== 'commit') {
    throw new BreakglassError(
      'TICKET_REF_INVALID',
      `${what} points to a ${commit.type}, not a commit`,
    );
  }
  const file = await reader.read(`${commit.sha}:${ENVELOPE_FILE[ns]}`);
  if (!file || file.type !== 'blob') {
    throw new BreakglassError(
      'TICKET_REF_INVALID',
      `${what} has no ${ENVELOPE_FILE[ns]} in its tree`,
    );
  }
  return parseEnvelope(file.data);
}

/** Reads one envelope by id with a short-lived reader. */
export async function readEnvelope(
  ctx: GitContext,
  ns: Exclude<Namespace, 'consumed'>,
  id: string,
): Promise<Envelope> {
  const reader = new CatFileBatch(ctx);
  try {
    return await readEnvelopeAt(
      reader,
      ns,
      refFor(ns, id),
      `${ns === 'tickets' ? 'ticket' : ns} ${id}`,
    );
  } finally {
    reader.close();
  }
}

/** True if a ref exists. */
export async function refExists(ctx: GitContext, ref: string): Promise<boolean> {
  const r = await runGit(ctx, ['rev-parse', '--verify', '--quiet', ref], { allowFail: true });
  return r.code === 0;
}

/** Number of recorded uses: one commit per use on `refs/breakglass/consumed/<id>`. */
export async function countUses(ctx: GitContext, id: string): Promise<number> {
  const ref = refFor('consumed', id);
  if (!(await refExists(ctx, ref))) return 0;
  return Number(await gitText(ctx, ['rev-list', '--count', ref]));
}

export interface Author {
  readonly name: string;
  readonly email: string;
}

/**
 * Writes an envelope as a new commit on `refs/breakglass/<ns>/<id>`: parent = the current tip
 * (so approvals form a chain), and the ref moves only if it still points where we read it
 * (compare-and-swap). Returns the new commit id.
 */
export async function writeEnvelope(
  ctx: GitContext,
  ns: Exclude<Namespace, 'consumed'>,
  id: string,
  envelope: Envelope,
  message: string,
  author: Author,
  opts: { createOnly?: boolean } = {},
): Promise<string> {
  const ref = refFor(ns, id);
  const old = await runGit(ctx, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], {
    allowFail: true,
  });
  const oldSha = old.code === 0 ? old.stdout.toString().trim() : null;
  if (oldSha && opts.createOnly) {
    throw new BreakglassError('USAGE', `${ref} already exists`);
  }
  const blob = await gitText(ctx, ['hash-object', '-w', '--stdin'], {
    input: serializeEnvelope(envelope),
  });
  const tree = await gitText(ctx, ['mktree'], {
    input: `100644 blob ${blob}\t${ENVELOPE_FILE[ns]}\n`,
  });
  const env = {
    ...(ctx.env ?? process.env),
    GIT_AUTHOR_NAME: author.name,
    GIT_AUTHOR_EMAIL: author.email,
    GIT_COMMITTER_NAME: author.name,
    GIT_COMMITTER_EMAIL: author.email,
  };
  const commit = await gitText({ ...ctx, env }, [
    'commit-tree',
    tree,
    ...(oldSha ? ['-p', oldSha] : []),
    '-m',
    message,
  ]);
  const r = await runGit(ctx, ['update-ref', '-m', message, ref, commit, oldSha ?? ZERO], {
    allowFail: true,
  });
  if (r.code !== 0) {
    throw new BreakglassError('GIT_FAILED', `${ref} changed while writing; fetch and try again`, {
      hint: r.stderr.trim(),
    });
  }
  return commit;
}
