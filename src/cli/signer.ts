import { BreakglassError } from '../errors.ts';
import type { Policy } from '../policy/policy.ts';
import type { DocumentKey } from '../ticket/keys.ts';
import { loadSigningKey } from './key-file.ts';
import type { Cli } from './options.ts';

/** The user's signing key and the policy principal it belongs to. */
export interface Signer {
  readonly key: DocumentKey;
  readonly principal: string;
}

/** Loads the key (--key, BG_SIGN_KEY, default file) and finds its owner in the policy. */
export async function loadSigner(
  cli: Cli,
  keyFlag: string | undefined,
  policy: Policy,
): Promise<Signer> {
  const { key, path, warning } = await loadSigningKey(keyFlag, cli.env, cli.cwd);
  if (warning) cli.output.err(cli.output.errStyle.yellow(`warning: ${warning}`));
  cli.note(`key: ${path} (${key.publicKey.keyid})`);
  const owner = policy.keyOwners.get(key.publicKey.keyid);
  if (!owner) {
    throw new BreakglassError(
      'PRINCIPAL_UNKNOWN',
      `key ${key.publicKey.keyid} (${path}) belongs to no principal in the policy`,
      {
        hint: `add "${key.publicKey.text}" to your principal's keys in .breakglass/policy.yml (via a reviewed change), or use --key`,
      },
    );
  }
  cli.note(`signing as ${owner.principal}`);
  return { key, principal: owner.principal };
}
