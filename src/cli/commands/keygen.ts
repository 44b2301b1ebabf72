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
        ssh: {
          type: 'boolean',
          default: false,
          describe: 'print how to use an SSH key (ssh-keygen) instead of making a key file',
        },
        ...jsonOption,
      })
      .example('$0 keygen', 'write ~/.config/breakglass/ed25519.key')
      .example('$0 keygen --out ./ci.key', 'a key for a bot, in another file')
      .example('$0 keygen --ssh', 'how to sign with an SSH key, an agent or a hardware key'),
  handler: async (argv) => {
    const cli = cliFor(argv);
    if (argv.ssh) {
      // S6: SSH keys are made and kept by OpenSSH; we only say how, and write nothing.
      const steps = sshKeySteps();
      if (argv.json) cli.output.json(steps);
      else for (const line of steps.text) cli.output.out(line);
      return;
    }
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

/** What `keygen --ssh` prints: the OpenSSH commands, the policy line and git's settings. */
function sshKeySteps(): { commands: string[]; text: string[] } {
  const commands = [
    'ssh-keygen -t ed25519 -f ~/.ssh/id_ed25519',
    'ssh-keygen -t ed25519-sk -O resident -O verify-required -f ~/.ssh/id_ed25519_sk',
    'git config --global gpg.format ssh',
    'git config --global user.signingkey ~/.ssh/id_ed25519.pub',
  ];
  return {
    commands,
    text: [
      'Use an SSH key you already have (~/.ssh/id_ed25519.pub), or make one:',
      `  ${commands[0]}`,
      'or one on a hardware key (YubiKey, touch to sign):',
      `  ${commands[1]}`,
      "Add the public key line (the .pub file's content) to your principal's keys in",
      ".breakglass/policy.yml, then either point git at it (bg-sign uses git's signing key):",
      `  ${commands[2]}`,
      `  ${commands[3]}`,
      'or pass it each time: --key ~/.ssh/id_ed25519 (private key: ssh-keygen asks for its',
      'passphrase) or --key ~/.ssh/id_ed25519.pub (the key must be in ssh-agent: ssh-add).',
    ],
  };
}
