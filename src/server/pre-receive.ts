import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decidePush, type Candidate, type PushDecision } from '../engine/decide.ts';
import { countedApprovers, type Failure, type Pusher } from '../engine/evaluate.ts';
import { ZERO_SHA } from '../engine/update.ts';
import { BreakglassError, isBreakglassError } from '../errors.ts';
import { CatFileBatch, type GitContext } from '../git/git.ts';
import { parseBreakglassRef } from '../git/store.ts';
import { protectionFor, type Policy } from '../policy/policy.ts';
import { formatTime } from '../ticket/time.ts';
import type { VerifiedTicket } from '../ticket/verify.ts';
import { gatherCandidates } from './candidates.ts';
import { classifyUpdates, type ClassifiedUpdate } from './classify.ts';
import { DEFAULT_TIMEOUT_MS, readServerConfig } from './config.ts';
import { pusherFor, resolveLogin, type ResolvedLogin } from './identity.ts';
import {
  newEntryName,
  releaseUse,
  removePending,
  reserveUse,
  writePending,
  type JournalEntry,
  type PendingEvent,
  type Reservation,
} from './journal.ts';
import { checkNamespaceUpdate, isGuardedRef } from './namespace.ts';
import { loadServerPolicy, parsePolicyBytes, POLICY_PATH } from './policy-source.ts';
import {
  parsePushOptions,
  parseUpdateLines,
  readBounded,
  type HookInput,
  type UpdateLine,
} from './push-input.ts';
import { forgeOrigin } from './forge.ts';
import { formatBanner, formatRefFailures, formatRejectedUpdate, oneLine } from './report.ts';
import { symbolicTargets } from './symref.ts';

/** Where the hook writes; git relays both to the pusher as `remote: ...`. */
export interface Sink {
  write(chunk: string): unknown;
}

export interface PreReceiveOptions {
  /** The repository (`$GIT_DIR`). */
  readonly gitDir: string;
  /** The hook's whole environment: quarantine variables, push options, pusher identity. */
  readonly env: NodeJS.ProcessEnv;
  /** The hook's stdin: `<old> <new> <ref>` lines. */
  readonly stdin: HookInput;
  /** Reference time, taken once at the edge. */
  readonly now: number;
  readonly stdout: Sink;
  readonly stderr: Sink;
  /** Watchdog; default `git config breakglass.timeout`, else 20 s. */
  readonly timeoutMs?: number;
  /** Names the server in audit notes (`pre-receive@<host>`); default os.hostname(). */
  readonly hostname?: string;
}

const TAG = 'git-breakglass';
/** Largest git object pre-receive reads (commit messages may be long; ours are KiBs). */
export const MAX_HOOK_OBJECT_BYTES = 16 * 1024 * 1024;

/** Shared between the decision and the watchdog: once aborted, nothing more is committed. */
class Run {
  aborted = false;
  constructor(private readonly o: PreReceiveOptions) {}
  out(lines: readonly string[]): void {
    if (!this.aborted && lines.length) this.o.stdout.write(lines.join('\n') + '\n');
  }
  err(lines: readonly string[]): void {
    if (!this.aborted && lines.length) this.o.stderr.write(lines.join('\n') + '\n');
  }
}

function describePusher(login: ResolvedLogin, pusher: Pusher): string {
  if (!pusher.known) return 'unknown (breakglass.identity=none)';
  const via = login.source === 'unix' ? 'unix user' : login.source;
  return `${pusher.login} (${pusher.principal ? `principal ${pusher.principal}` : 'no principal in the policy'}, from ${via})`;
}

/** Rejects every update with one reason (fail closed). */
function rejectAll(run: Run, lines: readonly UpdateLine[], e: BreakglassError): number {
  run.err([
    `${TAG}: push rejected: ${e.code}: ${oneLine(e.message, 500)}`,
    ...(e.hint ? [`  fix: ${oneLine(e.hint, 500)}`] : []),
    ...lines.slice(0, 20).map((l) => `  ${l.ref}: rejected`),
    ...(lines.length > 20 ? [`  ... and ${lines.length - 20} more`] : []),
  ]);
  return 1;
}

