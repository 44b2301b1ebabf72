/**
 * One error base with a stable code. Tests assert on `code`; the message is a sentence a
 * person can act on, and `hint` (optional) says what would make the input acceptable.
 */
export const ERROR_CODES = [
  // input shape
  'INPUT_TOO_LARGE',
  'ENVELOPE_MALFORMED',
  'PAYLOAD_TYPE',
  'PAYLOAD_MALFORMED',
  'VERSION_UNSUPPORTED',
  'TIME_INVALID',
  'DURATION_INVALID',
  'KEY_INVALID',
  'REF_INVALID',
  // authenticity
  'SIGNATURE_INVALID',
  'REQUESTER_SIGNATURE_MISSING',
  'REQUESTER_ROLE',
  'APPROVALS_MISSING',
  'SELF_APPROVAL',
  'APPROVER_ROLE',
  'PRINCIPAL_UNKNOWN',
  // authorisation
  'REPOSITORY_MISMATCH',
  'SCOPE_REF',
  'SCOPE_ACTION',
  'SCOPE_COMMIT',
  'TICKET_NOT_YET_VALID',
  'TICKET_EXPIRED',
  'TTL_TOO_LONG',
  'TICKET_REVOKED',
  'TICKET_USED_UP',
  'HOLDER_MISMATCH',
  'TICKET_REQUIRED',
  'TICKET_NOT_FOUND',
  'TICKET_REF_INVALID',
  'REVOCATION_INVALID',
  'REVIEW_INVALID',
  'NAMESPACE_VIOLATION',
  'PUSH_OPTION_INVALID',
  // configuration and environment
  'POLICY_INVALID',
  'POLICY_MISSING',
  'KEY_MISSING',
  'KEY_EXISTS',
  'GIT_FAILED',
  'HOOK_FAILED',
  'USAGE',
  'INTERNAL',
  'JOURNAL_UNAVAILABLE',
  // the server can't record a break-glass push now (E4): new ones are refused
  'RECORDING_BROKEN',
  // server: a ref keeps the recorder from writing notes or use records (E3, N10)
  'RECORDING_BLOCKED',
  // CLI
  'ALREADY_APPROVED',
  // GitHub Action
  'GITHUB_API',
  'GITHUB_PERMISSION',
  'GITHUB_RATE_LIMIT',
  // audit evidence
  'AUDIT_RECORD_INVALID',
  // server: an update through a symbolic ref whose target is protected or guarded (TM9)
  'SYMBOLIC_REF',
  // server: a pushed .breakglass/policy.yml that would not load, or would lock the repository
  'PUSHED_POLICY_INVALID',
  'POLICY_LOCKOUT',
  // a ticket asking for more uses than the policy's tickets.maxUses
  'USES_TOO_MANY',
  // OpenSSH signatures (docs/rules.md S1-S6)
  'SSHSIG_MALFORMED',
  'SSHSIG_NAMESPACE',
  'SSHSIG_HASH',
  'SSHSIG_KEY_MISMATCH',
  'USER_PRESENCE_REQUIRED',
  // a git push certificate that does not vouch for this push (issue 14 part 2 groundwork)
  'PUSH_CERT_INVALID',
  'PUSH_CERT_REQUIRED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class BreakglassError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BreakglassError';
    this.code = code;
    this.hint = options.hint;
  }
}

/** True for our own coded errors (the ones a user can act on). */
export function isBreakglassError(e: unknown): e is BreakglassError {
  return e instanceof BreakglassError;
}
