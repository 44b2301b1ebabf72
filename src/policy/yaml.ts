import {
  CORE_SCHEMA,
  EVENT_ID,
  constructFromEvents,
  getScalarValue,
  parseEvents,
  type Event,
} from 'js-yaml';
import { BreakglassError } from '../errors.ts';
import { MAX_POLICY_BYTES } from './limits.ts';

export { MAX_POLICY_BYTES };

/** A loaded YAML document plus a way to find the line of any field path. */
export interface LocatedYaml {
  readonly value: unknown;
  /** 1-based line of the key (or sequence item) at `path`, or of its nearest parent. */
  lineOf(path: readonly (string | number)[]): number | undefined;
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/**
 * Loads one YAML document for untrusted configuration: core schema only (no custom types),
 * no anchors or aliases (no "billion laughs"), duplicate keys rejected, bounded size and depth.
 */
export function loadYamlStrict(text: string, source: string): LocatedYaml {
  if (Buffer.byteLength(text) > MAX_POLICY_BYTES) {
    throw new BreakglassError('POLICY_INVALID', `${source}: larger than ${MAX_POLICY_BYTES} bytes`);
  }
  let events: Event[];
  let docs: unknown[];
  try {
    events = parseEvents(text, { filename: source, maxDepth: 16 });
    const aliasOrAnchor = events.find(
      (e) =>
        e.type === EVENT_ID.ALIAS ||
        ((e.type === EVENT_ID.SCALAR ||
          e.type === EVENT_ID.MAPPING ||
          e.type === EVENT_ID.SEQUENCE) &&
          e.anchorStart >= 0),
    );
    if (aliasOrAnchor) {
      const at = 'anchorStart' in aliasOrAnchor ? aliasOrAnchor.anchorStart : 0;
      throw new BreakglassError(
        'POLICY_INVALID',
        `${source}:${lineAt(text, at)}: YAML anchors and aliases are not allowed in a policy`,
      );
    }
    docs = constructFromEvents(events, {
      source: text,
      schema: CORE_SCHEMA,
      maxAliases: 0,
      maxTotalMergeKeys: 0,
    });
  } catch (e) {
    if (e instanceof BreakglassError) throw e;
    const err = e as { reason?: string; mark?: { line: number }; message?: string };
    const line = err.mark ? `:${err.mark.line + 1}` : '';
    throw new BreakglassError(
      'POLICY_INVALID',
      `${source}${line}: ${err.reason ?? err.message ?? 'invalid YAML'}`,
    );
  }
  if (docs.length !== 1) {
    throw new BreakglassError(
      'POLICY_INVALID',
      `${source}: expected exactly one YAML document, found ${docs.length}`,
    );
  }
  const lines = indexLines(text, events);
  return {
    value: docs[0],
    lineOf(path) {
      for (let n = path.length; n >= 0; n--) {
        const line = lines.get(path.slice(0, n).join('\u0000'));
        if (line !== undefined) return line;
      }
      return undefined;
    },
  };
}

/** Walks the event stream once, recording the line of each mapping key and sequence item. */
function indexLines(text: string, events: readonly Event[]): Map<string, number> {
  const out = new Map<string, number>();
  type Frame = {
    kind: 'map' | 'seq';
    path: (string | number)[];
    index: number;
    key: string | null;
  };
  const stack: Frame[] = [];
  const childPath = (start: number): (string | number)[] | null => {
    const top = stack[stack.length - 1];
    if (!top) return [];
    if (top.kind === 'seq') {
      const p = [...top.path, top.index++];
      out.set(p.join('\u0000'), lineAt(text, start));
      return p;
    }
    if (top.key === null) return null; // this node is a key
    const p = [...top.path, top.key];
    top.key = null;
    return p;
  };
  for (const e of events) {
    if (e.type === EVENT_ID.MAPPING || e.type === EVENT_ID.SEQUENCE) {
      const p = childPath(e.start) ?? [];
      stack.push({
        kind: e.type === EVENT_ID.MAPPING ? 'map' : 'seq',
        path: p,
        index: 0,
        key: null,
      });
    } else if (e.type === EVENT_ID.SCALAR) {
      const top = stack[stack.length - 1];
      if (top?.kind === 'map' && top.key === null) {
        top.key = getScalarValue(text, e);
        out.set([...top.path, top.key].join('\u0000'), lineAt(text, e.valueStart));
      } else {
        childPath(e.valueStart);
      }
    } else if (e.type === EVENT_ID.POP) {
      stack.pop();
    }
  }
  return out;
}