/** Rejects the push for refs that are refused outright, each with its own failure and fix. */
function rejectRefs(
  run: Run,
  refused: readonly (Failure & { readonly ref: string; readonly fix: string })[],
): number {
  run.err([
    `${TAG}: push rejected`,
    ...refused.flatMap(({ ref, fix, ...f }) => formatRefFailures(ref, [f], fix)),
  ]);
  return 1;
}

/**
 * First push into an empty repository with no pinned policy (trust on first push, as with the
 * repository itself): accepted when it creates the default branch and that branch carries a
 * valid `.breakglass/policy.yml`; from then on that policy governs. Break-glass refs can't ride
 * along: there is nothing to authorise them against yet.
 */
async function bootstrap(
  run: Run,
  reader: CatFileBatch,
  defaultRef: string,
  lines: readonly UpdateLine[],
): Promise<number> {
  const def = lines.find((l) => l.ref === defaultRef && !ZERO_SHA.test(l.newSha));
  // A server whose HEAD names another branch than the one pushed (gitolite and older git create
  // repositories on master): the fix is on the server's HEAD, not in the push.
  const other = lines.find((l) => l.ref.startsWith('refs/heads/') && !ZERO_SHA.test(l.newSha));
  const hint =
    !def && other
      ? `this push creates ${other.ref}, but the server's default branch (HEAD) is ${defaultRef}: on the server run "git --git-dir GIT_DIR symbolic-ref HEAD ${other.ref}" (and "git config --global init.defaultBranch ${other.ref.slice('refs/heads/'.length)}" as the account that creates repositories), or push ${defaultRef} instead`
      : `push ${defaultRef} first, with a valid ${POLICY_PATH} (or pin one on the server: bg-sign install-hooks GIT_DIR --policy FILE)`;
  if (!def) {
    return rejectAll(
      run,
      lines,
      new BreakglassError(
        'POLICY_MISSING',
        `this repository is empty and has no policy; the first push must create ${defaultRef} (the default branch) with ${POLICY_PATH}`,
        { hint },
      ),
    );
  }
  const blob = await reader.read(`${def.newSha}:${POLICY_PATH}`);
  let policy: Policy;
  try {
    if (!blob || blob.type !== 'blob') {
      throw new BreakglassError('POLICY_MISSING', `${defaultRef} as pushed has no ${POLICY_PATH}`, {
        hint,
      });
    }
    policy = parsePolicyBytes(blob.data, `${POLICY_PATH} (pushed ${defaultRef})`);
    // TM6: a policy that leaves its own branch open could be rewritten by any later push.
    if (!protectionFor(policy, defaultRef)) {
      throw new BreakglassError(
        'POLICY_INVALID',
        `${POLICY_PATH} (pushed ${defaultRef}) does not protect ${defaultRef}, the branch it is read from`,
        { hint: `add ${defaultRef} to a protected[].refs entry` },
      );
    }
  } catch (e) {
    if (!isBreakglassError(e)) throw e;
    return rejectAll(run, lines, e);
  }
  const guarded = lines.filter((l) => isGuardedRef(l.ref));
  if (guarded.length) {
    run.err([
      `${TAG}: push rejected`,
      ...guarded.flatMap((l) =>
        formatRefFailures(l.ref, [
          {
            code: 'NAMESPACE_VIOLATION',
            rule: 'N0',
            message: 'break-glass refs can only follow once the repository has a policy',
          },
        ]),
      ),
    ]);
    return 1;
  }
  run.out([
    `${TAG}: bootstrap: this empty repository adopts the policy in ${defaultRef} (${def.newSha.slice(0, 12)}) for repository ${policy.repository};`,
    `  from now on its protected refs need a ticket or a listed pusher.`,
  ]);
  return 0;
}

function pusherName(pusher: Pusher): string {
  if (!pusher.known) return 'unknown';
  if (!pusher.principal || pusher.principal === pusher.login) return pusher.login;
  return `${pusher.principal} (${pusher.login})`;
}

