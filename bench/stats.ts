// Small statistics and machine description shared by the benchmarks.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly p90: number;
  readonly n: number;
}

/** Median, min, max and p90 of a sample. */
export function summarize(samples: readonly number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))]!;
  return { median: at(0.5), min: s[0]!, max: s[s.length - 1]!, p90: at(0.9), n: s.length };
}

/** Formats milliseconds with sensible precision. */
export function ms(v: number): string {
  return v < 1 ? `${v.toFixed(3)} ms` : v < 100 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}

/** One line that says what machine a figure came from. */
export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const git = execFileSync('git', ['--version']).toString().trim();
  return `${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}, ${git}`;
}

/** User + system CPU of this process's waited-for children so far, ms (Linux, 10 ms ticks). */
export function childCpuMs(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[13]) + Number(f[14])) * 10; // cutime, cstime
  } catch {
    return NaN;
  }
}
