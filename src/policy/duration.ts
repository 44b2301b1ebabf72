import { BreakglassError } from '../errors.ts';

const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 } as const;
const DURATION = /^(?:(\d{1,4})d)?(?:(\d{1,5})h)?(?:(\d{1,6})m)?(?:(\d{1,7})s)?$/;

/** Parses `15m`, `1h`, `1h30m`, `90s`, `2d` to milliseconds. Zero and empty are errors. */
export function parseDuration(text: unknown, field = 'duration'): number {
  if (typeof text !== 'string' || text.length === 0 || text.length > 24) {
    throw new BreakglassError('DURATION_INVALID', `${field}: expected a duration like 15m or 1h`);
  }
  const m = DURATION.exec(text);
  if (!m || m.slice(1).every((g) => g === undefined)) {
    throw new BreakglassError(
      'DURATION_INVALID',
      `${field}: "${text}" is not a duration (use e.g. 90s, 15m, 1h, 1h30m, 2d)`,
    );
  }
  const [d, h, mi, s] = m.slice(1).map((g) => (g === undefined ? 0 : Number(g))) as [
    number,
    number,
    number,
    number,
  ];
  const ms = d * UNIT_MS.d + h * UNIT_MS.h + mi * UNIT_MS.m + s * UNIT_MS.s;
  // `0m` matches the grammar but is no duration: a zero TTL or maxTtl is a mistake.
  if (ms === 0) {
    throw new BreakglassError('DURATION_INVALID', `${field}: "${text}" is zero; use e.g. 15m`);
  }
  return ms;
}

/** Parses a duration that may be zero (`0m`, `0s`), for thresholds like `--older-than 0m`. */
export function parseDurationAllowZero(text: unknown, field = 'duration'): number {
  if (typeof text === 'string' && /^(?:0+[dhms])+$/.test(text) && DURATION.test(text)) return 0;
  return parseDuration(text, field);
}

/** Formats milliseconds compactly: `15m`, `1h30m`, `45s`. */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  let rest = Math.round(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  return parts.join('');
}
