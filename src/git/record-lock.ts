import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * An advisory lock that queues concurrent recorders of one repository. Correctness never depends
 * on it (the ref transaction's expected old values do); it only stops N writers from building N
 * notes commits of which N-1 lose. Anything odd (unwritable directory, a holder that takes too
 * long) means we go ahead without it. A lock left by a dead process on this host is taken over
 * at once, one from elsewhere once it is older than `staleMs`.
 */
export async function withRecorderLock<T>(
  path: string,
  fn: () => Promise<T>,
  opts: { waitMs?: number; staleMs?: number } = {},
): Promise<T> {
  const token = `${process.pid} ${hostname()} ${randomBytes(8).toString('hex')}\n`;
  const held = await acquire(path, token, opts.waitMs ?? 30_000, opts.staleMs ?? 60_000);
  try {
    return await fn();
  } finally {
    if (held) await release(path, token);
  }
}

async function acquire(path: string, token: string, waitMs: number, staleMs: number) {
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    try {
      await fs.writeFile(path, token, { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return false;
    }
    if (await isStale(path, staleMs)) {
      await fs.rm(path, { force: true });
      continue;
    }
    await sleep(5 + Math.random() * 20);
  }
  return false;
}

async function isStale(path: string, staleMs: number): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([fs.readFile(path, 'utf8'), fs.stat(path)]);
    if (Date.now() - st.mtimeMs > staleMs) return true;
    const [pid, host] = text.split(' ');
    if (host !== hostname() || !/^\d+$/.test(pid ?? '')) return false;
    try {
      process.kill(Number(pid), 0);
      return false;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ESRCH';
    }
  } catch {
    return false; // gone or half-written: just try again
  }
}

async function release(path: string, token: string): Promise<void> {
  try {
    if ((await fs.readFile(path, 'utf8')) === token) await fs.rm(path, { force: true });
  } catch {
    /* already gone */
  }
}