/** The journal event for one accepted break-glass update. */
function pendingEvent(
  u: ClassifiedUpdate,
  ticketId: string,
  actions: PendingEvent['actions'],
  ticket: VerifiedTicket,
  policy: Policy,
  pusher: Pusher,
): PendingEvent {
  const p = ticket.payload;
  const keyOf = (name: string) => ticket.signers.find((s) => s.principal === name)?.keyid ?? '';
  return {
    ticket: ticketId,
    ref: u.ref,
    oldSha: u.oldSha,
    newSha: u.newSha,
    kind: u.kind,
    actions,
    commits: u.newCommits,
    pusher: pusherName(pusher),
    requester: { principal: p.requester, keyid: keyOf(p.requester) },
    approvers: countedApprovers(ticket, policy).map((a) => ({ principal: a, keyid: keyOf(a) })),
    reason: p.reason,
    ...(p.incident ? { incident: p.incident } : {}),
    window: { notBefore: p.notBefore, expiresAt: p.expiresAt },
  };
}

type LoadedCandidate = Extract<Candidate, { ticket: unknown }>;

/**
 * Reserves one use per ticket and journals the accepted events. Returns the failure to report
 * when a concurrent push took the last use (nothing is left behind then).
 */
async function commitUses(
  run: Run,
  o: PreReceiveOptions,
  decision: PushDecision,
  candidates: readonly Candidate[],
  classified: readonly ClassifiedUpdate[],
  policy: Policy,
  pusher: Pusher,
): Promise<Failure | null> {
  const name = newEntryName(o.now);
  const reservations: Reservation[] = [];
  const rollback = async () => {
    for (const r of reservations) await releaseUse(o.gitDir, r);
    await removePending(o.gitDir, name);
  };
  try {
    for (const id of decision.ticketsUsed) {
      const c = candidates.find((x): x is LoadedCandidate => x.id === id && 'ticket' in x)!;
      if (run.aborted) throw new BreakglassError('HOOK_FAILED', 'timed out');
      const slot = await reserveUse(o.gitDir, id, c.ticket.payload.maxUses, name, o.now);
      if (slot === null) {
        await rollback();
        return {
          code: 'TICKET_USED_UP',
          rule: 'T13',
          message: `ticket ${id}: all ${c.ticket.payload.maxUses} use(s) were taken by other pushes a moment ago`,
        };
      }
      reservations.push({ ticket: id, slot });
    }
    const events = decision.updates.flatMap((d) => {
      if (d.path !== 'breakglass') return [];
      const c = candidates.find((x): x is LoadedCandidate => x.id === d.ticketId && 'ticket' in x)!;
      const u = classified.find((x) => x.ref === d.update.ref)!;
      return [pendingEvent(u, d.ticketId!, [...d.actions], c.ticket, policy, pusher)];
    });
    const entry: JournalEntry = {
      version: 1,
      name,
      createdAt: formatTime(o.now),
      createdAtMs: o.now,
      recordedBy: `pre-receive@${o.hostname ?? os.hostname()}`,
      events,
      reservations,
    };
    await writePending(o.gitDir, entry);
    if (run.aborted) throw new BreakglassError('HOOK_FAILED', 'timed out');
    return null;
  } catch (e) {
    await rollback().catch(() => {});
    if (isBreakglassError(e)) throw e;
    // S7: no durable record, no break-glass push (a full disk, a file where the journal should be).
    throw new BreakglassError(
      'JOURNAL_UNAVAILABLE',
      `could not reserve the ticket use and journal the push under ${o.gitDir}/breakglass: ${e instanceof Error ? e.message : String(e)}`,
      { hint: 'the server admin must make $GIT_DIR/breakglass writable (disk space, permissions)' },
    );
  }
}

