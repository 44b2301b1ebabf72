import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decidePush, type Candidate, type PushDecision } from '../engine/decide.ts';
import {
  countedApprovers,
  type Failure,
  type PushCertCheck,
  type Pusher,
} from '../engine/evaluate.ts';
import { guardOf } from '../engine/guard.ts';
import { triage, type TriageSources } from '../engine/triage.ts';
import { ZERO_SHA } from '../engine/update.ts';
import { BreakglassError, isBreakglassError } from '../errors.ts';
import { CatFileBatch, type GitContext } from '../git/git.ts';
import { parseBreakglassRef } from '../git/store.ts';
import { policyFromBytes, policyLockout, POLICY_PATH } from '../policy/load.ts';
import { protectionFor, type Policy } from '../policy/policy.ts';
import { formatTime } from '../ticket/time.ts';
import type { VerifiedTicket } from '../ticket/verify.ts';
import { gatherCandidates } from './candidates.ts';
import { classifyUpdates, type ClassifiedUpdate } from './classify.ts';
import { DEFAULT_TIMEOUT_MS, readServerSettings } from './config.ts';
import { pusherFor, resolveLogin, type ResolvedLogin } from './identity.ts';
import { existsSync, readFileSync } from 'node:fs';
import { gitText } from '../git/git.ts';
import {
  arm,
  disarm,
  newEntryName,
  recordingProblems,
  releaseUse,
  removePending,
  reserveUse,
  writePending,
  type JournalEntry,
  type PendingEvent,
  type Reservation,
} from './journal.ts';
import { broughtIn, MAX_NOTED_COMMITS } from './brought-in.ts';
import { findReceivePack, type ProcessRef } from './receive-pack.ts';
import { checkNamespaceUpdate, refsBlockingRecording } from './namespace.ts';
import { loadServerPolicy, type PolicyLoad } from './policy-source.ts';
import { readBoundedBytes, type HookInput, type UpdateLine } from './push-input.ts';
import { checkPushedPolicies } from './pushed-policy.ts';
import { forgeOrigin } from './forge.ts';
import { checkPushCert } from './push-cert.ts';
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
  /**
   * The git receive-pack running this hook (E2); default: found from this process's parent.
   * null: not provable here (the push's outcome then comes from post-receive alone).
   */
  readonly receivePack?: ProcessRef | null;
  /**
   * The `breakglass.*` settings as the hook shim read them (git's own view, handed over so the
   * hook starts no second `git config`); absent, the hook asks git.
   */
  readonly settings?: readonly (readonly [string, string])[];
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

/** E3: existing refs make the notes ref or a use record impossible to write (N10). */
function recordingBlocked(refs: readonly string[]): Failure {
  return {
    code: 'RECORDING_BLOCKED',
    rule: 'E3',
    message: `${refs.join(', ')} ${refs.length > 1 ? 'exist' : 'exists'} where git would have to create refs/notes/breakglass or this ticket's refs/breakglass/consumed/<id> (refs are paths: one cannot sit under or over another); this push could not be recorded`,
  };
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
    // TM6: a policy that leaves its own branch open could be rewritten by any later push.
    policy = policyFromBytes(blob.data, `${POLICY_PATH} (pushed ${defaultRef})`, {
      branch: defaultRef,
    });
    // L7: a first policy nobody can make a ticket under could never be changed by a push.
    const lockout = policyLockout(policy);
    if (lockout) {
      throw new BreakglassError(
        'POLICY_LOCKOUT',
        `${POLICY_PATH} (pushed ${defaultRef}): ${lockout}`,
        {
          hint: 'give a principal a key and a requester role, and enough others a key and an approver role',
        },
      );
    }
  } catch (e) {
    if (!isBreakglassError(e)) throw e;
    return rejectAll(run, lines, e);
  }
  const guarded = lines.filter((l) => guardOf(l.ref) === 'evidence');
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
  base: string[],
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
    ...(ZERO_SHA.test(u.oldSha) ? { base } : {}),
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
 * Tips of the protected refs as they are before this push (the base of a created ref, E1; a ref
 * this push creates does not exist yet, so it is not among them).
 */
