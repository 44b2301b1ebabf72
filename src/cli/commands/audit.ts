import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Writable } from 'node:stream';
import { BreakglassError, isBreakglassError } from '../../errors.ts';
import {
  formatReport,
  planReport,
  type AuditProblem,
  type AuditRow,
  type ReportView,
} from '../../audit/report.ts';
import { readAuditData, type Progress } from '../../git/audit-source.ts';
import { CatFileBatch, runGit, type GitContext } from '../../git/git.ts';
import { formatDuration, parseDurationAllowZero } from '../../policy/duration.ts';
import type { Policy } from '../../policy/policy.ts';
import { compileRefPattern, refMatches } from '../../policy/refs.ts';
import { parseTime } from '../../ticket/time.ts';
import { readServerConfig } from '../../server/config.ts';
import { loadServerPolicy } from '../../server/policy-source.ts';
import { flushJournal, formatFlush } from '../../server/post-receive.ts';
import { openEntries, resolveEntry } from '../../server/journal.ts';
import { EXIT, fromArg } from '../exit.ts';
import { loadPolicy } from '../policy-source.ts';
import { openRepo } from '../repo.ts';
import {
  cliFor,
  defineCommand,
  jsonOption,
  parseTicketIdArg,
  policyOption,
  remoteOption,
  type Cli,
} from '../options.ts';

export const AUDIT_FORMATS = ['table', 'json', 'csv', 'md'] as const;

/** The repository an audit-family command reads, and the policy to verify signed records. */
export interface AuditRepo {
  readonly ctx: GitContext;
  readonly policy: Policy | null;
  readonly policySource: string | null;
}

/**
 * Opens the repository for `audit`/`log`: a GIT_DIR argument (a bare server repository: policy
 * from `git config breakglass.policy` or HEAD, as the hook reads it) or the clone we run in (the
 * CLI's policy lookup). Without a policy the report still runs, but signed records (reviews,
 * revocations) are marked unverified and never count as reviewed.
 */
export async function openAuditRepo(
  cli: Cli,
  gitDir: string | undefined,
  opts: { policy?: string | undefined; remote: string },
): Promise<AuditRepo> {
  const ctx = await auditContext(cli, gitDir);
  return { ctx, ...(await auditPolicy(cli, ctx, opts)) };
}

/** The repository part of openAuditRepo: a GIT_DIR argument (checked) or the clone we run in. */
async function auditContext(cli: Cli, gitDir: string | undefined): Promise<GitContext> {
  let ctx: GitContext;
  if (gitDir) {
    const dir = resolve(cli.cwd, gitDir);
    const r = await runGit({ gitDir: dir, env: cli.env }, ['rev-parse', '--git-dir'], {
      allowFail: true,
    });
    if (r.code !== 0) {
      throw new BreakglassError('USAGE', `${dir} is not a Git repository`, {
        hint: 'pass the repository directory (a bare repo or a .git directory)',
      });
    }
    ctx = { gitDir: dir, env: cli.env };
  } else {
    ctx = await openRepo(cli.cwd, cli.env);
  }
  return ctx;
}

/**
 * auditContext without waiting for git: the context at once, and its check (rejecting with the
 * same errors) to await before anything read through it is trusted or reported.
 */
function auditContextNow(
  cli: Cli,
  gitDir: string | undefined,
): { ctx: GitContext; checked: Promise<GitContext> } {
  const ctx: GitContext = gitDir
    ? { gitDir: resolve(cli.cwd, gitDir), env: cli.env }
    : { cwd: cli.cwd, env: cli.env };
  return { ctx, checked: auditContext(cli, gitDir) };
}

/** The policy part of openAuditRepo (see there). */
async function auditPolicy(
  cli: Cli,
  ctx: GitContext,
  opts: { policy?: string | undefined; remote: string },
): Promise<Omit<AuditRepo, 'ctx'>> {
  try {
    if (opts.policy || !ctx.gitDir) {
      const loaded = await loadPolicy(ctx, {
        file: opts.policy,
        remote: opts.remote,
        cwd: cli.cwd,
        warn: (text) => cli.output.err(cli.output.errStyle.yellow(text)),
      });
      return { policy: loaded.policy, policySource: loaded.source };
    }
    const config = await readServerConfig(ctx);
    const reader = new CatFileBatch(ctx);
    try {
      const load = await loadServerPolicy(
        ctx as GitContext & { gitDir: string },
        reader,
        config.policyFile,
      );
      if (load.kind === 'policy') return { policy: load.policy, policySource: load.source };
      if (load.kind === 'error') throw load.error;
      throw new BreakglassError('POLICY_MISSING', 'the repository has no branches yet');
    } finally {
      reader.close();
    }
  } catch (e) {
    if (opts.policy || !isBreakglassError(e)) throw e;
    cli.output.err(
      cli.output.errStyle.yellow(
        `warning: no policy (${e.message}); reviews and revocations are reported unverified`,
      ),
    );
    return { policy: null, policySource: null };
  }
}

