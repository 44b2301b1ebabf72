import { gitText, type GitContext } from '../../src/git/git.ts';

// At most this many changed control files are named in a message; the verdict needs only one.
const MAX_NAMED = 5;

/**
 * Git pathspecs of the files that decide how changes are judged, so a change to any of them
 * needs `change-policy` like `.breakglass/` itself: the policy directory, the workflows (the
 * check runs from them), local actions anywhere (`uses: ./path` runs that action.yml) and
 * CODEOWNERS in each place GitHub reads it.
 */
export function controlPathspecs(policyPath: string): string[] {
  const dir = policyPath.includes('/')
    ? policyPath.slice(0, policyPath.lastIndexOf('/') + 1)
    : policyPath;
  return [
    `:(literal)${dir.replace(/^\.\//, '')}`,
    ':(literal).breakglass/',
    ':(glob).github/workflows/**',
    ':(glob)**/action.yml',
    ':(glob)**/action.yaml',
    ':(literal)CODEOWNERS',
    ':(literal).github/CODEOWNERS',
    ':(literal)docs/CODEOWNERS',
  ];
}

/**
 * The control files (see controlPathspecs) that differ between `from` and `to`; `mergeBase`
 * compares against their merge base (`from...to`, what a pull request changes). Empty: none.
 */
export async function changedControlFiles(
  git: GitContext,
  from: string,
  to: string,
  policyPath: string,
  mergeBase = false,
): Promise<string[]> {
  const out = await gitText(git, [
    'diff',
    '--name-only',
    '--no-renames',
    ...(mergeBase ? [`${from}...${to}`] : [from, to]),
    '--',
    ...controlPathspecs(policyPath),
  ]);
  return out.split('\n').filter(Boolean);
}

/** A short list of changed control files for a message. */
export function nameFiles(files: readonly string[]): string {
  const shown = files.slice(0, MAX_NAMED).join(', ');
  return files.length > MAX_NAMED ? `${shown} (+${files.length - MAX_NAMED} more)` : shown;
}
