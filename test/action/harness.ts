// Drives the built Action (action/dist/index.js) the way a runner does: a child process with the
// runner's env, a real clone whose origin is a real bare repository, and GITHUB_API_URL pointing
// at a loopback server that answers recorded GitHub REST responses and logs every request.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gitText, runGit, type GitContext } from '../../src/git/git.ts';
import { writeEnvelope } from '../../src/git/store.ts';
import type { TicketRequest } from '../../src/ticket/sign.ts';
import { formatTicketId } from '../../src/ticket/sign.ts';
import type { SigningKey } from '../../src/ticket/keys.ts';
import { approvedEnvelope, keys, policyYaml, ticketRequest } from '../helpers/fixtures.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BUNDLE = path.join(ROOT, 'action/dist/index.js');
export const FIXTURES = path.join(ROOT, 'test/action/fixtures');

const IDENTITY = {
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.com',
  GIT_CONFIG_NOSYSTEM: '1',
};

/** A JSON fixture from test/action/fixtures (hand-recorded REST responses). */
export function fixture<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8')) as T;
}

/** A webhook payload or REST object, edited freely by the scenarios. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Payload = Record<string, any>;

type Examples = { name: string; examples: Record<string, unknown>[] }[];
let examples: Examples | undefined;

/** A real webhook payload from @octokit/webhooks-examples, deep-copied. */
export function webhookExample(event: string, pick: (e: Record<string, unknown>) => boolean) {
  examples ??= JSON.parse(
    readFileSync(
      path.join(ROOT, 'node_modules/@octokit/webhooks-examples/api.github.com/index.json'),
      'utf8',
    ),
  ) as Examples;
  const found = examples.find((e) => e.name === event)?.examples.find(pick);
  if (!found) throw new Error(`no ${event} example`);
  return structuredClone(found) as Payload;
}

/** Points a payload's repository at acme/api with default branch main. */
export function asAcme(payload: Payload): Payload {
  const r = payload.repository;
  r.name = 'api';
  r.full_name = 'acme/api';
  r.owner.login = 'acme';
  r.default_branch = 'main';
  r.master_branch = 'main';
  return payload;
}

export interface Recorded {
  method: string;
  url: string;
  body: string;
}

/** A recorded response; `headers` for rate-limit and pagination (`link`) headers. */
export interface Response {
  status: number;
  json: unknown;
  headers?: Record<string, string>;
}

export type Reply = Response | ((req: Recorded) => Promise<Response>);

