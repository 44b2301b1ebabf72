import { CatFileBatch, runGit, type GitContext } from './git.ts';

/**
 * Reading git notes in bulk. A notes tree maps a commit id to a blob, at a path split into
 * two-hex-digit directories ("fanout") that git rebalances as the tree grows, possibly mixed.
 * We walk the tree level by level through one `git cat-file --batch` process instead of asking
 * `git notes show` once per commit.
 */

export const DEFAULT_NOTES_REF = 'refs/notes/breakglass';

interface TreeEntry {
  readonly mode: string;
  readonly oid: string;
}

/** Parses a raw tree object (`<mode> <name>\0<raw id>` repeated) into name -> entry. */
export function parseTreeObject(data: Buffer, rawIdLength: number): Map<string, TreeEntry> {
  const entries = new Map<string, TreeEntry>();
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    const nul = data.indexOf(0, sp + 1);
    if (sp < 0 || nul < 0 || nul + 1 + rawIdLength > data.length) break;
    const mode = data.toString('latin1', i, sp);
    const name = data.toString('latin1', sp + 1, nul);
    entries.set(name, { mode, oid: data.toString('hex', nul + 1, nul + 1 + rawIdLength) });
    i = nul + 1 + rawIdLength;
  }
  return entries;
}

/** Current object id of each ref that exists (one `git for-each-ref`). */
export async function readRefTips(
  ctx: GitContext,
  refs: readonly string[],
): Promise<Map<string, string>> {
  const tips = new Map<string, string>();
  if (refs.length === 0) return tips;
  const wanted = new Set(refs);
  const r = await runGit(ctx, ['for-each-ref', '--format=%(objectname) %(refname)', ...wanted]);
  for (const line of r.stdout.toString('utf8').split('\n')) {
    const sp = line.indexOf(' ');
    if (sp > 0 && wanted.has(line.slice(sp + 1))) tips.set(line.slice(sp + 1), line.slice(0, sp));
  }
  return tips;
}

/** Which of `ids` name commits present in the repository (one `git cat-file --batch-check`). */
export async function commitsPresent(
  ctx: GitContext,
  ids: readonly string[],
): Promise<Set<string>> {
  const present = new Set<string>();
  if (ids.length === 0) return present;
  const r = await runGit(ctx, ['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
    input: ids.join('\n') + '\n',
  });
  const lines = r.stdout.toString('utf8').split('\n');
  ids.forEach((id, k) => {
    if (lines[k] === `${id} commit`) present.add(id);
  });
  return present;
}

/**
 * The notes that `notesCommit` holds for `commits`, as raw bytes (a note written by someone
 * else need not be UTF-8). Commits without a note are absent from the map.
 */
export async function readNotesFor(
  ctx: GitContext,
  notesCommit: string | null | undefined,
  commits: readonly string[],
): Promise<Map<string, Buffer>> {
  const notes = new Map<string, Buffer>();
  if (!notesCommit || commits.length === 0) return notes;
  const batch = new CatFileBatch(ctx);
  try {
    const root = await batch.read(`${notesCommit}^{tree}`);
    if (!root || root.type !== 'tree') return notes;
    const rawIdLength = root.sha.length / 2;
    const trees = new Map([[root.sha, parseTreeObject(root.data, rawIdLength)]]);
    const blobs: { commit: string; oid: string }[] = [];
    // Each pending lookup: which commit, in which tree, how many hex digits the path consumed.
    let frontier = [...new Set(commits)].map((commit) => ({ commit, tree: root.sha, used: 0 }));
    while (frontier.length) {
      const missing = [...new Set(frontier.map((f) => f.tree))].filter((t) => !trees.has(t));
      const read = await Promise.all(missing.map((t) => batch.read(t)));
      read.forEach((o, k) => {
        trees.set(
          missing[k]!,
          o?.type === 'tree' ? parseTreeObject(o.data, rawIdLength) : new Map(),
        );
      });
      const next: typeof frontier = [];
      for (const f of frontier) {
        const entries = trees.get(f.tree)!;
        const rest = f.commit.slice(f.used);
        const leaf = entries.get(rest);
        if (leaf && leaf.mode !== '40000') {
          blobs.push({ commit: f.commit, oid: leaf.oid });
          continue;
        }
        const dir = rest.length > 2 ? entries.get(rest.slice(0, 2)) : undefined;
        if (dir?.mode === '40000') next.push({ commit: f.commit, tree: dir.oid, used: f.used + 2 });
      }
      frontier = next;
    }
    // Commits annotated by one push share one blob: read each blob once.
    const oids = [...new Set(blobs.map((b) => b.oid))];
    const objects = await Promise.all(oids.map((oid) => batch.read(oid)));
    const byOid = new Map(oids.map((oid, k) => [oid, objects[k]]));
    for (const b of blobs) {
      const o = byOid.get(b.oid);
      if (o?.type === 'blob') notes.set(b.commit, o.data);
    }
    return notes;
  } finally {
    batch.close();
  }
}

/** The note `notesRef` holds for one commit, as text, or undefined. */
export async function readNote(
  ctx: GitContext,
  commit: string,
  notesRef: string = DEFAULT_NOTES_REF,
): Promise<string | undefined> {
  const tip = (await readRefTips(ctx, [notesRef])).get(notesRef);
  const notes = await readNotesFor(ctx, tip, [commit]);
  return notes.get(commit)?.toString('utf8');
}

/**
 * Every note under `notesRef` (commit id and raw bytes), read with one `ls-tree` and one
 * `cat-file --batch`, yielded in chunks so a large history needn't sit in memory at once.
 */
export async function* iterateNotes(
  ctx: GitContext,
  notesRef: string = DEFAULT_NOTES_REF,
  chunk = 2000,
): AsyncGenerator<{ commit: string; note: Buffer }> {
  const tip = (await readRefTips(ctx, [notesRef])).get(notesRef);
  if (!tip) return;
  const listing = (await runGit(ctx, ['ls-tree', '-r', '-z', tip])).stdout.toString('latin1');
  const entries: { commit: string; oid: string }[] = [];
  for (const line of listing.split('\0')) {
    const m = /^\d+ blob ([0-9a-f]+)\t([0-9a-f/]+)$/.exec(line);
    const commit = m?.[2]!.replace(/\//g, '');
    if (m && commit!.length === m[1]!.length) entries.push({ commit: commit!, oid: m[1]! });
  }
  const batch = new CatFileBatch(ctx);
  try {
    for (let i = 0; i < entries.length; i += chunk) {
      const part = entries.slice(i, i + chunk);
      const objects = await Promise.all(part.map((e) => batch.read(e.oid)));
      for (let k = 0; k < part.length; k++) {
        const o = objects[k];
        if (o?.type === 'blob') yield { commit: part[k]!.commit, note: o.data };
      }
    }
  } finally {
    batch.close();
  }
}
