import { settingsFromShim } from '../../engine/triage.ts';
import { runPostReceive } from '../../server/post-receive.ts';
import { hookGitDir, runPreReceive } from '../../server/pre-receive.ts';
import { defineCommand } from '../options.ts';

const HOOKS = ['pre-receive', 'post-receive'] as const;

/**
 * `bg-sign hook pre-receive|post-receive`: what the hook shims in hooks/ run. Reads git's stdin
 * and environment as they are; the exit code is the decision (pre-receive) or always 0
 * (post-receive).
 */
export default defineCommand({
  command: 'hook <which>',
  describe: 'Run a server hook (called by the installed hook shims, not by people)',
  builder: (y) =>
    y
      .positional('which', { choices: HOOKS, demandOption: true, describe: 'which hook' })
      .option('git-config', {
        type: 'string',
        hidden: true,
        describe: "the shim's `git config --get-regexp '^breakglass\\.'` output and exit status",
      })
      .example('$0 hook pre-receive < updates', 'decide a push (in a server repository)')
      .example('$0 hook post-receive < updates', 'record the pending break-glass events'),
  handler: async (argv) => {
    const { which, gitConfig } = argv as unknown as {
      which: (typeof HOOKS)[number];
      gitConfig?: string;
    };
    // The settings the shim read (engine/triage.ts); unusable or absent, the hook asks git.
    const settings = gitConfig === undefined ? null : settingsFromShim(gitConfig);
    const common = {
      gitDir: hookGitDir(process.env),
      env: process.env,
      stdin: process.stdin,
      now: Date.now(),
      stdout: process.stdout,
      stderr: process.stderr,
    };
    const code =
      which === 'pre-receive'
        ? await runPreReceive({ ...common, ...(settings ? { settings } : {}) })
        : await runPostReceive(common);
    process.exitCode = code;
    // A git child stuck past the watchdog must not keep the push waiting: leave shortly after.
    setTimeout(() => process.exit(code), 2000).unref();
  },
});
