import { isBreakglassError } from '../../src/errors.ts';
import { failStartup, realDeps, type Deps, type Mode } from './deps.ts';
import { runDetect } from './detect.ts';
import { runGate } from './gate.ts';
import { publish, summaryMarkdown, type Outcome } from './report.ts';
import { runReviewCheck } from './review-check.ts';
import { runSweep } from './sweep.ts';

const GATE_EVENTS = ['pull_request', 'pull_request_target', 'pull_request_review', 'merge_group'];

/** Which mode `auto` means for an event. */
export function modeFor(mode: Mode, eventName: string): Exclude<Mode, 'auto'> | null {
  if (mode !== 'auto') return mode;
  if (GATE_EVENTS.includes(eventName)) return 'gate';
  if (eventName === 'push') return 'detect';
  if (eventName === 'schedule' || eventName === 'workflow_dispatch') return 'review-check';
  return null;
}

/**
 * The Action: gate pull requests, detect bypasses on pushes, or enforce the review duty, depending
 * on the event. Everything it touches comes in `deps`; failures end in `setFailed` and a return.
 */
export async function run(deps?: Deps): Promise<void> {
  let d: Deps;
  try {
    d = deps ?? realDeps();
  } catch (e) {
    failStartup(e);
    return;
  }
  const { out } = d;
  try {
    const mode = modeFor(d.inputs.mode, d.event.name);
    if (!mode) {
      out.setFailed(
        `git-breakglass: no mode for event "${d.event.name}"; run it on pull_request, pull_request_review, merge_group, push or schedule, or set the mode input`,
      );
      return;
    }
    if (mode === 'gate' && !GATE_EVENTS.includes(d.event.name)) {
      out.setFailed(
        `git-breakglass: mode gate needs a pull_request, pull_request_review or merge_group event, not ${d.event.name}`,
      );
      return;
    }
    if (mode === 'sweep' && !['schedule', 'workflow_dispatch'].includes(d.event.name)) {
      out.setFailed(
        `git-breakglass: mode sweep runs on schedule or workflow_dispatch, not ${d.event.name}`,
      );
      return;
    }
    if (mode === 'detect' && d.event.name !== 'push') {
      out.setFailed(`git-breakglass: mode detect needs a push event, not ${d.event.name}`);
      return;
    }
    const outcome: Outcome =
      mode === 'gate'
        ? await runGate(d)
        : mode === 'detect'
          ? await runDetect(d)
          : mode === 'sweep'
            ? await runSweep(d)
            : await runReviewCheck(d);
    await publish(out, outcome);
    if (outcome.problems.length === 0) {
      out.info(`git-breakglass: ${outcome.title}`);
      return;
    }
    const title =
      mode === 'gate'
        ? 'Break-glass check failed'
        : mode === 'review-check'
          ? 'Break-glass review overdue'
          : mode === 'sweep'
            ? 'Break-glass sweep'
            : 'Break-glass violation';
    for (const p of outcome.problems) out.error(p, { title });
    out.setFailed(`git-breakglass: ${outcome.title}`);
    return;
  } catch (e) {
    // Fail closed: an error is never a pass.
    const msg = isBreakglassError(e)
      ? `${e.message}${e.hint ? ` (${e.hint})` : ''} [${e.code}]`
      : `internal error: ${(e as Error)?.stack ?? String(e)}`;
    out.setOutput('decision', 'violation');
    out.error(msg, { title: 'git-breakglass error' });
    // The summary is where people look first: an error run says so there too.
    try {
      await out.summary(
        summaryMarkdown({
          decision: 'violation',
          ticket: '',
          events: [],
          rows: [],
          table: { head: [], rows: [] },
          problems: [msg],
          title: 'error (the check fails closed)',
        }),
      );
    } catch {
      // The annotation and the exit code still carry it.
    }
    out.setFailed(`git-breakglass: ${msg}`);
    return;
  }
}