/** `--since`/`--until`: RFC 3339 UTC or a date (`2026-01-01`, start of that day in UTC). */
export function parseDateArg(option: string, text: unknown, endOfDay: boolean): number {
  return fromArg(option, () => {
    const s = String(text ?? '');
    if (/^\d{4}-\d{2}-\d{2}$/.test(s)) {
      const start = parseTime(`${s}T00:00:00Z`, option);
      // `--until 2026-12-31` means "through the 31st": the day is included.
      return endOfDay ? start + 86_400_000 : start;
    }
    return parseTime(s, option);
  });
}

/** Writes chunks to stdout or a file, honouring backpressure. */
async function writeChunks(chunks: Iterable<string>, file: string | undefined, cwd: string) {
  // A 1 MiB buffer lets a 100 MB report go out in few large writes instead of waiting for a
  // drain after every 64 KiB chunk (the default high-water mark is 16 KiB).
  const out: Writable = file
    ? createWriteStream(resolve(cwd, file), { highWaterMark: 1 << 20 })
    : process.stdout;
  const failed = file ? once(out, 'error').then(([e]) => Promise.reject(e as Error)) : null;
  failed?.catch(() => {});
  for (const chunk of chunks) {
    if (!out.write(chunk)) await Promise.race([once(out, 'drain'), ...(failed ? [failed] : [])]);
  }
  if (file) {
    out.end();
    await Promise.race([once(out, 'finish'), failed!]);
  }
}

/**
 * One full collection between reading and writing the report. Reading 100,000 events leaves
 * tens of MB of parse garbage in the old generation, which V8 would only collect while the
 * report is written on top of it; collecting it first keeps the peak RSS at ~176 MiB (measured
 * again once the ref listings were gone: 193-205 MiB without it, 186-196 MiB with an
 * asynchronous collection; DESIGN §9: < 200 MiB) for ~25 ms. Skipped quietly if the flag cannot
 * be set.
 */
function collectGarbage(): void {
  try {
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
  } catch {
    // only a memory optimisation
  }
}