async function protectedTips(ctx: GitContext, policy: Policy): Promise<string[]> {
  const out = await gitText(ctx, ['for-each-ref', '--format=%(objectname) %(refname)', 'refs/']);
  const tips = new Set<string>();
  for (const line of out ? out.split('\n') : []) {
    const sp = line.indexOf(' ');
    const ref = line.slice(sp + 1);
    if (guardOf(ref) === null && protectionFor(policy, ref)) {
      tips.add(line.slice(0, sp));
    }
  }
  return [...tips];
}

/** For each protected update of a push: what it brings into its ref, and a created ref's base. */
interface RecordingPrep {
  readonly bases: Map<string, string[]>;
  readonly lists: Map<string, string[]>;
}

/**
 * What recording a ticketed update will note (E1), asked of git once per distinct range. Started
 * while the candidate tickets are read, so its processes overlap theirs.
 */
async function prepareRecording(
  ctx: GitContext,
  classified: readonly ClassifiedUpdate[],
  policy: Policy,
): Promise<RecordingPrep> {
  const bases = new Map<string, string[]>();
  const lists = new Map<string, string[]>();
  const ranges = new Map<string, Promise<string[]>>();
  let tips: Promise<string[]> | undefined;
  for (const u of classified) {
    if (ZERO_SHA.test(u.oldSha)) {
      tips ??= protectedTips(ctx, policy);
      bases.set(u.ref, await tips);
    }
    const base = bases.get(u.ref) ?? [];
    const key = `${u.oldSha}..${u.newSha} ${base.join(' ')}`;
    if (!ranges.has(key)) ranges.set(key, broughtIn(ctx, { ...u, base }));
  }
  for (const u of classified) {
    const base = bases.get(u.ref) ?? [];
    lists.set(u.ref, await ranges.get(`${u.oldSha}..${u.newSha} ${base.join(' ')}`)!);
  }
  return { bases, lists };
}

/** The reference-transaction hook is ours (E2: it tells which updates git committed). */
function transactionHookInstalled(gitDir: string, hooksPath: string | undefined): boolean {
  const dir = hooksPath ? path.resolve(gitDir, hooksPath) : path.join(gitDir, 'hooks');
  const file = path.join(dir, 'reference-transaction');
  try {
    return existsSync(file) && readFileSync(file, 'utf8').includes('# git-breakglass hook shim');
  } catch {
    return false;
  }
}

/**
 * Whether git will tell the recorder about each update of this push (E2): our
 * reference-transaction hook is installed where git looks for hooks. Forges that run only their
 * own hook set (GitLab's Gitaly, GHES, gitolite's repo-specific hooks) have none; then an update
 * whose post-receive did not run is kept as uncertain rather than judged (fail closed).
 */
async function transactionHook(o: PreReceiveOptions, ctx: GitContext): Promise<boolean> {
  if (transactionHookInstalled(o.gitDir, undefined)) return true; // the usual place: no git
  const hooksPath = (
    await gitText(ctx, ['config', '--get', 'core.hooksPath']).catch(() => '')
  ).trim();
  return transactionHookInstalled(o.gitDir, hooksPath || undefined);
}

