import * as core from '@actions/core';
import { context } from '@actions/github';
import { BreakglassError } from '../../src/errors.ts';
import type { GitContext } from '../../src/git/git.ts';
import { createGitHubApi, type GitHubApi } from './github.ts';

export type Mode = 'auto' | 'gate' | 'detect' | 'review-check' | 'sweep';

/** The action's inputs (action.yml), parsed. */
export interface Inputs {
  readonly token: string;
  readonly policyPath: string;
  readonly mode: Mode;
  readonly openIssue: boolean;
  readonly notes: boolean;
  readonly remote: string;
  /** review-check: fail when an event has waited longer than this for review (a duration text). */
  readonly reviewOlderThan: string;
  /** gate/detect/sweep: approvals of an older head commit don't count (the ruleset's "dismiss stale approvals"). */
  readonly dismissStaleApprovals: boolean;
}

/** The workflow event the job runs for. */
export interface EventContext {
  readonly name: string;
  readonly payload: Record<string, unknown>;
  readonly owner: string;
  readonly repo: string;
  /** `github.actor`: who triggered the run. */
  readonly actor: string;
  /** Link to this run, for issues and summaries. */
  readonly runUrl: string;
}

export interface AnnotationProps {
  readonly title?: string;
}

/** Where results go: step outputs, log lines, annotations, the job summary, the exit code. */
export interface OutputSink {
  setOutput(name: string, value: string): void;
  info(message: string): void;
  warning(message: string, props?: AnnotationProps): void;
  notice(message: string, props?: AnnotationProps): void;
  /** Runs `fn` inside a collapsible log group. */
  group<T>(name: string, fn: () => Promise<T>): Promise<T>;
  error(message: string, props?: AnnotationProps): void;
  summary(markdown: string): Promise<void>;
  /** Marks the step failed (exit code only: the caller returns right after). */
  setFailed(message: string): void;
}

/** Everything `run` touches in the world, injected so tests can replace any of it. */
export interface Deps {
  readonly now: () => number;
  readonly inputs: Inputs;
  readonly event: EventContext;
  readonly git: GitContext;
  readonly github: GitHubApi;
  readonly out: OutputSink;
  readonly sleep: (ms: number) => Promise<void>;
  readonly random: () => number;
  /** Written into every note's Break-glass-Recorded trailer. */
  readonly recordedBy: string;
}

const MODES: readonly Mode[] = ['auto', 'gate', 'detect', 'review-check', 'sweep'];

function bool(name: string, fallback: boolean): boolean {
  const v = core.getInput(name).trim().toLowerCase();
  if (v === '') return fallback;
  if (['true', 'yes', 'on', '1'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  throw new BreakglassError(
    'USAGE',
    `input ${name} must be true or false, got "${v.slice(0, 20)}"`,
  );
}

/** Reads the inputs the runner passed as INPUT_* variables. */
export function readInputs(): Inputs {
  const mode = (core.getInput('mode').trim() || 'auto') as Mode;
  if (!MODES.includes(mode)) {
    throw new BreakglassError(
      'USAGE',
      `input mode must be one of ${MODES.join(', ')}, got "${mode.slice(0, 20)}"`,
    );
  }
  const token = core.getInput('token');
  if (token) core.setSecret(token);
  return {
    token,
    policyPath: core.getInput('policy-path').trim() || '.breakglass/policy.yml',
    mode,
    openIssue: bool('open-issue', false),
    notes: bool('notes', true),
    remote: core.getInput('remote').trim() || 'origin',
    reviewOlderThan: core.getInput('review-older-than').trim() || '24h',
    dismissStaleApprovals: bool('dismiss-stale-approvals', true),
  };
}

/**
 * The `repository` input (`owner/name`): a sweep run from a central repository judges another
 * one (checked out into the workspace with a token for it). Empty: the workflow's repository.
 */
function repositoryInput(): { owner: string; repo: string } | null {
  const v = core.getInput('repository').trim();
  if (!v) return null;
  const m = /^([A-Za-z0-9][A-Za-z0-9-]{0,38})\/([A-Za-z0-9._-]{1,100})$/.exec(v);
  if (!m) {
    throw new BreakglassError(
      'USAGE',
      `input repository must be owner/name, got "${v.slice(0, 80)}"`,
    );
  }
  return { owner: m[1]!, repo: m[2]! };
}

/** The real world: runner environment, @actions/core output, GitHub's REST API, git in the workspace. */
export function realDeps(): Deps {
  const inputs = readInputs();
  const workspace = process.env.GITHUB_WORKSPACE || process.cwd();
  const serverUrl = process.env.GITHUB_SERVER_URL || 'https://github.com';
  const { owner, repo } = repositoryInput() ?? context.repo;
  // Note and use-record commits need an identity; runners have none configured.
  const env = {
    ...process.env,
    GIT_AUTHOR_NAME: process.env.GIT_AUTHOR_NAME || 'git-breakglass action',
    GIT_AUTHOR_EMAIL: process.env.GIT_AUTHOR_EMAIL || 'action@github',
    GIT_COMMITTER_NAME: process.env.GIT_COMMITTER_NAME || 'git-breakglass action',
    GIT_COMMITTER_EMAIL: process.env.GIT_COMMITTER_EMAIL || 'action@github',
    GIT_TERMINAL_PROMPT: '0',
  };
  Object.assign(process.env, env);
  return {
    now: () => Date.now(),
    inputs,
    event: {
      name: context.eventName,
      payload: context.payload as Record<string, unknown>,
      owner,
      repo,
      actor: context.actor,
      runUrl: `${serverUrl}/${context.repo.owner}/${context.repo.repo}/actions/runs/${context.runId}`,
    },
    git: { cwd: workspace, env },
    github: createGitHubApi(inputs.token, owner, repo),
    out: {
      setOutput: (n, v) => core.setOutput(n, v),
      info: (m) => core.info(m),
      warning: (m, p) => core.warning(m, p),
      notice: (m, p) => core.notice(m, p),
      group: (name, fn) => core.group(name, fn),
      error: (m, p) => core.error(m, p),
      summary: async (md) => {
        if (!process.env.GITHUB_STEP_SUMMARY) return;
        await core.summary.addRaw(md, true).write();
      },
      setFailed: (m) => core.setFailed(m),
    },
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    random: Math.random,
    recordedBy: 'action@github',
  };
}

/** Fails the step when the real dependencies could not even be built (bad inputs, no repo). */
export function failStartup(e: unknown): void {
  core.setFailed(`git-breakglass: ${(e as Error).message}`);
}
