import { BreakglassError } from '../errors.ts';

// RFC 3339 in UTC only: `2026-11-29T03:12:00Z`, optional fraction. No offsets, no leap
// seconds (60), no lower-case `t`/`z`, nothing lenient: an unparsable time is an error, never
// "not expired".
const RFC3339_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$/;

/** Parses a strict RFC 3339 UTC timestamp to epoch milliseconds. */
export function parseTime(text: unknown, field = 'time'): number {
  if (typeof text !== 'string' || text.length > 40) {
    throw new BreakglassError('TIME_INVALID', `${field}: expected an RFC 3339 UTC time string`);
  }
  const m = RFC3339_UTC.exec(text);
  if (!m) {
    throw new BreakglassError(
      'TIME_INVALID',
      `${field}: "${text}" is not an RFC 3339 UTC time (expected e.g. 2026-11-29T03:12:00Z)`,
    );
  }
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = m[7] ? Math.floor(Number(m[7]) * 1000) : 0;
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, fraction);
  const d = new Date(ms);
  if (
    year < 1970 ||
    d.getUTCFullYear() !== year ||
    d.getUTCMonth() !== month - 1 ||
    d.getUTCDate() !== day ||
    d.getUTCHours() !== hour ||
    d.getUTCMinutes() !== minute ||
    d.getUTCSeconds() !== second
  ) {
    throw new BreakglassError('TIME_INVALID', `${field}: "${text}" is not a real UTC time`);
  }
  return ms;
}

/** Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds). */
export function formatTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
