// Node side. How `runbook logs` prints step output (the data comes from logs-history.ts and heartbeats): each
// stream's lines once, by their number in the stream (heartbeats and results number them alike); filtered by host
// and step; named by step id (from the record key and the runbook); and escaped, so a host's output never drives
// the operator's terminal: control characters other than tab, and bidirectional controls, are shown as escapes.
import type { StepAt } from '../activities';
import type { StreamTail } from '../activities/ssh/progress';
import type { RunbookDoc, StepDoc } from '../dsl/schema';

type Stream = 'stdout' | 'stderr';

/** What a step result carries that `logs` shows (SshStepResult, bounded, from any engine version). */
export interface StepResultView {
  exitCode?: number;
  stdout?: string;
  stderr?: string;
  truncated?: boolean;
  stdoutBytes?: number;
  stdoutLines?: number;
  stderrLines?: number;
  at?: StepAt;
}

/** A step attempt that ended, as its history records it. */
export interface FinishedStep {
  at: StepAt;
  status: 'succeeded' | 'failed' | 'cancelled' | 'timed out';
  result?: StepResultView;
  error?: string;
}

// C0 and C1 control characters except tab (a line has no newline), DEL, the Unicode line separators, and the
// bidirectional controls that reorder what a terminal shows.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** A host's text made safe to print: control characters as visible escapes (`\e`, `\r`, `\x07`, `\u{202e}`). */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE, (c) => {
    if (c === '\u001b') return '\\e';
    if (c === '\r') return '\\r';
    const code = c.codePointAt(0)!;
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

