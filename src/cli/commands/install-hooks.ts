import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { BreakglassError } from '../../errors.ts';
import { installHooks } from '../../server/install.ts';
import { EXIT } from '../exit.ts';
import { cliFor, defineCommand, jsonOption } from '../options.ts';

/**
 * The bundle this process runs from (through any symlink, e.g. /usr/local/bin/bg-sign): the hooks
 * will exec the same file. Running from the TypeScript sources has no bundle to point at.
 */
function currentBundle(): string {
  const script = process.argv[1] ? realpathSync(process.argv[1]) : '';
  if (!script || /\.(c|m)?ts$/.test(script)) {
    throw new BreakglassError(
      'USAGE',
      'run install-hooks from the built bundle, or pass --bundle',
      {
        hint: 'npm run build && node dist/bg-sign.js install-hooks GIT_DIR',
      },
    );
  }
  return script;
}

/** `bg-sign install-hooks GIT_DIR`: the server side of DESIGN §6 in one command. */
export default defineCommand({
  command: 'install-hooks <git-dir>',
  describe: 'Install the pre-receive/post-receive hooks into a (bare) server repository',
  builder: (y) =>
    y
      .positional('git-dir', {
        type: 'string',
        demandOption: true,
        describe: 'the repository, e.g. /srv/git/api.git',
      })
      .options({
        policy: {
          type: 'string',
          requiresArg: true,
          describe:
            'pin this policy file (git config breakglass.policy); it wins over the repository’s',
        },
        chain: {
          type: 'boolean',
          describe: 'keep an existing pre-/post-receive hook as <hook>.chained and run it first',
        },
        force: {
          type: 'boolean',
          describe: 'replace an existing hook (a backup copy <hook>.breakglass-backup is kept)',
        },
        bundle: {
          type: 'string',
          requiresArg: true,
          describe: 'the bg-sign bundle the hooks run (default: this one)',
        },
        node: {
          type: 'string',
          requiresArg: true,
          describe: 'the node executable the hooks run (default: this one)',
        },
        ...jsonOption,
      })
      .conflicts('chain', 'force')
      .example('$0 install-hooks /srv/git/api.git', 'policy from .breakglass/policy.yml on main')
      .example(
        '$0 install-hooks /srv/git/api.git --policy /etc/breakglass/api.yml',
        'pin a policy the server admin controls',
      )
      .example('$0 install-hooks /srv/git/api.git --chain', 'keep the hook that is already there'),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const report = await installHooks({
      gitDir: resolve(cli.cwd, argv['git-dir']),
      bundle: argv.bundle ? resolve(cli.cwd, argv.bundle) : currentBundle(),
      ...(argv.node ? { node: resolve(cli.cwd, argv.node) } : {}),
      ...(argv.policy ? { policy: resolve(cli.cwd, argv.policy) } : {}),
      chain: argv.chain === true,
      force: argv.force === true,
      env: cli.env,
    });
    const { output } = cli;
    // Installed, but break-glass pushes can't be recorded (and are refused) until fixed.
    if (report.problems.length) process.exitCode = EXIT.denied;
    if (argv.json) {
      output.json(report);
      return;
    }
    const s = output.style;
    output.out(`Installed git-breakglass hooks in ${s.bold(report.gitDir)}`);
    for (const a of report.actions) output.out(`  ${s.green('✓')} ${a}`);
    for (const w of report.warnings) output.out(`  ${s.yellow('!')} ${w}`);
    for (const p of report.problems) output.err(`  ${s.red('✗')} ${p}`);
    output.out('Pushes to protected refs now need a valid ticket: git push -o breakglass=<id> ...');
    if (report.problems.length) {
      output.err(
        'Break-glass pushes are refused (RECORDING_BLOCKED) until the problem above is fixed.',
      );
    }
  },
});
