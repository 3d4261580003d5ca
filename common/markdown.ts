// Pure (workflow-safe). Text for what the Temporal Web UI shows of a run: summaries, details, current details.
// The UI renders details (and a workflow's summary) as Markdown in a sandboxed frame (ui-server's /render,
// gomarkdown with autolinks and raw HTML passed through), so a value that came from outside (a param, an alert
// label, an error) must not be able to become a link, an image, HTML or a heading there. Every such value goes
// through mdText (backslash-escapes every character that means something to the renderer, which also breaks
// `http://` autolinks and the UI's own `{workflowId}` placeholders) or mdCode (a code span: literal). Control and
// invisible characters (new lines, ANSI escapes, bidi overrides) are shown as `\n`, `\u001b`, and so on, so one
// value stays on one line and reads as what it is. Everything is bounded: the server keeps a summary to a few
// hundred bytes (limit.userMetadataSummarySize, 400 by default, counted after the payload codec's overhead).

/** Control, separator, zero-width and bidi-override characters: shown escaped, never emitted. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * The characters gomarkdown (the UI's renderer) accepts backslash escapes for; all are ASCII punctuation, which
 * CommonMark renderers accept too. (`\@` or `\/` would be shown with their backslash by gomarkdown.)
 */
const MD_SPECIAL = /[\\`*_{}[\]()#+\-.!:|&<>~^$]/g;

/** `text` cut to at most `max` characters (code points kept whole), with `…` when cut. */
export function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = Math.max(0, max - 1);
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1; // do not split a surrogate pair
  return `${text.slice(0, end)}…`;
}

/** One line of plain text: invisible characters shown escaped, at most `max` characters. */
export function oneLine(value: string, max: number): string {
  // Cut before escaping (a hostile value may be megabytes), and again after (escapes lengthen it).
  const head = value.length > max * 2 ? value.slice(0, max * 2) : value;
  const shown = head.replace(INVISIBLE, (c) => NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return cut(value.length > head.length ? `${shown}…` : shown, max);
}

/** Untrusted text as inert Markdown: one line, at most `max` characters before escaping. */
export function mdText(value: string, max: number): string {
  return oneLine(value, max).replace(MD_SPECIAL, '\\$&');
}

/** Untrusted text as a Markdown code span (rendered literally): one line, at most `max` characters inside. */
export function mdCode(value: string, max: number): string {
  const text = oneLine(value, max);
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  // A space on each side lets the span start or end with a backtick; renderers strip one.
  return longest > 0 || text.startsWith(' ') || text.endsWith(' ')
    ? `${fence} ${text} ${fence}`
    : `${fence}${text}${fence}`;
}

/** The number of bytes `text` takes in UTF-8. */
export function utf8Bytes(text: string): number {
  let n = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

/**
 * `text` cut to at most `maxBytes` UTF-8 bytes, with `…` when cut; a cut never leaves a lone backslash that
 * would escape the ellipsis' neighbour.
 */
export function fitBytes(text: string, maxBytes: number): string {
  if (utf8Bytes(text) <= maxBytes) return text;
  let out = '';
  let bytes = 3; // the ellipsis
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (bytes > maxBytes) break;
    out += ch;
  }
  const trailing = /\\+$/.exec(out)?.[0].length ?? 0;
  if (trailing % 2 === 1) out = out.slice(0, -1);
  return `${out}…`;
}

/** Lines joined, as many whole lines as fit in `maxBytes` (and a note when some did not). */
export function fitLines(lines: readonly string[], maxBytes: number): string {
  const note = '… (cut to fit)';
  const budget = maxBytes - utf8Bytes(note) - 1;
  let out = '';
  let bytes = 0;
  for (const line of lines) {
    bytes += utf8Bytes(line) + (out ? 1 : 0);
    if (bytes > budget) return out ? `${out}\n${note}` : note;
    out = out ? `${out}\n${line}` : line;
  }
  return out;
}
