/** Where a command writes, and whether each stream gets colour. */
export interface Output {
  /** Writes one line (or several) to stdout. */
  out(text: string): void;
  /** Writes one line (or several) to stderr. */
  err(text: string): void;
  /**
   * Prints a command's result as pretty JSON on stdout: always one object, `version` first
   * (docs/cli-json.md), so scripts can rely on the shape and we can extend it.
   */
  json(value: object): void;
  /** Styling for text that goes to stdout. */
  readonly style: Style;
  /** Styling for text that goes to stderr. */
  readonly errStyle: Style;
}

/** A tiny ANSI helper; every function is the identity when colour is off. */
export interface Style {
  readonly enabled: boolean;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
  bold(s: string): string;
  dim(s: string): string;
}

const sgr = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;
const identity = (s: string) => s;

/** Colour only on a TTY; `NO_COLOR` (any non-empty value) and `TERM=dumb` turn it off. */
export function colourEnabled(isTTY: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.TERM === 'dumb') return false;
  return isTTY === true;
}

/** Builds a style, on or off. */
export function makeStyle(enabled: boolean): Style {
  if (!enabled) {
    return {
      enabled,
      red: identity,
      green: identity,
      yellow: identity,
      cyan: identity,
      bold: identity,
      dim: identity,
    };
  }
  return {
    enabled,
    red: sgr(31, 39),
    green: sgr(32, 39),
    yellow: sgr(33, 39),
    cyan: sgr(36, 39),
    bold: sgr(1, 22),
    dim: sgr(2, 22),
  };
}

/** Version of the JSON shapes the CLI prints (docs/cli-json.md); bumped on a breaking change. */
export const JSON_VERSION = 1;

/** `value` with `version` as its first key. */
export function versioned(value: object): Record<string, unknown> {
  // A bare array can't grow a field; wrap it under a name (list: `tickets`).
  if (Array.isArray(value)) throw new TypeError('CLI JSON output must be an object');
  return { version: JSON_VERSION, ...value };
}

/** The process's own output, with colour decided per stream. */
export function processOutput(env: NodeJS.ProcessEnv = process.env): Output {
  const line = (s: string) => (s.endsWith('\n') ? s : s + '\n');
  return {
    out: (text) => void process.stdout.write(line(text)),
    err: (text) => void process.stderr.write(line(text)),
    json: (value) => void process.stdout.write(JSON.stringify(versioned(value), null, 2) + '\n'),
    style: makeStyle(colourEnabled(process.stdout.isTTY, env)),
    errStyle: makeStyle(colourEnabled(process.stderr.isTTY, env)),
  };
}

/** Pads cells into aligned columns (widths measured without ANSI codes). */
export function table(rows: readonly (readonly string[])[]): string[] {
  // eslint-disable-next-line no-control-regex
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visible(cell))));
  }
  return rows.map((row) =>
    row
      .map((cell, i) =>
        i === row.length - 1 ? cell : cell + ' '.repeat(widths[i]! - visible(cell)),
      )
      .join('  ')
      .trimEnd(),
  );
}