/** Progress on stderr, only on a TTY and only once a run has taken a second. */
function ttyProgress(): { progress: Progress | undefined; done: () => void } {
  if (!process.stderr.isTTY) return { progress: undefined, done: () => {} };
  const start = Date.now();
  let shown = false;
  return {
    progress: (phase, done, total) => {
      if (Date.now() - start < 1000) return;
      shown = true;
      process.stderr.write(`\r\x1b[Kreading ${phase}: ${done}${total ? `/${total}` : ''}`);
    },
    done: () => {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}

function overdueMessage(report: ReportView): string {
  const rows = report.rows;
  const first: AuditRow[] = [];
  for (const r of rows) {
    if (first.length === 50) break;
    first.push(r);
  }
  const lines = first.map(
    (r) =>
      `  ${r.ticket ?? r.id} ${r.ref} ${r.time} waiting ${formatDuration(r.review.waitingMs ?? 0)} (${r.review.status})`,
  );
  if (rows.length > 50) lines.push(`  ... and ${rows.length - 50} more`);
  return (
    `${rows.length} break-glass event(s) waiting for review longer than ${report.filters.olderThan}:\n` +
    lines.join('\n')
  );
}

/** The server journal's open entries as problems: each event pending, failed or unreadable. */
async function journalProblems(gitDir: string): Promise<AuditProblem[]> {
  let open;
  try {
    open = await openEntries(gitDir);
  } catch (e) {
    return [
      { kind: 'journal', where: gitDir, message: `journal unreadable: ${(e as Error).message}` },
    ];
  }
  return open.flatMap(({ file, entry, error }): AuditProblem[] => {
    if (!entry)
      return [
        { kind: 'journal', where: file, message: `unreadable journal file: ${error ?? 'unknown'}` },
      ];
    const state = entry.failures
      ? `recording failed ${entry.failures} time(s): ${entry.lastError ?? ''}`
      : 'accepted, not recorded yet';
    return entry.events.map((e) => ({
      kind: 'journal',
      where: `${entry.name} ${e.ref}`,
      message: `ticket ${e.ticket} ${e.ref} ${e.oldSha.slice(0, 12)}..${e.newSha.slice(0, 12)} (${entry.createdAt}): ${state}`,
    }));
  });
}

/**
 * `bg-sign audit flush GIT_DIR`: finishes pending journal entries (a crashed post-receive, or
 * GHES where there is no post-receive) with the hook's own flushJournal, and says what it wrote.
 */
const flush = defineCommand({
  command: 'flush <gitdir>',
  describe: 'Record pending break-glass events left in the server journal (crash recovery, GHES)',
  builder: (y) =>
    y
      .positional('gitdir', { type: 'string', demandOption: true, describe: 'server repository' })
      .options({
        ...jsonOption,
        resolve: {
          type: 'string',
          array: true,
          describe:
            'ENTRY=landed|dropped: an admin\'s word on an entry git left uncertain (see docs/server-setup.md, "When recording is broken")',
        },
      })
      .example('$0 audit flush /srv/git/api.git', 'finish what a crashed post-receive left')
      .example(
        '$0 audit flush /srv/git/api.git --resolve 20261129T031400Z-4242-0a1b2c3d4e5f=dropped',
        'the reflog shows git did not apply it: give its use back',
      ),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const now = Date.now();
    const dir = resolve(cli.cwd, argv.gitdir);
    const check = await runGit({ gitDir: dir, env: cli.env }, ['rev-parse', '--git-dir'], {
      allowFail: true,
    });
    if (check.code !== 0) throw new BreakglassError('USAGE', `${dir} is not a Git repository`);
    for (const item of (argv.resolve as string[] | undefined) ?? []) {
      const m = /^([^=]+)=(landed|dropped)$/.exec(item);
      if (!m)
        throw new BreakglassError(
          'USAGE',
          `--resolve takes ENTRY=landed or ENTRY=dropped, not "${item.slice(0, 80)}"`,
        );
      await resolveEntry(dir, m[1]!, m[2] as 'landed' | 'dropped');
    }
    const r = await flushJournal(dir, cli.env, now, { sweep: true });
    if (argv.json) {
      cli.output.json({
        recorded: r.recorded,
        dropped: r.dropped,
        waiting: r.waiting,
        uncertain: r.uncertain,
        released: r.released.length,
        errors: r.errors,
      });
    } else {
      for (const line of formatFlush(r)) cli.output.out(line);
      cli.output.out(
        `${r.recorded.length} event(s) recorded, ${r.dropped.length} dropped (git did not apply them), ${r.waiting} still waiting, ${r.uncertain.length} uncertain, ${r.released.length} use(s) given back`,
      );
    }
    if (r.errors.length || r.uncertain.length) process.exitCode = EXIT.denied;
  },
});

/** `bg-sign audit`: the audit report (table, JSON, CSV or an auditor's Markdown report). */
export default defineCommand({
  command: 'audit [gitdir]',
  describe: 'Report break-glass events with their tickets, uses and reviews',
  builder: (y) =>
    y
      .command(flush)
      .positional('gitdir', {
        type: 'string',
        describe: 'repository directory (e.g. a bare server repo); default: the clone you are in',
      })
      .options({
        since: {
          type: 'string',
          requiresArg: true,
          describe: 'events at or after (2026-01-01 or RFC 3339 UTC)',
        },
        until: {
          type: 'string',
          requiresArg: true,
          describe: 'events before (a date includes that whole day)',
        },
        ref: {
          type: 'string',
          requiresArg: true,
          describe: 'only this ref or pattern (main, release/*)',
        },
        ticket: { type: 'string', requiresArg: true, describe: 'only this ticket id' },
        unreviewed: {
          type: 'boolean',
          default: false,
          describe: 'only events still waiting for a valid review',
        },
        'older-than': {
          type: 'string',
          requiresArg: true,
          describe:
            'with --unreviewed: only those waiting longer than this (e.g. 24h); exit 1 if any',
        },
        format: {
          type: 'string',
          choices: AUDIT_FORMATS,
          default: 'table',
          describe: 'output format',
        },
        output: { type: 'string', requiresArg: true, describe: 'write the report to this file' },
        ...jsonOption,
        ...policyOption,
        ...remoteOption,
      })
      .example('$0 audit --unreviewed', 'what still needs a post-incident review?')
      .example('$0 audit --unreviewed --older-than 24h', 'CI check: exit 1 if a review is overdue')
      .example(
        '$0 audit --since 2026-01-01 --format csv --output evidence.csv',
        'evidence for the auditor',
      )
      .example(
        '$0 audit --since 2026-01-01 --until 2026-03-31 --format md',
        'quarterly evidence report',
      )
      .example('$0 audit /srv/git/api.git --format json', 'on the server, in a bare repository')
      .example(
        '$0 audit flush /srv/git/api.git',
        'record events a crashed post-receive left pending',
      ),
  handler: async (argv) => {
    const cli = cliFor(argv);
    const now = Date.now();
    // --json means --format json; with another format it is a contradiction, not a choice.
    if (argv.json && argv.format !== 'table' && argv.format !== 'json') {
      throw new BreakglassError('USAGE', `--json conflicts with --format ${argv.format}`);
    }
    const format = argv.json ? 'json' : (argv.format as (typeof AUDIT_FORMATS)[number]);
    const since = argv.since === undefined ? undefined : parseDateArg('--since', argv.since, false);
    const until = argv.until === undefined ? undefined : parseDateArg('--until', argv.until, true);
    const ticket = argv.ticket === undefined ? undefined : parseTicketIdArg(argv.ticket);
    const refPattern =
      argv.ref === undefined
        ? undefined
        : fromArg('--ref', () => compileRefPattern(argv.ref, '--ref'));
    const olderThanMs =
      argv['older-than'] === undefined
        ? undefined
        : fromArg('--older-than', () => parseDurationAllowZero(argv['older-than'], '--older-than'));

    // The records are read while git checks that this is a repository (one process less on the
    // way to the first note); the policy (git config, HEAD's policy file) loads once it is known
    // to be one, while the records are read: it is only needed at the end.
    const { ctx, checked } = auditContextNow(cli, argv.gitdir);
    checked.catch(() => {}); // awaited below
    const policyLoad = checked.then(() =>
      auditPolicy(cli, ctx, { policy: argv.policy, remote: argv.remote }),
    );
    policyLoad.catch(() => {}); // awaited below; a failure is reported from there
    const tty = ttyProgress();
    let report: ReportView;
    let pending: number;
    try {
      let repo: Omit<AuditRepo, 'ctx'> | undefined;
      const policy = policyLoad.then((r) => {
        repo = r;
        cli.note(`policy: ${r.policySource ?? 'none'}`);
        return r.policy;
      });
      policy.catch(() => {}); // the reader may fail before it needs the policy
      const data = readAuditData(ctx, { policy, progress: tty.progress }).then(
        (d) => (collectGarbage(), d),
        // A policy that cannot be loaded is the error to report, as when it was loaded first.
        async (e: unknown) => {
          await policyLoad;
          throw e;
        },
      );
      data.catch(() => {}); // awaited below, once the repository is known to be one
      const gitDirChecked = await checked;
      // E1, E4: on a server, events git committed but not yet recorded, or that failed to be.
      const journal = gitDirChecked.gitDir ? await journalProblems(gitDirChecked.gitDir) : [];
      pending = journal.length;
      // The rows are made one by one as the report is written, never all held (DESIGN §9).
      const read = await data;
      report = planReport(
        journal.length ? { ...read, problems: [...read.problems, ...journal] } : read,
        {
          now,
          since,
          until,
          ticket,
          refFilter: refPattern ? (ref) => refMatches(refPattern, ref) : undefined,
          refText: refPattern?.source,
          unreviewed: argv.unreviewed,
          olderThanMs,
          repository: repo!.policy?.repository ?? null,
          policySource: repo!.policySource,
        },
      );
    } finally {
      tty.done();
    }
    await writeChunks(formatReport(report, format), argv.output, cli.cwd);
    if (argv.output) cli.note(`wrote ${report.rows.length} event(s) to ${argv.output}`);
    if (report.problems.length) {
      cli.output.err(
        cli.output.errStyle.yellow(
          `warning: ${report.problems.length} problem(s) reading the records (listed in the report)`,
        ),
      );
    }
    if (pending) {
      cli.output.err(
        cli.output.errStyle.yellow(
          `${pending} break-glass event(s) in the server journal are not recorded yet; run: bg-sign audit flush ${argv.gitdir ?? 'GIT_DIR'}`,
        ),
      );
      process.exitCode = EXIT.denied;
    }
    // The review duty as a CI check: anything listed here is overdue.
    if (olderThanMs !== undefined && report.rows.length > 0) {
      cli.output.err(overdueMessage(report));
      process.exitCode = EXIT.denied;
    }
  },
});
