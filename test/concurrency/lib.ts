// Concurrent pushes over `git daemon` on loopback (issue 6 item 5), used by the test and by
// `BG_CONCURRENCY=50 node scripts/run-tests.mjs test/concurrency`.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { cleanEnv, freePort, type DevClone, type TestServer } from '../helpers/server.ts';
import { verify, type AcceptedEvent, type Verdict } from '../faults/lib.ts';
import net from 'node:net';

/**
 * Our own daemon on the harness's server root, with `--max-connections=0`: git daemon's default
 * limit (32) makes it SIGTERM an older connection from the same address when exceeded, which
 * would kill pushes from 127.0.0.1 mid-flight at 50 concurrent clients.
 */
export async function startDaemon(
  server: TestServer,
): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    'git',
    [
      'daemon',
      '--reuseaddr',
      '--listen=127.0.0.1',
      `--port=${port}`,
      `--base-path=${server.root}`,
      '--export-all',
      '--enable=receive-pack',
      '--max-connections=0',
      server.root,
    ],
    { env: cleanEnv({ HOME: join(server.root, 'home-admin') }), detached: true, stdio: 'ignore' },
  );
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      /* gone */
    }
  };
  process.once('exit', () => kill('SIGKILL'));
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((res) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => (c.destroy(), res(true)));
      c.once('error', () => res(false));
    });
    if (ok) break;
    if (i > 200 || child.exitCode !== null) throw new Error('git daemon did not start');
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    url: `git://127.0.0.1:${port}/server.git`,
    stop: () =>
      new Promise<void>((res) => {
        if (child.exitCode !== null || child.signalCode !== null) return res();
        child.once('exit', () => res());
        kill('SIGTERM');
        setTimeout(() => kill('SIGKILL'), 2000).unref();
      }),
  };
}

export interface PushOutcome {
  readonly ref: string;
  readonly code: number;
  readonly stderr: string;
}

/** Starts every push at once; resolves when all have finished. */
export function pushAll(
  clone: DevClone,
  url: string,
  pushes: readonly { sha: string; ref: string; ticket: string }[],
): Promise<PushOutcome[]> {
  return Promise.all(
    pushes.map(async (p) => {
      const r = await clone.git(['push', '-o', `breakglass=${p.ticket}`, url, `${p.sha}:${p.ref}`]);
      return { ref: p.ref, code: r.code, stderr: r.stderr };
    }),
  );
}

/** N distinct tickets, N distinct protected refs, all pushed at the same moment. */
export async function distinctTicketPushes(
  server: TestServer,
  clone: DevClone,
  url: string,
  n: number,
): Promise<{ outcomes: PushOutcome[]; events: AcceptedEvent[]; verdict: Verdict; ms: number }> {
  const ids: string[] = [];
  for (let i = 1; i <= n; i++)
    ids.push(await clone.makeTicket({ refs: [`refs/heads/release/${i}`] }));
  const tp = await clone.git(['push', url, ...ids.map((id) => `refs/breakglass/tickets/${id}`)]);
  if (tp.code !== 0) throw new Error(`ticket push failed: ${tp.stderr}`);
  const shas: string[] = [];
  for (let i = 1; i <= n; i++)
    shas.push(...(await clone.commitsOn(server.seed, 1, `concurrent ${i}`)));
  const pushes = shas.map((sha, i) => ({
    sha,
    ref: `refs/heads/release/${i + 1}`,
    ticket: ids[i]!,
  }));
  const t0 = performance.now();
  const outcomes = await pushAll(clone, url, pushes);
  const ms = performance.now() - t0;
  const events = pushes.map((p) => ({
    ticket: p.ticket,
    ref: p.ref,
    oldSha: server.seed,
    newSha: p.sha,
    commits: [p.sha],
  }));
  return { outcomes, events, verdict: await verify(server.gitDir, events), ms };
}

/** K pushes to K distinct refs, all naming the same single-use ticket. */
export async function sharedTicketPushes(
  server: TestServer,
  clone: DevClone,
  url: string,
  k: number,
): Promise<{ outcomes: PushOutcome[]; shas: string[]; ticket: string; ms: number }> {
  const ticket = await clone.makeTicket({ refs: ['refs/heads/release/*'], maxUses: 1 });
  const tp = await clone.git(['push', url, `refs/breakglass/tickets/${ticket}`]);
  if (tp.code !== 0) throw new Error(`ticket push failed: ${tp.stderr}`);
  const shas: string[] = [];
  for (let i = 1; i <= k; i++) shas.push(...(await clone.commitsOn(server.seed, 1, `shared ${i}`)));
  const t0 = performance.now();
  const outcomes = await pushAll(
    clone,
    url,
    shas.map((sha, i) => ({ sha, ref: `refs/heads/release/shared-${i + 1}`, ticket })),
  );
  return { outcomes, shas, ticket, ms: performance.now() - t0 };
}
