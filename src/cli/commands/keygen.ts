import { resolve } from 'node:path';
import { generateSigningKey } from '../../ticket/keys.ts';
import { defaultKeyPath, writeKeyFile } from '../key-file.ts';
import { cliFor, defineCommand, jsonOption } from '../options.ts';

/** `bg-sign keygen`: a new Ed25519 signing key, private file 0600, public line for the policy. */
export default defineCommand({
  command: 'keygen',
  describe: 'Create an Ed25519 signing key and print its policy line',
  builder: (y) =>
    y
      .options({
        out: {
          type: 'string',
          requiresArg: true,
          describe:
            'where to write the private key (default: $XDG_CONFIG_HOME/breakglass/ed25519.key)',
        },
        force: { type: 'boolean', default: false, describe: 'replace an existing key file' },
        ...jsonOption,
      })
      .example('$0 keygen', 'write ~/.config/breakglass/ed25519.key')
      .example('$0 keygen --out ./ci.key', 'a key for a bot, in another file'),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const path = argv.out ? resolve(cli.cwd, argv.out) : defaultKeyPath(cli.env);
    const key = generateSigningKey();
    await writeKeyFile(path, key, argv.force);
    const { output } = cli;
    if (argv.json) {
      output.json({ path, publicKey: key.publicKey.text, keyid: key.publicKey.keyid });
      return;
    }
    const s = output.style;
    output.out(`Wrote private key ${path} (mode 0600). Keep it secret.`);
    output.out(`Add this public key to your principal's keys in .breakglass/policy.yml:`);
    output.out(`  ${s.bold(key.publicKey.text)}`);
    output.out(`Key id: ${key.publicKey.keyid}`);
  },
});