async function decide(run: Run, o: PreReceiveOptions, setTimeoutMs: (ms: number) => void) {
  const ctx: GitContext & { gitDir: string } = { gitDir: o.gitDir, env: o.env };
  const lines = parseUpdateLines(await readBounded(o.stdin));
  if (lines.length === 0) return 0;
  // Start the object reader while git config runs: two process start-ups overlap.
  // TM12: pushed objects are untrusted; the hook never needs one this big (envelopes and
  // policies are capped at 64 KiB), so a huge ticket.json is refused without being buffered.
  const reader = new CatFileBatch(ctx, { maxObjectBytes: MAX_HOOK_OBJECT_BYTES });
  try {
    const config = await readServerConfig(ctx);
    if (o.timeoutMs === undefined) setTimeoutMs(config.timeoutMs);
    let optionIds: string[];
    try {
      optionIds = parsePushOptions(o.env);
    } catch (e) {
      if (!isBreakglassError(e)) throw e;
      return rejectAll(run, lines, e);
    }
    // N9 (TM16): a replace ref makes git show another object in place of any commit, tree or
    // blob (a protected branch's history, the policy, a note) to every reader that honours them.
    // The hook itself never does (--no-replace-objects), but reviewers' `git log` would.
    const replaced = lines.filter((l) => l.ref.startsWith('refs/replace/'));
    if (replaced.length) {
      return rejectRefs(
        run,
        replaced.map((l) => ({
          ref: l.ref,
          code: 'NAMESPACE_VIOLATION',
          rule: 'N9',
          message:
            'replace refs would change what every reader sees as the history and content of protected branches',
          fix: 'replace refs are not accepted by push; a server admin can create one on the server',
        })),
      );
    }
    const load = await loadServerPolicy(ctx, reader, config.policyFile);
    if (load.kind === 'error') return rejectAll(run, lines, load.error);
    if (load.kind === 'bootstrap') return await bootstrap(run, reader, load.defaultRef, lines);
    const { policy } = load;
    const login = resolveLogin(o.env, config.identity);
    const pusher = pusherFor(login, policy);

    // TM9: git moves a symbolic ref's target; judge the alias by it. An alias of a protected or
    // guarded ref is refused outright: push the real ref, where the rules apply.
    const aliases = await symbolicTargets(
      ctx,
      lines.map((l) => l.ref),
    );
    const viaAlias = lines.flatMap((l) => {
      const target = aliases.get(l.ref);
      if (target === undefined) return [];
      if (!/^refs\//.test(target) || isGuardedRef(target) || protectionFor(policy, target)) {
        return [{ ref: l.ref, target }];
      }
      return [];
    });
    if (viaAlias.length) {
      return rejectRefs(
        run,
        viaAlias.map((a) => ({
          ref: a.ref,
          code: 'SYMBOLIC_REF',
          rule: 'TM9',
          message: `${a.ref} is a symbolic ref to ${a.target} on the server; the update would move ${a.target}`,
          fix: `push ${a.target} itself`,
        })),
      );
    }

    const guarded = lines.filter((l) => isGuardedRef(l.ref));
    const protectedLines = lines.filter(
      (l) => !isGuardedRef(l.ref) && protectionFor(policy, l.ref),
    );
    // Fast path: nothing here is this tool's business.
    if (guarded.length === 0 && protectedLines.length === 0) return 0;

    const pushed = new Map(lines.map((l) => [l.ref, l]));
    const nsFailures: { ref: string; failures: Failure[] }[] = [];
    const pushedTickets = new Map<string, VerifiedTicket>();
    for (const g of guarded) {
      const r = await checkNamespaceUpdate({ policy, pusher, reader, pushed }, g);
      if (r.failures.length) nsFailures.push({ ref: g.ref, failures: r.failures });
      else if (r.ticket) pushedTickets.set(parseBreakglassRef(g.ref)!.id, r.ticket);
    }

    const classified = await classifyUpdates(ctx, protectedLines);
    const base = { policy, updates: classified, pusher, now: o.now };
    let decision = decidePush({ ...base, candidates: [] });
    let candidates: Candidate[] = [];
    let warnings: string[] = [];
    if (!decision.accepted) {
      ({ candidates, warnings } = await gatherCandidates({
        ctx,
        reader,
        policy,
        pusher,
        now: o.now,
        optionIds,
        pushed,
        pushedTickets,
      }));
      decision = decidePush({ ...base, candidates });
    }
    const header = [
      `${TAG}: policy ${load.source}; pusher ${describePusher(login, pusher)}`,
      ...warnings.map((w) => `  warning: ${oneLine(w, 500)}`),
      // A shared account (git daemon, `git@` over ssh) is no person: say how to configure that.
      ...(login.source === 'unix' && pusher.known && !pusher.principal
        ? [
            `  note: the pusher is the server's Unix user "${pusher.login}", which no principal lists in logins;`,
            '        for a shared account set: git config breakglass.identity none',
          ]
        : []),
    ];

    if (!decision.accepted || nsFailures.length) {
      run.err([
        `${TAG}: push rejected`,
        ...header,
        ...nsFailures.flatMap((f) =>
          formatRefFailures(
            f.ref,
            f.failures,
            'break-glass refs are written by bg-sign (request, approve, revoke, review); they are never rewritten or deleted',
          ),
        ),
        ...decision.updates.filter((d) => d.path === 'rejected').flatMap(formatRejectedUpdate),
      ]);
      return 1;
    }
    if (decision.ticketsUsed.length === 0) return 0;

    const lost = await commitUses(run, o, decision, candidates, classified, policy, pusher);
    if (lost) {
      run.err([`${TAG}: push rejected`, ...header, ...formatRefFailures('ticket', [lost])]);
      return 1;
    }
    run.out([
      `${TAG}: accepted`,
      ...header,
      ...decision.updates.flatMap((d) => {
        if (d.path !== 'breakglass') return [];
        const c = candidates.find(
          (x): x is LoadedCandidate => x.id === d.ticketId && 'ticket' in x,
        )!;
        const n = classified.find((x) => x.ref === d.update.ref)!.newCommits.length;
        return formatBanner(d, c, policy, o.now, n, forgeOrigin(o.env));
      }),
    ]);
    return 0;
  } finally {
    reader.close();
  }
}

