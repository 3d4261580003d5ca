// Node side. The live output of a running SSH step, for its progress heartbeats (read by `runbook logs`). Every
// read takes what the step's record files (KEY.out, KEY.err) gained since the last one; the latest complete lines
// are kept, numbered from the start of the stream, so a reader that sees any heartbeat (the SDK sends only some)
// prints each line once, and a step's final result continues the same numbering (stdoutLines, stderrLines).
//
// Secrets: only complete lines are reported (a partial last line waits), each redacted whole; the step's own secret
// values are also masked line by line (a multi-line value such as a key arrives across reads) and where a line is cut
// (over LINE_MAX, or a burst skipped). Bounded: about WINDOW_BYTES of lines per stream; a burst larger than one read
// is skipped, its lines counted on the host so the numbering stays right.
import { redact } from '../../common/redact';
import { REMOTE_RUNS_DIR } from './wrapper';

/** The latest complete lines of one stream of a running step. */
export interface StreamTail {
  /** Number (from 0) of the first of `lines` among all the lines the stream has had. */
  first: number;
  /** The latest complete lines, without their newline, secrets masked; control characters as the host sent them. */
  lines: string[];
  /** Bytes the stream has had so far. */
  bytes: number;
}

/** What a running SSH step reports in its heartbeats. */
export interface OutputTails {
  out: StreamTail;
  err: StreamTail;
}

/** Bytes of lines kept per stream (at least the last line is always kept). */
export const WINDOW_BYTES = 4096;
/** A line longer than this keeps its head only, marked with its full length. */
export const LINE_MAX = 1024;
/** Bytes fetched per stream and read; more new output than this is skipped (and counted). */
export const READ_MAX = 8192;

const MASK = '***';
/** Parts of a multi-line secret shorter than this are too common to mask on their own. */
const MIN_SECRET_LINE = 8;

/** One stream's read: its size, where the read started, the newlines in what was skipped, the bytes fetched (its end). */
export interface StreamRead {
  size: number;
  from: number;
  skippedLines: number;
  data: Buffer;
}

/** The remote command reading what both streams gained since `from` (see parseProgressRead). */
export function progressScript(key: string, from: { out: number; err: number }): string {
  if (!/^[0-9a-f]{32}$/.test(key)) throw new Error('bad step key');
  // Size first, then exactly the bytes [size - w, size): output arriving meanwhile is left for the next read.
  return `D="$HOME/${REMOTE_RUNS_DIR}/${key}"
rd() {
  s=; [ -f "$1" ] && s=$(wc -c < "$1" 2>/dev/null); s=$((\${s:-0} + 0)); o=$2; [ "$o" -le "$s" ] || o=0
  w=$((s - o)); [ "$w" -le ${READ_MAX} ] || w=${READ_MAX}
  c=0; [ $((s - w - o)) -gt 0 ] && c=$(tail -c +$((o + 1)) "$1" | head -c $((s - w - o)) | wc -l)
  echo "$s $o $((c + 0)) $w"
  [ "$w" -gt 0 ] && tail -c +$((s - w + 1)) "$1" | head -c "$w" | base64 | tr -d '\\n'
  echo
}
rd "$D.out" ${Math.floor(from.out)}; rd "$D.err" ${Math.floor(from.err)}
`;
}

/** The two streams' reads from the progress script's output; undefined when it is not that (the read failed). */
export function parseProgressRead(stdout: string): { out: StreamRead; err: StreamRead } | undefined {
  const lines = stdout.split('\n');
  const read = (i: number): StreamRead | undefined => {
    const m = /^(\d+) (\d+) (\d+) (\d+)$/.exec(lines[i] ?? '');
    const data = Buffer.from(lines[i + 1] ?? '', 'base64');
    if (!m || data.length !== Number(m[4])) return undefined;
    return { size: Number(m[1]), from: Number(m[2]), skippedLines: Number(m[3]), data };
  };
  const out = read(0);
  const err = read(2);
  return out && err ? { out, err } : undefined;
}