/** Loopback GitHub: `routes` maps "GET /path" to a reply; anything else is a 404. */
export class FakeGitHub {
  readonly requests: Recorded[] = [];
  readonly routes = new Map<string, Reply>();
  private server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const rec = { method: req.method ?? '', url: req.url ?? '', body };
      this.requests.push(rec);
      const key = `${rec.method} ${rec.url.split('?')[0]}`;
      const reply = this.routes.get(key) ?? { status: 404, json: { message: 'Not Found' } };
      void Promise.resolve(typeof reply === 'function' ? reply(rec) : reply).then((r) => {
        res.writeHead(r.status, {
          'content-type': 'application/json; charset=utf-8',
          ...r.headers,
        });
        res.end(JSON.stringify(r.json));
      });
    });
  });
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const a = this.server.address() as { port: number };
    this.url = `http://127.0.0.1:${a.port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  on(key: string, reply: Reply): this {
    this.routes.set(key, reply);
    return this;
  }

  paths(): string[] {
    return this.requests.map((r) => `${r.method} ${r.url.split('?')[0]}`);
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  summary: string;
}

/** Parses a GITHUB_OUTPUT file (`name<<delim` heredocs). */
function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<]+)<<(.+)$/.exec(lines[i]!);
    if (!m) continue;
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i]!);
    out[m[1]!] = value.join('\n');
  }
  return out;
}

/** A scratch world: bare origin, a developer clone, and the runner's workspace clone. */
export class World {
  readonly root: string;
  readonly origin: string;
  readonly dev: string;
  readonly github = new FakeGitHub();
  private runs = 0;

  private constructor(root: string) {
    this.root = root;
    this.origin = path.join(root, 'origin.git');
    this.dev = path.join(root, 'dev');
  }

  /** Origin with `main` holding the test policy and a README. */
  static async create(policy = policyYaml()): Promise<World> {
    const w = new World(await fs.mkdtemp(path.join(os.tmpdir(), 'bg-action-')));
    await w.git(w.root, ['init', '--quiet', '--bare', '-b', 'main', w.origin]);
    // GitHub serves any commit by id (a force-pushed-away tip too); a plain bare repo needs this.
    await w.git(w.origin, ['config', 'uploadpack.allowAnySHA1InWant', 'true']);
    await w.git(w.root, ['init', '--quiet', '-b', 'main', w.dev]);
    await w.git(w.dev, ['remote', 'add', 'origin', w.origin]);
    await fs.mkdir(path.join(w.dev, '.breakglass'));
    await fs.writeFile(path.join(w.dev, '.breakglass/policy.yml'), policy);
    await fs.writeFile(path.join(w.dev, 'README.md'), 'hello\n');
    await w.git(w.dev, ['add', '.']);
    await w.git(w.dev, ['commit', '--quiet', '-m', 'initial']);
    await w.git(w.dev, ['push', '--quiet', 'origin', 'main']);
    await w.github.start();
    return w;
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, ...IDENTITY, HOME: this.root };
  }

  git(cwd: string, args: string[]): Promise<string> {
    return gitText({ cwd, env: this.env }, args);
  }

  get originCtx(): GitContext {
    return { gitDir: this.origin, env: this.env };
  }

  /** A new commit on top of `parent` in the dev clone (not pushed); returns its id. */
  async commit(
    parent: string,
    file: string,
    content: string,
    message = `change ${file}`,
  ): Promise<string> {
    await this.git(this.dev, ['checkout', '--quiet', '--detach', parent]);
    await fs.mkdir(path.dirname(path.join(this.dev, file)), { recursive: true });
    await fs.writeFile(path.join(this.dev, file), content);
    await this.git(this.dev, ['add', file]);
    await this.git(this.dev, ['commit', '--quiet', '-m', message]);
    return this.git(this.dev, ['rev-parse', 'HEAD']);
  }

  /** Updates a ref on origin directly (what a push that GitHub accepted leaves behind). */
  async pushTo(sha: string, ref: string, force = false): Promise<void> {
    await this.git(this.dev, [
      'push',
      '--quiet',
      ...(force ? ['--force'] : []),
      'origin',
      `${sha}:${ref}`,
    ]);
  }

  tip(ref = 'refs/heads/main'): Promise<string> {
    return gitText(this.originCtx, ['rev-parse', ref]);
  }

  /** Stores a signed ticket on origin under refs/breakglass/tickets/<id>; returns the id. */
  async ticket(
    over: Partial<TicketRequest> = {},
    approvers: SigningKey[] = [keys.bob],
  ): Promise<string> {
    const now = over.now ?? Date.now();
    const id = formatTicketId(now, randomBytes(4).toString('hex'));
    const env = approvedEnvelope({ ...ticketRequest({ id, now }), ...over, id, now }, approvers);
    await writeEnvelope(this.originCtx, 'tickets', id, env, `ticket ${id}`, {
      name: 'alice',
      email: 'alice@example.com',
    });
    return id;
  }

  /** The note origin holds for a commit, or undefined. */
  async note(commit: string): Promise<string | undefined> {
    const r = await runGit(this.originCtx, ['notes', '--ref=breakglass', 'show', commit], {
      allowFail: true,
    });
    return r.code === 0 ? r.stdout.toString() : undefined;
  }

  /** A fresh runner workspace: a depth-1 clone of main, as actions/checkout makes. */
  async workspace(): Promise<string> {
    const dir = path.join(this.root, `ws-${++this.runs}`);
    await this.git(this.root, [
      'clone',
      '--quiet',
      '--depth',
      '1',
      '--no-tags',
      `file://${this.origin}`,
      dir,
    ]);
    await this.git(dir, ['remote', 'set-url', 'origin', this.origin]);
    return dir;
  }

  /** Spawns the bundle with a runner's environment for one event. */
  async run(
    event: string,
    payload: unknown,
    opts: { inputs?: Record<string, string>; actor?: string; workspace?: string } = {},
  ): Promise<RunResult> {
    const n = ++this.runs;
    const dir = path.join(this.root, `run-${n}`);
    await fs.mkdir(dir);
    const eventPath = path.join(dir, 'event.json');
    await fs.writeFile(eventPath, JSON.stringify(payload));
    const outputPath = path.join(dir, 'output');
    const summaryPath = path.join(dir, 'summary');
    await fs.writeFile(outputPath, '');
    await fs.writeFile(summaryPath, '');
    const workspace = opts.workspace ?? (await this.workspace());
    const inputs = { token: 'ghs_test', ...opts.inputs };
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: this.root,
      GIT_CONFIG_NOSYSTEM: '1',
      GITHUB_ACTIONS: 'true',
      GITHUB_EVENT_NAME: event,
      GITHUB_EVENT_PATH: eventPath,
      GITHUB_OUTPUT: outputPath,
      GITHUB_STEP_SUMMARY: summaryPath,
      GITHUB_REPOSITORY: 'acme/api',
      GITHUB_WORKSPACE: workspace,
      GITHUB_API_URL: this.github.url,
      GITHUB_SERVER_URL: 'https://github.com',
      GITHUB_ACTOR: opts.actor ?? 'alice',
      GITHUB_RUN_ID: String(1000 + n),
      ...Object.fromEntries(
        Object.entries(inputs).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v]),
      ),
    };
    const child = spawn(process.execPath, [BUNDLE], {
      cwd: workspace,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
    return {
      code,
      stdout,
      stderr,
      outputs: parseOutputs(await fs.readFile(outputPath, 'utf8')),
      summary: await fs.readFile(summaryPath, 'utf8'),
    };
  }

  async dispose(): Promise<void> {
    await this.github.stop();
    await fs.rm(this.root, { recursive: true, force: true });
  }
}