// TM15: fail closed; TM14: reservations and the journal are written before the push is accepted.
/**
 * The pre-receive hook (DESIGN §6): reads every update, decides the whole push, and for a
 * break-glass push reserves the ticket's use and journals the event for post-receive. Returns
 * the exit code (0 accept, 1 reject). Fails closed: any error or a timeout rejects the push.
 */
export async function runPreReceive(o: PreReceiveOptions): Promise<number> {
  const run = new Run(o);
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  let fire: (code: number) => void = () => {};
  const timedOut = new Promise<number>((resolve) => (fire = resolve));
  let limitMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const arm = (ms: number) => {
    limitMs = ms;
    clearTimeout(timer);
    timer = setTimeout(
      () => {
        run.err([
          `${TAG}: push rejected: HOOK_FAILED: the break-glass check did not finish within ${Math.round(limitMs / 1000)}s`,
          '  fix: try again; if it keeps happening, ask the server admin (git config breakglass.timeout)',
        ]);
        run.aborted = true;
        fire(1);
      },
      Math.max(0, ms - (Date.now() - started)),
    );
  };
  arm(limitMs);
  const work = decide(run, o, arm).catch((e: unknown) => {
    const code = isBreakglassError(e) ? e.code : 'INTERNAL';
    const msg = e instanceof Error ? e.message : String(e);
    run.err([
      `${TAG}: push rejected: ${code}: ${oneLine(msg, 500)}`,
      ...(isBreakglassError(e) && e.hint ? [`  fix: ${oneLine(e.hint, 500)}`] : []),
      '  (the break-glass hook fails closed: when it cannot decide, it rejects)',
    ]);
    return 1;
  });
  try {
    const code = await Promise.race([work, timedOut]);
    if (run.aborted) {
      // Give a decision that was committing a moment to roll its reservation back.
      await Promise.race([work, sleep(1000)]);
      return 1;
    }
    return code;
  } finally {
    clearTimeout(timer);
  }
}

/** `$GIT_DIR` of a hook: git runs hooks in the repository with GIT_DIR set (often `.`). */
export function hookGitDir(env: NodeJS.ProcessEnv): string {
  return path.resolve(env.GIT_DIR ?? '.');
}