/** What stops this server from recording a break-glass push now (E4), as one error. */
async function recordingBroken(o: PreReceiveOptions): Promise<BreakglassError | null> {
  let problems;
  try {
    problems = await recordingProblems(o.gitDir);
  } catch (e) {
    return new BreakglassError(
      'JOURNAL_UNAVAILABLE',
      `cannot read the journal under ${o.gitDir}/breakglass: ${(e as Error).message}`,
      { hint: 'the server admin must make $GIT_DIR/breakglass readable and writable' },
    );
  }
  if (problems.length) {
    return new BreakglassError(
      'RECORDING_BROKEN',
      `the server could not record earlier break-glass pushes (${problems.length} journal problem(s): ${problems
        .slice(0, 3)
        .map((p) => `${path.relative(o.gitDir, p.file)}: ${p.why}`)
        .join(
          '; ',
        )}); new break-glass pushes are refused until they are recorded (normal pushes still work)`,
      {
        hint: 'a server admin runs `bg-sign audit flush GIT_DIR` and fixes what it reports (docs/server-setup.md, "When recording is broken")',
      },
    );
  }
  return null;
}

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
  recording: Promise<RecordingPrep>,
): Promise<{ failure: Failure } | { commits: Map<string, number>; txHook: boolean }> {
  const ctx: GitContext = { gitDir: o.gitDir, env: o.env };
  const rp = o.receivePack === undefined ? findReceivePack(process.ppid) : o.receivePack;
  const blocked = await recordingBroken(o);
  if (blocked) throw blocked;
  const txHook = rp ? await transactionHook(o, ctx) : false;

  const updates = decision.updates.filter((d) => d.path === 'breakglass');
  // E1, E5: what each update brings into its ref is what gets noted; counted here, so a push too
  // large to record whole is refused now, never accepted and then recorded in part.
  const { bases, lists } = await recording;
  const commits = new Map<string, number>();
  const distinct = new Set<string>();
  for (const d of updates) {
    const list = lists.get(d.update.ref)!;
    commits.set(d.update.ref, list.length);
    for (const c of list) distinct.add(c);
  }
  if (distinct.size > MAX_NOTED_COMMITS) {
    throw new BreakglassError(
      'INPUT_TOO_LARGE',
      `this break-glass push brings more than ${MAX_NOTED_COMMITS} commits into protected refs; at most ${MAX_NOTED_COMMITS} can be recorded with audit notes per push`,
      {
        hint: 'push the history in several smaller steps (each with the ticket, if it allows several uses), or ask for a ticket per step',
      },
    );
  }

  const name = newEntryName(o.now);
  const reservations: Reservation[] = [];
  let entry: JournalEntry | undefined;
  const rollback = async () => {
    for (const r of reservations) await releaseUse(o.gitDir, r);
    if (entry) await disarm(o.gitDir, entry);
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
          failure: {
            code: 'TICKET_USED_UP',
            rule: 'T13',
            message: `ticket ${id}: all ${c.ticket.payload.maxUses} use(s) were taken by other pushes a moment ago`,
          },
        };
      }
      reservations.push({ ticket: id, slot });
    }
    const events = updates.map((d) => {
      const c = candidates.find((x): x is LoadedCandidate => x.id === d.ticketId && 'ticket' in x)!;
      const u = classified.find((x) => x.ref === d.update.ref)!;
      return pendingEvent(
        u,
        d.ticketId!,
        [...d.actions],
        c.ticket,
        policy,
        pusher,
        bases.get(u.ref) ?? [],
      );
    });
    entry = {
      version: 1,
      name,
      createdAt: formatTime(o.now),
      createdAtMs: o.now,
      recordedBy: `pre-receive@${o.hostname ?? os.hostname()}`,
      receivePack: rp,
      ...(rp && !txHook ? { transactionHook: false } : {}),
      events,
      reservations,
    };
    await writePending(o.gitDir, entry);
    // From here git's reference-transaction hook writes down what it does with these updates.
    await arm(o.gitDir, entry);
    if (run.aborted) throw new BreakglassError('HOOK_FAILED', 'timed out');
    return { commits, txHook: txHook || !rp };
  } catch (e) {
    await rollback().catch(() => {});
    if (isBreakglassError(e)) throw e;
    // S7: no durable record, no break-glass push (a full disk, a file where the journal should be).
    throw new BreakglassError(
      'JOURNAL_UNAVAILABLE',
      `could not reserve the ticket use and journal the push under ${o.gitDir}/breakglass: ${e instanceof Error ? e.message : String(e)}`,
      {
        hint: 'the server admin must make $GIT_DIR/breakglass writable by every account that pushes (disk space, permissions, core.sharedRepository)',
      },
    );
  }
}

