import { basename } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import pkg from '../../package.json' with { type: 'json' };
import { commands } from './commands.ts';
import { reportError, UsageError } from './exit.ts';
import { processOutput } from './output.ts';

/**
 * Runs bg-sign with the given arguments and returns the exit code: 0 success, 1 denied or
 * invalid (handlers set process.exitCode), 2 usage error.
 */
export async function main(args: readonly string[], invokedAs: string): Promise<number> {
  // Installed as git-breakglass, it runs as `git breakglass ...`; say so in usage lines.
  const scriptName = invokedAs.startsWith('git-breakglass') ? 'git breakglass' : 'bg-sign';
  let command: string | undefined;
  const known = new Set(commands.map((c) => String(c.command).split(' ')[0]));
  try {
    const parser = yargs([...args])
      .scriptName(scriptName)
      .usage(
        '$0 <command> [options]\n\nControlled, audited emergency access to protected Git branches.',
      )
      .option('verbose', {
        type: 'boolean',
        default: false,
        global: true,
        describe: 'say which policy, key and remote are used',
      })
      .middleware((argv) => {
        const first = argv._[0];
        command = typeof first === 'string' && known.has(first) ? first : undefined;
      }, true)
      .command([...commands])
      // `bg-sign completion` prints a bash script (zsh when $SHELL is zsh); docs/install.md.
      .completion(
        'completion',
        'Print a bash/zsh completion script (bg-sign completion >> ~/.bashrc)',
      )
      .demandCommand(1, 'name a command')
      .strict()
      .help()
      .alias('help', 'h')
      .version(pkg.version)
      .wrap(Math.min(100, process.stdout.columns || 100))
      .epilogue('Exit codes: 0 success, 1 denied or invalid, 2 usage error. Docs: README.md')
      .fail((msg, err) => {
        // Errors thrown by handlers arrive here too: pass them on untouched.
        if (err) throw err;
        throw new UsageError(msg || 'invalid usage');
      });
    await parser.parseAsync();
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    return reportError(e, processOutput(process.env), process.env, [scriptName, command]);
  }
}

// `bg-sign list | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const code = await main(hideBin(process.argv), basename(process.argv[1] ?? 'bg-sign'));
process.exitCode = code;