/** Masks, in one line of output, every known secret, each line of a multi-line one, and a secret cut at an edge. */
export function maskLine(text: string, secrets: string[], cut: { start: boolean; end: boolean }): string {
  let out = redact(text);
  for (const s of secrets) {
    if (!s.includes('\n')) continue;
    for (const part of s.split('\n').map((p) => p.replace(/\r$/, '')))
      if (part.trim().length >= MIN_SECRET_LINE && out.includes(part)) out = out.split(part).join(MASK);
  }
  for (const s of secrets) {
    // Where a line was cut, the rest of a secret may be missing: mask a start of one at the end, an end at the start.
    for (let k = Math.min(s.length - 1, out.length); cut.end && k >= 4; k--)
      if (out.endsWith(s.slice(0, k))) {
        out = out.slice(0, out.length - k) + MASK;
        break;
      }
    for (let k = Math.min(s.length - 1, out.length); cut.start && k >= 4; k--)
      if (out.startsWith(s.slice(s.length - k))) {
        out = MASK + out.slice(k);
        break;
      }
  }
  return out;
}

/** One stream of a running step, followed read by read. */
export class StreamFollower {
  private offset = 0;
  private count = 0;
  private recent: string[] = [];
  private recentBytes = 0;
  /** The partial last line: its head (up to LINE_MAX), its full length, and whether its start or middle is missing. */
  private carry: Buffer[] = [];
  private carryKept = 0;
  private carryBytes = 0;
  private carryCut = false;
  private headless = false;

  constructor(private readonly secrets: string[]) {}

  /** Where the next read starts. */
  get position(): number {
    return this.offset;
  }

  feed(read: StreamRead): void {
    // The file is shorter than what was read before (recreated): start over.
    if (read.from !== this.offset) this.reset();
    const skipped = read.size - read.data.length - read.from;
    if (skipped > 0) {
      if (read.skippedLines > 0) {
        // The partial line ended unseen, and lines passed unseen: the window starts afresh, mid-line.
        this.count += read.skippedLines;
        this.recent = [];
        this.recentBytes = 0;
        this.dropCarry();
        this.headless = true;
      } else {
        this.carryBytes += skipped;
        this.carryCut = true;
      }
    }
    this.offset = read.size;
    let start = 0;
    for (let nl = read.data.indexOf(10); nl !== -1; nl = read.data.indexOf(10, start)) {
      this.append(read.data.subarray(start, nl));
      this.complete();
      start = nl + 1;
    }
    this.append(read.data.subarray(start));
  }

  tail(): StreamTail {
    return { first: this.count - this.recent.length, lines: [...this.recent], bytes: this.offset };
  }

  private reset(): void {
    this.offset = 0;
    this.count = 0;
    this.recent = [];
    this.recentBytes = 0;
    this.dropCarry();
  }

  private dropCarry(): void {
    this.carry = [];
    this.carryKept = 0;
    this.carryBytes = 0;
    this.carryCut = false;
    this.headless = false;
  }

  private append(bytes: Buffer): void {
    this.carryBytes += bytes.length;
    if (this.carryCut) return; // past a gap or the cap: only counted
    const keep = Math.min(bytes.length, LINE_MAX - this.carryKept);
    this.carry.push(bytes.subarray(0, keep));
    this.carryKept += keep;
    if (keep < bytes.length) this.carryCut = true;
  }

  private complete(): void {
    let text = maskLine(Buffer.concat(this.carry).toString('utf8'), this.secrets, {
      start: this.headless,
      end: this.carryCut,
    });
    if (this.headless) text = `[…] ${text}`;
    if (this.carryCut) text = `${text} […] (a line of ${this.carryBytes}+ bytes)`;
    this.dropCarry();
    this.count++;
    this.recent.push(text);
    this.recentBytes += Buffer.byteLength(text) + 1;
    while (this.recent.length > 1 && this.recentBytes > WINDOW_BYTES)
      this.recentBytes -= Buffer.byteLength(this.recent.shift()!) + 1;
  }
}
