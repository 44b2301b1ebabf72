import { BreakglassError } from '../errors.ts';
import { dearmourSshSig, signatureForm, verifySshSig } from '../ticket/sshsig.ts';
import type { PushCertCheck } from '../engine/evaluate.ts';
import type { TrustedKeys } from '../ticket/verify.ts';

/**
 * git push certificates (`git push --signed`, gpg.format=ssh; git's pack-protocol "push-cert"),
 * issue 14 part 2 (docs/rules.md PC1-PC4). Pure: the hook reads the blob named
 * by GIT_PUSH_CERT and hands the bytes here; the engine applies the verdict (PC4).
 */

/** git signs push certificates (like commits and tags) in the namespace `git`. */
export const PUSH_CERT_NAMESPACE = 'git';
/** A certificate is a few header lines and one line per ref: bounded like a ticket envelope. */
export const MAX_PUSH_CERT_BYTES = 64 * 1024;

export interface PushCertUpdate {
  readonly oldSha: string;
  readonly newSha: string;
  readonly ref: string;
}

export interface PushCert {
  readonly pusher: string;
  readonly pushee: string;
  readonly nonce: string;
  readonly pushOptions: readonly string[];
  readonly updates: readonly PushCertUpdate[];
  /** The bytes the signature covers: everything before the armoured signature. */
  readonly signed: Buffer;
  /** The SSHSIG blob inside the armour. */
  readonly signature: Buffer;
}

function invalid(message: string): never {
  throw new BreakglassError('PUSH_CERT_INVALID', `push certificate: ${message}`);
}

const SIG_BEGIN = '-----BEGIN SSH SIGNATURE-----\n';
const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * PC1: parses a certificate strictly: `certificate version 0.1`, then pusher, pushee, nonce and
 * push-option header lines in git's order, a blank line, at least one `<old> <new> <ref>` line,
 * then exactly one armoured SSH signature and nothing after it.
 */
export function parsePushCert(bytes: Buffer): PushCert {
  if (bytes.length > MAX_PUSH_CERT_BYTES) {
    throw new BreakglassError(
      'INPUT_TOO_LARGE',
      `push certificate is ${bytes.length} bytes; the limit is ${MAX_PUSH_CERT_BYTES}`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    invalid('not valid UTF-8');
  }
  const at = text.indexOf(SIG_BEGIN);
  if (at < 0 || (at > 0 && text[at - 1] !== '\n')) invalid('no SSH signature (gpg.format=ssh)');
  if (text.indexOf(SIG_BEGIN, at + 1) >= 0) invalid('more than one signature');
  const body = text.slice(0, at);
  const signature = dearmourSshSig(text.slice(at));
  const lines = body.split('\n');
  if (lines.pop() !== '') invalid('does not end its lines with a newline');
  let i = 0;
  const header = (name: string): string => {
    const line = lines[i] ?? '';
    if (!line.startsWith(`${name} `))
      invalid(`expected a "${name}" line, got "${line.slice(0, 40)}"`);
    i++;
    return line.slice(name.length + 1);
  };
  if (header('certificate') !== 'version 0.1') invalid('version is not 0.1');
  const pusher = header('pusher');
  const pushee = header('pushee');
  const nonce = header('nonce');
  const pushOptions: string[] = [];
  while ((lines[i] ?? '').startsWith('push-option ')) pushOptions.push(header('push-option'));
  if (lines[i] !== '') invalid('no blank line after the header');
  i++;
  const updates: PushCertUpdate[] = [];
  for (; i < lines.length; i++) {
    const m = /^(\S+) (\S+) (\S+)$/.exec(lines[i]!);
    if (!m || !SHA.test(m[1]!) || !SHA.test(m[2]!)) {
      invalid(`"${lines[i]!.slice(0, 60)}" is not "<old> <new> <ref>"`);
    }
    updates.push({ oldSha: m[1]!, newSha: m[2]!, ref: m[3]! });
  }
  if (updates.length === 0) invalid('names no ref update');
  return {
    pusher,
    pushee,
    nonce,
    pushOptions,
    updates,
    signed: Buffer.from(body, 'utf8'),
    signature,
  };
}

/**
 * PC2: the certificate's SSH signature, in namespace `git`, verifies under a key the policy
 * trusts; returns its owner. The embedded key decides (S4); anything else is PUSH_CERT_INVALID.
 */
export function verifyPushCert(
  cert: PushCert,
  trusted: TrustedKeys,
): { principal: string; keyid: string } {
  const form = signatureForm(cert.signature);
  if (form.kind !== 'sshsig') invalid('the signature is not an SSH signature');
  const sig = form.sig;
  if (sig.namespace !== PUSH_CERT_NAMESPACE) {
    invalid(`signed in namespace "${sig.namespace.slice(0, 40)}", not "git"`);
  }
  if (sig.hashAlgorithm !== 'sha512')
    invalid(`hash "${sig.hashAlgorithm.slice(0, 20)}" is not sha512`);
  const owner = trusted.get(sig.publicKey.keyid);
  if (!owner) invalid(`signed by ${sig.publicKey.keyid}, a key the policy does not list`);
  if (!verifySshSig(sig, owner.key, cert.signed, PUSH_CERT_NAMESPACE)) {
    invalid('the signature does not verify (the certificate was changed after signing)');
  }
  return { principal: owner.principal, keyid: owner.key.keyid };
}

/**
 * PC3: the certificate vouches for exactly this push: the same update lines as pre-receive's
 * stdin (as a set: git lists them in its own order), and a nonce git says is fresh (`OK`).
 */
export function checkPushCertMatches(
  cert: PushCert,
  updates: readonly PushCertUpdate[],
  nonceStatus: string | undefined,
): void {
  if (nonceStatus !== 'OK') {
    invalid(
      `nonce status is "${(nonceStatus ?? 'unset').slice(0, 20)}", not OK (a replayed certificate, or receive.certNonceSeed is not set)`,
    );
  }
  const key = (u: PushCertUpdate) => `${u.oldSha} ${u.newSha} ${u.ref}`;
  const a = new Set(cert.updates.map(key));
  const b = new Set(updates.map(key));
  if (a.size !== b.size || [...a].some((x) => !b.has(x))) {
    invalid('its ref updates differ from the ones pushed');
  }
}

/**
 * PC1-PC3 in one verdict for the engine (PC4): who signed this push, or why the certificate
 * does not count. Never throws for a bad certificate.
 */
export function checkPushCert(
  bytes: Buffer,
  trusted: TrustedKeys,
  updates: readonly PushCertUpdate[],
  nonceStatus: string | undefined,
): PushCertCheck {
  try {
    const cert = parsePushCert(bytes);
    const signer = verifyPushCert(cert, trusted);
    checkPushCertMatches(cert, updates, nonceStatus);
    return signer;
  } catch (e) {
    if (e instanceof BreakglassError) return { error: e.message };
    throw e;
  }
}
