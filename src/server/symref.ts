import fs from 'node:fs/promises';
import path from 'node:path';
import { gitText, runGit, type GitContext } from '../git/git.ts';

/**
 * TM9: pushed ref names that are symbolic refs on the server, with their final targets. git
 * updates the target through the alias (`refs/heads/latest -> refs/heads/main`), but the hook
 * only sees the alias's name, so an alias must be judged by what it points to.
 *
 * Cheap for the usual files backend: symbolic refs are never packed, so only loose ref files
 * (or legacy symlinks) need a look, without starting a process. With reftable, git is asked.
 */
export async function symbolicTargets(
  ctx: GitContext & { gitDir: string },
  refs: readonly string[],
): Promise<Map<string, string>> {
  const suspects: string[] = [];
  const reftable = await fs
    .stat(path.join(ctx.gitDir, 'reftable'))
    .then((s) => s.isDirectory())
    .catch(() => false);
  if (reftable) {
    const out = await gitText(ctx, ['for-each-ref', '--format=%(refname) %(symref)', ...refs]);
    const wanted = new Set(refs);
    for (const line of out ? out.split('\n') : []) {
      const [name, target] = line.split(' ');
      if (name && target && wanted.has(name)) suspects.push(name);
    }
  } else {
    for (const ref of refs) {
      const file = path.join(ctx.gitDir, ref);
      let st;
      try {
        st = await fs.lstat(file);
      } catch {
        continue; // no loose ref: absent or packed, and packed refs are never symbolic
      }
      if (st.isSymbolicLink()) suspects.push(ref);
      else if (st.isFile() && st.size < 4096) {
        if ((await fs.readFile(file, 'utf8').catch(() => '')).startsWith('ref:')) {
          suspects.push(ref);
        }
      }
    }
  }
  const targets = new Map<string, string>();
  for (const ref of suspects) {
    // symbolic-ref follows chains of symbolic refs to the final name.
    const r = await runGit(ctx, ['symbolic-ref', '-q', ref], { allowFail: true });
    const target = r.stdout.toString('utf8').trim();
    // Unresolvable: name it so the caller fails closed rather than guessing.
    targets.set(ref, r.code === 0 && target ? target : '(unresolvable)');
  }
  return targets;
}
