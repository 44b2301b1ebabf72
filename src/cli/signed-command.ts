import { BreakglassError, isBreakglassError } from '../errors.ts';
import type { GitContext } from '../git/git.ts';
import type { Policy } from '../policy/policy.ts';
import {
  jsonOption,
  keyOption,
  policyOption,
  pushOption,
  remoteOption,
  type Cli,
} from './options.ts';
import { loadCommandPolicy } from './policy-source.ts';
import { openRepo, pushRefs } from './repo.ts';
import { loadSigner, type Signer } from './signer.ts';

/** The options of every command that signs something: key, policy, --push, remote, --json. */
export const signedOptions = {
  ...keyOption,
  ...policyOption,
  ...pushOption,
  ...remoteOption,
  ...jsonOption,
} as const;

export interface SignedArgs {
  readonly key?: string | undefined;
  readonly policy?: string | undefined;
  readonly remote: string;
  readonly push: boolean;
  readonly json: boolean;
}

/** What a signing command starts from: the clone, the policy and the user's key. */
export interface SigningContext {
  readonly ctx: GitContext;
  readonly policy: Policy;
  readonly signer: Signer;
}

/** What the command signed and wrote to a local ref. */
export interface Signed {
  /** The ticket it is about (`bg-sign push <id>` publishes it later). */
  readonly id: string;
  /** The ref it wrote; `--push` publishes exactly this ref. */
  readonly ref: string;
  /** What it is, for messages: "ticket", "approval", "revocation", "review". */
  readonly what: string;
  /** Its result, once it is known whether it was pushed: the JSON object, stdout and stderr lines. */
  report(pushed: boolean): Promise<SignedReport> | SignedReport;
}

export interface SignedReport {
  readonly json: object;
  readonly out: readonly string[];
  readonly err?: readonly string[];
}

/**
 * The skeleton of `request`, `approve`, `review` and `revoke`: open the clone, load the policy and
 * the signer, let `sign` check its rules and write its envelope, then `--push` it and print the
 * result as JSON or text. The result is printed before a failed push is reported, so what was
 * made locally (a new ticket's id) is never lost: a rerun would make a second one.
 */
export async function runSignedCommand(
  cli: Cli,
  argv: SignedArgs,
  sign: (s: SigningContext) => Promise<Signed>,
): Promise<void> {
  const ctx = await openRepo(cli.cwd, cli.env);
  const policy = await loadCommandPolicy(cli, ctx, argv);
  const signer = await loadSigner(cli, argv.key, policy);
  const signed = await sign({ ctx, policy, signer });
  let pushError: unknown;
  if (argv.push) {
    try {
      await pushRefs(ctx, argv.remote, [`${signed.ref}:${signed.ref}`]);
      cli.note(`pushed ${signed.ref} to ${argv.remote}`);
    } catch (e) {
      pushError = e;
    }
  }
  const pushed = argv.push && pushError === undefined;
  const report = await signed.report(pushed);
  if (argv.json) {
    cli.output.json({ ...report.json, pushed });
  } else {
    for (const line of report.out) cli.output.out(line);
    for (const line of report.err ?? []) cli.output.err(line);
  }
  const publish = `bg-sign push ${signed.id}`;
  if (pushError !== undefined) {
    if (!isBreakglassError(pushError)) throw pushError;
    throw new BreakglassError(
      pushError.code,
      `the ${signed.what} is saved locally (${signed.ref}), but ${pushError.message}`,
      { hint: `publish it once ${argv.remote} is reachable: ${publish}` },
    );
  }
  if (!argv.push && !argv.json) {
    cli.output.err(cli.output.errStyle.dim(`publish the ${signed.what} with: ${publish}`));
  }
}