/** A step's record key path split: `steps[2]:host-3@2#3` is step `steps[2]` on host-3, poll 2, attempt 3. */
export function parseStepKey(key: string): { path: string; poll?: string; attempt?: string } {
  const m = /^(.*?)(?::[^@#]*)?(?:@(\d+))?(?:#(\d+))?$/.exec(key)!;
  return { path: m[1]!, poll: m[2], attempt: m[3] };
}

/** The id of the step at a path (`steps[1].parallel.steps[0]`, `steps[0].rollback[1]`, `rollback[0]`) of a runbook. */
export function stepIdAt(doc: RunbookDoc | undefined, path: string): string | undefined {
  if (!doc) return undefined;
  let step: StepDoc | undefined;
  for (const [, name, index] of path.matchAll(/(steps|parallel|rollback)(?:\[(\d+)\])?/g)) {
    if (name === 'parallel') continue;
    const list = name === 'steps' ? (step ? step.parallel?.steps : doc.steps) : step ? step.rollback : doc.rollback;
    // `STEP.rollback`: all of a step's rollback steps under one path (runs recorded before each had its own).
    if (index === undefined) return list?.length === 1 ? list[0]!.id : step ? `${step.id}.rollback` : undefined;
    step = list?.[Number(index)];
    if (!step) return undefined;
  }
  return step?.id;
}

/** Every step of a runbook, nested and rollback ones included. */
export function allSteps(doc: RunbookDoc): StepDoc[] {
  const walk = (steps: StepDoc[] = []): StepDoc[] =>
    steps.flatMap((s) => [s, ...walk(s.parallel?.steps), ...walk(s.rollback)]);
  return [...walk(doc.steps), ...walk(doc.rollback)];
}

export interface LogSink {
  out(line: string): void;
  err(line: string): void;
}

/**
 * Prints step output: filtered by host and step, each stream's lines once (by their number), escaped, prefixed by
 * host and step when several may be shown (stdout lines with `|`, stderr lines with `!`; without a prefix stderr
 * lines go to stderr). Notes (gaps, failures) go to stderr. With `json`, one JSON object per line instead.
 */
export class LogPrinter {
  private readonly seen = new Map<string, { stdout: number; stderr: number; done: boolean }>();
  prefix = true;
  /** Lines printed so far. */
  printed = 0;

  constructor(
    private readonly opts: { host?: string; step?: string; json: boolean },
    private readonly sink: LogSink,
    private doc?: RunbookDoc,
  ) {}

  setRunbook(doc: RunbookDoc | undefined): void {
    this.doc ??= doc;
  }

  /** The step's id (with `@poll` and `#attempt` when not the first), path and key. */
  label(at: StepAt): { step: string; path: string; key: string } {
    const { path, poll, attempt } = parseStepKey(at.step);
    const id = stepIdAt(this.doc, path) ?? path;
    return { step: `${id}${poll ? `@${poll}` : ''}${attempt ? `#${attempt}` : ''}`, path, key: at.step };
  }

  /** Whether the step is one the options ask for. */
  wants(at: StepAt): boolean {
    if (this.opts.host !== undefined && at.host !== this.opts.host) return false;
    if (this.opts.step === undefined) return true;
    const { path } = parseStepKey(at.step);
    return [stepIdAt(this.doc, path), path, at.step].includes(this.opts.step);
  }

  /** The latest lines of a running step (from its heartbeat). */
  running(at: StepAt, tails: { out?: StreamTail; err?: StreamTail }): void {
    if (!this.wants(at) || this.state(at).done) return;
    if (tails.out) this.lines(at, 'stdout', tails.out.first, tails.out.lines);
    if (tails.err) this.lines(at, 'stderr', tails.err.first, tails.err.lines);
  }

  /** A step that ended: what its result adds to what was printed, then how it ended when that was not a success. */
  finished(f: FinishedStep): void {
    if (!this.wants(f.at) || this.state(f.at).done) return;
    const r = f.result ?? {};
    for (const stream of ['stdout', 'stderr'] as const) {
      const text = r[stream] ?? '';
      const segments = text.split('\n');
      const rest = segments.pop()!;
      const total = stream === 'stdout' ? r.stdoutLines : r.stderrLines;
      // Results from before line counts: their lines, unnumbered, unless some were shown already.
      if (total === undefined) {
        if (this.state(f.at)[stream] === 0) this.lines(f.at, stream, 0, rest ? [...segments, rest] : segments);
        continue;
      }
      // The first line of a tail that was cut is the end of a line, marked so. (The worker masked secrets before it
      // cut the tail to size, so the cut does not reveal part of one.)
      const lines = rest ? [...segments, rest] : segments;
      const whole =
        !r.truncated || total === segments.length || (stream === 'stdout' && Buffer.byteLength(text) === r.stdoutBytes);
      if (!whole && lines.length) lines[0] = `[…] ${lines[0]}`;
      this.lines(f.at, stream, total - segments.length, lines);
    }
    this.state(f.at).done = true;
    const l = this.label(f.at);
    const failed = f.status !== 'succeeded';
    if (this.opts.json) {
      this.sink.out(
        JSON.stringify({
          type: 'step',
          host: f.at.host,
          ...l,
          status: f.status,
          exitCode: r.exitCode,
          stdoutBytes: r.stdoutBytes,
          truncated: r.truncated ?? false,
          ...(f.error ? { error: f.error } : {}),
        }),
      );
    } else if (failed) {
      const exit = r.exitCode !== undefined && r.exitCode >= 0 ? ` (exit ${r.exitCode})` : '';
      this.note(f.at, `${f.status}${exit}${f.error ? `: ${escapeControls(f.error.replace(/\n/g, ' '))}` : ''}`);
    }
  }

  /** How the run ended (or that it runs on). */
  run(workflowId: string, closed: Closed | undefined): void {
    if (this.opts.json)
      return this.sink.out(
        JSON.stringify({ type: 'run', workflowId, status: closed?.status ?? 'running', exitCode: closed?.exitCode }),
      );
    this.sink.err(
      closed
        ? `${workflowId}: run ${closed.status}`
        : `${workflowId}: still running (\`runbook logs ${workflowId} --follow\` follows it)`,
    );
  }

  /** A note about a step (or the run): on stderr, or as a JSON object. */
  note(at: StepAt | undefined, text: string): void {
    if (this.opts.json)
      return this.sink.out(JSON.stringify({ type: 'note', ...(at ? { host: at.host, ...this.label(at) } : {}), text }));
    this.sink.err(at ? `${escapeControls(`${at.host} ${this.label(at).step}`)}: ${text}` : text);
  }

  private state(at: StepAt) {
    const k = `${at.host}\0${at.step}`;
    let s = this.seen.get(k);
    if (!s) this.seen.set(k, (s = { stdout: 0, stderr: 0, done: false }));
    return s;
  }

  private lines(at: StepAt, stream: Stream, first: number, lines: string[]): void {
    const s = this.state(at);
    const l = this.label(at);
    for (const [i, text] of lines.entries()) {
      const n = first + i;
      if (n < s[stream]) continue;
      if (n > s[stream] && !this.opts.json)
        this.note(at, `[… ${n - s[stream]} earlier ${stream} line${n - s[stream] === 1 ? '' : 's'} not kept]`);
      s[stream] = n + 1;
      this.printed++;
      if (this.opts.json) {
        this.sink.out(JSON.stringify({ type: 'line', host: at.host, ...l, stream, n, text }));
      } else if (this.prefix) {
        this.sink.out(
          `${escapeControls(`${at.host} ${l.step}`)} ${stream === 'stdout' ? '|' : '!'} ${escapeControls(text)}`,
        );
      } else if (stream === 'stdout') this.sink.out(escapeControls(text));
      else this.sink.err(escapeControls(text));
    }
  }
}

/** How a closed run ended, and the exit code `--follow` returns for it. */
export interface Closed {
  status: string;
  exitCode: number;
}
