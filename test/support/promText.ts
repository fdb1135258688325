/**
 * A strict parser of the Prometheus text exposition format (0.0.4), as
 * node_exporter's textfile collector reads it, for checking `--metrics-file`.
 * Written here because the npm parsers of this format are unmaintained
 * (parse-prometheus-text-format: last change 2019, no types;
 * prom2javascript: one release). Strict where Prometheus is: names, label
 * escapes (only \\, \" and \n), Go float syntax, HELP and TYPE at most once
 * per family and before its samples, a family's samples together, no series
 * twice, and a final line feed. Anything else throws, with the line number.
 * Histograms and summaries (whose samples carry suffixes) are refused: regsweep
 * writes gauges.
 */

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestamp?: number;
}

export interface Family {
  help?: string;
  type?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
// What Go's strconv.ParseFloat takes (hexadecimal floats aside).
const FLOAT = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|inf(?:inity)?)$|^nan$/i;
const TYPES = new Set(['counter', 'gauge', 'untyped']);

function float(text: string): number {
  if (!FLOAT.test(text)) throw new Error(`value ${JSON.stringify(text)} is not a float`);
  if (/inf/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  return /nan/i.test(text) ? NaN : Number(text);
}

/** A HELP docstring: only \\ and \n are escapes there. */
function helpText(text: string): string {
  return text.replace(/\\(.?)/g, (_match, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new Error(`invalid escape sequence \\${c} in a HELP line`);
  });
}

/** Reads a double-quoted label value from `rest` (after the opening quote): the value and what follows the closing quote. */
function labelValue(rest: string): [string, string] {
  let value = '';
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i] as string;
    if (c === '"') return [value, rest.slice(i + 1)];
    if (c !== '\\') {
      value += c;
      continue;
    }
    const escaped = { '\\': '\\', '"': '"', n: '\n' }[rest[++i] ?? ''];
    if (escaped === undefined) throw new Error(`invalid escape sequence \\${rest[i] ?? ''} in a label value`);
    value += escaped;
  }
  throw new Error('a label value has no closing quote');
}

/** Reads `{name="value",...}` from `rest` (after the opening brace): the labels and what follows the closing brace. */
function labelSet(rest: string): [Record<string, string>, string] {
  const labels: Record<string, string> = {};
  for (let text = rest.trimStart(); ; text = text.trimStart()) {
    if (text.startsWith('}')) return [labels, text.slice(1)];
    const name = LABEL_NAME.exec(text)?.[0];
    if (!name) throw new Error(`a label name is expected at ${JSON.stringify(text)}`);
    if (name in labels) throw new Error(`label ${name} appears twice`);
    text = text.slice(name.length).trimStart();
    if (!text.startsWith('=')) throw new Error(`= is expected after label ${name}`);
    text = text.slice(1).trimStart();
    if (!text.startsWith('"')) throw new Error(`a quoted value is expected for label ${name}`);
    [labels[name], text] = labelValue(text.slice(1));
    text = text.trimStart();
    if (text.startsWith(',')) text = text.slice(1);
    else if (!text.startsWith('}')) throw new Error(`, or } is expected after label ${name}`);
  }
}

function sampleLine(line: string): Sample {
  const name = METRIC_NAME.exec(line)?.[0];
  if (!name) throw new Error('a metric name is expected');
  let rest = line.slice(name.length);
  let labels: Record<string, string> = {};
  if (rest.startsWith('{')) [labels, rest] = labelSet(rest.slice(1));
  if (!/^[ \t]/.test(rest)) throw new Error('a blank is expected before the value');
  const [value, timestamp, ...extra] = rest.trim().split(/[ \t]+/);
  if (extra.length > 0) throw new Error('text after the timestamp');
  if (timestamp !== undefined && !/^-?\d+$/.test(timestamp)) throw new Error(`timestamp ${JSON.stringify(timestamp)} is not an integer`);
  return { name, labels, value: float(value ?? ''), ...(timestamp === undefined ? {} : { timestamp: Number(timestamp) }) };
}

/** Applies a `# HELP` or `# TYPE` line; other comments are ignored, as Prometheus does. */
function commentLine(line: string, family: (name: string) => Family): void {
  const match = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
  if (!match) return;
  const [, keyword = '', name = '', text = ''] = match;
  if (METRIC_NAME.exec(name)?.[0] !== name) throw new Error(`invalid metric name ${name}`);
  const f = family(name);
  if (f.samples.length > 0) throw new Error(`${keyword} of ${name} after its samples`);
  if (keyword === 'HELP') {
    if (f.help !== undefined) throw new Error(`second HELP of ${name}`);
    f.help = helpText(text);
  } else {
    if (f.type !== undefined) throw new Error(`second TYPE of ${name}`);
    if (!TYPES.has(text)) throw new Error(`unknown type ${JSON.stringify(text)} of ${name}`);
    f.type = text;
  }
}

/** The families of a text exposition, by name, in order; throws on anything Prometheus would refuse. */
export function parsePromText(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the last line does not end with a line feed');
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  let current: string | undefined;
  // A family is its samples' name; the TYPE and HELP lines open it, and the next family closes it for good.
  const family = (name: string): Family => {
    if (name !== current) {
      if (closed.has(name)) throw new Error(`the lines of ${name} are not together`);
      if (current !== undefined) closed.add(current);
      current = name;
    }
    if (!families.has(name)) families.set(name, { samples: [] });
    return families.get(name) as Family;
  };
  const seen = new Set<string>();
  text.slice(0, -1).split('\n').forEach((line, i) => {
    try {
      if (line.trim() === '') return;
      if (line.startsWith('#')) return commentLine(line, family);
      const sample = sampleLine(line);
      const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
      if (seen.has(key)) throw new Error(`series ${key} appears twice`);
      seen.add(key);
      family(sample.name).samples.push(sample);
    } catch (error) {
      throw new Error(`line ${i + 1}: ${(error as Error).message}: ${JSON.stringify(line)}`);
    }
  });
  return families;
}