/** The full hook's answers to the triage (engine/triage.ts): git's, never a cache. */
function fullSources(
  o: PreReceiveOptions,
  ctx: GitContext & { gitDir: string },
  reader: CatFileBatch,
  loaded: { load?: Extract<PolicyLoad, { kind: 'policy' }> },
  setTimeoutMs: (ms: number) => void,
): TriageSources {
  return {
    settings: async () => o.settings ?? (await readServerSettings(ctx)),
    policy: async (settings) => {
      if (o.timeoutMs === undefined) setTimeoutMs(settings.timeoutMs);
      const load = await loadServerPolicy(ctx, reader, settings.policyFile);
      if (load.kind !== 'policy') return load;
      loaded.load = load;
      return { kind: 'policy', protects: (ref) => !!protectionFor(load.policy, ref) };
    },
    symbolicRefs: (refs) => symbolicTargets(ctx, refs),
  };
}

async function decide(run: Run, o: PreReceiveOptions, setTimeoutMs: (ms: number) => void) {
  const ctx: GitContext & { gitDir: string } = { gitDir: o.gitDir, env: o.env };
  const stdin = await readBoundedBytes(o.stdin);
  // Start the object reader while git config runs: two process start-ups overlap.
  // TM12: pushed objects are untrusted; the hook never needs one this big (envelopes and
  // policies are capped at 64 KiB), so a huge ticket.json is refused without being buffered.
  const reader = new CatFileBatch(ctx, { maxObjectBytes: MAX_HOOK_OBJECT_BYTES });
  try {
    const loaded: { load?: Extract<PolicyLoad, { kind: 'policy' }> } = {};
    const t = await triage(stdin, o.env, fullSources(o, ctx, reader, loaded, setTimeoutMs));
    if (t.kind === 'accept') return 0;
    if (t.kind === 'refuse') return rejectAll(run, t.lines, t.error);
    if (t.kind === 'refuse-refs') return rejectRefs(run, t.refused);
    if (t.kind === 'bootstrap') return await bootstrap(run, reader, t.defaultRef, t.lines);
    if (t.kind === 'unsure' || !loaded.load) {
      throw new BreakglassError('INTERNAL', 'the triage could not decide with git as its source');
    }
    const { lines, optionIds, guarded, protected: protectedLines } = t;
    const { policy, source } = loaded.load;
    const login = resolveLogin(o.env, t.settings.identity);
    const pusher = pusherFor(login, policy);

    const pushed = new Map(lines.map((l) => [l.ref, l]));
    const nsFailures: { ref: string; failures: Failure[] }[] = [];
    const pushedTickets = new Map<string, VerifiedTicket>();
    for (const g of guarded) {
      const r = await checkNamespaceUpdate({ policy, pusher, reader, pushed }, g);
      if (r.failures.length) nsFailures.push({ ref: g.ref, failures: r.failures });
      else if (r.ticket) pushedTickets.set(parseBreakglassRef(g.ref)!.id, r.ticket);
    }

    const classified = await classifyUpdates(ctx, protectedLines);
    // L6-L7: a pushed policy must load and leave a way to make tickets, ticket or not.
    const policyRefusals = await checkPushedPolicies(reader, classified, loaded.load.branch);
    // PC4: the push certificate is read only when the policy asks for one.
    const pushCert = policy.tickets.requireSignedPush
      ? await readPushCert(reader, o.env, policy, lines)
      : undefined;
    const base = { policy, updates: classified, pusher, now: o.now, pushCert };
    let decision = decidePush({ ...base, candidates: [] });
    let candidates: Candidate[] = [];
    let warnings: string[] = [];
    let recording: Promise<RecordingPrep> | undefined;
    if (!decision.accepted) {
      recording = prepareRecording(ctx, classified, policy);
      recording.catch(() => {}); // awaited by commitUses; unused if the push is refused
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
      `${TAG}: policy ${source}; pusher ${describePusher(login, pusher)}`,
      ...warnings.map((w) => `  warning: ${oneLine(w, 500)}`),
      // A shared account (git daemon, `git@` over ssh) is no person: say how to configure that.
      ...(login.source === 'unix' && pusher.known && !pusher.principal
        ? [
            `  note: the pusher is the server's Unix user "${pusher.login}", which no principal lists in logins;`,
            '        for a shared account set: git config breakglass.identity none',
          ]
        : []),
    ];

    if (!decision.accepted || nsFailures.length || policyRefusals.length) {
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
        ...policyRefusals.flatMap((r) =>
          formatRefFailures(
            r.ref,
            [r.failure],
            `fix ${POLICY_PATH} in the pushed commit (check it with: bg-sign list --policy FILE)`,
          ),
        ),
        ...decision.updates.filter((d) => d.path === 'rejected').flatMap(formatRejectedUpdate),
      ]);
      return 1;
    }
    if (decision.ticketsUsed.length === 0) return 0;
    // E3: a ref squatting on the recorder's names would let this push land unrecorded.
    const blockers = await refsBlockingRecording(ctx, decision.ticketsUsed);
    if (blockers.length) {
      run.err([
        `${TAG}: push rejected`,
        ...header,
        ...formatRefFailures(
          'recording',
          [recordingBlocked(blockers)],
          `a server admin must delete ${blockers.length > 1 ? 'these refs' : 'it'} (git update-ref -d ${blockers[0]}), then push again; see docs/server-setup.md`,
        ),
      ]);
      return 1;
    }

    const used = await commitUses(
      run,
      o,
      decision,
      candidates,
      classified,
      policy,
      pusher,
      recording ?? prepareRecording(ctx, classified, policy),
    );
    if ('failure' in used) {
      run.err([`${TAG}: push rejected`, ...header, ...formatRefFailures('ticket', [used.failure])]);
      return 1;
    }
    run.out([
      `${TAG}: accepted`,
      ...header,
      ...(used.txHook
        ? []
        : [
            "  warning: git-breakglass's reference-transaction hook is not installed here: if another check refuses this push, its ticket use is kept until an admin resolves it (bg-sign audit flush)",
          ]),
      ...decision.updates.flatMap((d) => {
        if (d.path !== 'breakglass') return [];
        const c = candidates.find(
          (x): x is LoadedCandidate => x.id === d.ticketId && 'ticket' in x,
        )!;
        return formatBanner(
          d,
          c,
          policy,
          o.now,
          used.commits.get(d.update.ref) ?? 0,
          forgeOrigin(o.env),
        );
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
/** The certificate git received with a `push --signed` (GIT_PUSH_CERT), judged (PC1-PC3). */
async function readPushCert(
  reader: CatFileBatch,
  env: NodeJS.ProcessEnv,
  policy: Policy,
  lines: readonly UpdateLine[],
): Promise<PushCertCheck | undefined> {
  const sha = env.GIT_PUSH_CERT;
  if (!sha) return undefined;
  const obj = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(sha) ? await reader.read(sha) : null;
  if (!obj || obj.type !== 'blob')
    return { error: 'push certificate: GIT_PUSH_CERT names no blob' };
  return checkPushCert(obj.data, policy.keyOwners, lines, env.GIT_PUSH_CERT_NONCE_STATUS);
}

export function hookGitDir(env: NodeJS.ProcessEnv): string {
  return path.resolve(env.GIT_DIR ?? '.');
}
