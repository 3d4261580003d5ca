// The pieces of `runbook logs` that need no server: the progress read run by the real /bin/sh against record files
// (no ssh in between), the follower that numbers and masks lines across reads, the printer that shows each line
// once and escapes what would drive a terminal, and the step names taken from a record key.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  LINE_MAX,
  parseProgressRead,
  progressScript,
  READ_MAX,
  StreamFollower,
  WINDOW_BYTES,
  type StreamRead,
} from '../../activities/ssh/progress';
import { escapeControls, LogPrinter, parseStepKey, stepIdAt } from '../../cli/logs-print';
import { forgetSecrets, rememberSecret } from '../../common/redact';
import type { RunbookDoc } from '../../dsl/schema';

const KEY = 'ab'.repeat(16);
let home: string;
beforeAll(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-logs-'));
  fs.mkdirSync(path.join(home, '.runbook', 'runs'), { recursive: true });
});
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));
afterEach(() => forgetSecrets());

const record = (stream: 'out' | 'err') => path.join(home, '.runbook', 'runs', `${KEY}.${stream}`);

/** Runs the progress read with /bin/sh the way the host would, HOME being the fake home. */
function readRemote(from: { out: number; err: number }) {
  const stdout = execFileSync('/bin/sh', ['-c', progressScript(KEY, from)], {
    env: { HOME: home, PATH: process.env.PATH },
    encoding: 'utf8',
  });
  const reads = parseProgressRead(stdout);
  if (!reads) throw new Error(`unparsable progress read: ${stdout}`);
  return reads;
}

/** A read of `text` appended at `from` with nothing skipped. */
const chunk = (from: number, text: string | Buffer): StreamRead => {
  const data = Buffer.from(text);
  return { size: from + data.length, from, skippedLines: 0, data };
};

describe('the progress read on the host', () => {
  test('reads only what the streams gained since the last read, bytes exact (binary too)', () => {
    fs.writeFileSync(record('out'), 'one\ntwo\nthr');
    const first = readRemote({ out: 0, err: 0 });
    expect(first.out).toEqual({ size: 11, from: 0, skippedLines: 0, data: Buffer.from('one\ntwo\nthr') });
    expect(first.err).toEqual({ size: 0, from: 0, skippedLines: 0, data: Buffer.alloc(0) }); // no file yet
    const binary = Buffer.from([0, 1, 0xff, 0x1b, 0x0a, 0x80]);
    fs.appendFileSync(record('out'), Buffer.concat([Buffer.from('ee\n'), binary]));
    fs.writeFileSync(record('err'), 'warn\n');
    const second = readRemote({ out: 11, err: 0 });
    expect(second.out.data).toEqual(Buffer.concat([Buffer.from('ee\n'), binary]));
    expect(second.out.from).toBe(11);
    expect(second.err.data.toString()).toBe('warn\n');
  });

  test('a burst over READ_MAX: only its end is fetched, the lines skipped are counted on the host', () => {
    const lines = Array.from({ length: 5000 }, (_, i) => `line ${i}`).join('\n') + '\n';
    fs.writeFileSync(record('out'), lines);
    const { out } = readRemote({ out: 0, err: 0 });
    expect(out.data.length).toBe(READ_MAX);
    const skipped = Buffer.from(lines).subarray(0, out.size - READ_MAX);
    expect(out.skippedLines).toBe(skipped.toString().split('\n').length - 1);
    const f = new StreamFollower([]);
    f.feed(out);
    const tail = f.tail();
    expect(tail.first + tail.lines.length).toBe(5000);
    expect(tail.lines.at(-1)).toBe('line 4999');
    expect(tail.lines[0]).toBe(`line ${tail.first}`);
    expect(Buffer.byteLength(tail.lines.join('\n'))).toBeLessThanOrEqual(WINDOW_BYTES);
  });

  test('a file shorter than the offset (recreated) is read from its start', () => {
    fs.writeFileSync(record('out'), 'new\n');
    const { out } = readRemote({ out: 500, err: 0 });
    expect(out).toMatchObject({ size: 4, from: 0 });
    const f = new StreamFollower([]);
    f.feed(chunk(0, 'a\nb\n'.repeat(200)));
    f.feed(out);
    expect(f.tail()).toEqual({ first: 0, lines: ['new'], bytes: 4 });
  });
});

describe('the follower', () => {
  test('numbers complete lines across reads and holds a partial one back', () => {
    const f = new StreamFollower([]);
    f.feed(chunk(0, 'a\nb'));
    expect(f.tail()).toEqual({ first: 0, lines: ['a'], bytes: 3 });
    f.feed(chunk(3, 'c\nd\n'));
    expect(f.tail()).toEqual({ first: 0, lines: ['a', 'bc', 'd'], bytes: 7 });
    expect(f.position).toBe(7);
  });

  test('keeps about WINDOW_BYTES of the latest lines, and the head of a line over LINE_MAX', () => {
    const f = new StreamFollower([]);
    f.feed(chunk(0, 'x'.repeat(100) + '\n'));
    const long = 'y'.repeat(LINE_MAX * 3);
    f.feed(chunk(101, `${long}\n`));
    const { lines, first } = f.tail();
    expect(first).toBe(0);
    expect(lines[1]).toBe(`${'y'.repeat(LINE_MAX)} […] (a line of ${LINE_MAX * 3}+ bytes)`);
    const g = new StreamFollower([]);
    g.feed(chunk(0, 'z'.repeat(99).concat('\n').repeat(200)));
    expect(g.tail().first).toBe(200 - g.tail().lines.length);
    expect(g.tail().lines.length).toBe(Math.floor(WINDOW_BYTES / 100));
  });

  test('a burst whose lines passed unseen: the window starts afresh, its first line marked as cut', () => {
    const f = new StreamFollower([]);
    f.feed(chunk(0, 'one\ntw'));
    f.feed({ size: 1000, from: 6, skippedLines: 40, data: Buffer.from('ail\nlast\n') });
    expect(f.tail()).toEqual({ first: 41, lines: ['[…] ail', 'last'], bytes: 1000 });
  });

  test('secrets: masked whole, line by line when multi-line, and where a line is cut', () => {
    const key = '-----BEGIN KEY-----\nAAAABBBBCCCCDDDD\nEEEEFFFFGGGGHHHH\n-----END KEY-----';
    const token = 'hunter2-s3cret';
    rememberSecret(key);
    rememberSecret(token);
    const f = new StreamFollower([key, token]);
    // The key arrives across two reads: neither read holds all of it.
    const part1 = `token=${token}\n-----BEGIN KEY-----\nAAAABBBBCCCCDDDD\n`;
    f.feed(chunk(0, part1));
    f.feed(chunk(part1.length, 'EEEEFFFFGGGGHHHH\n-----END KEY-----\n'));
    expect(f.tail().first + f.tail().lines.length).toBe(5);
    const text = f.tail().lines.join('\n');
    expect(text).not.toMatch(/hunter2|AAAA|EEEE|-----/);
    expect(f.tail().lines[0]).toBe('token=***');
    // A line cut at LINE_MAX in the middle of the token: its start must not show.
    const g = new StreamFollower([token]);
    g.feed(chunk(0, `${'p'.repeat(LINE_MAX - 7)}${token}\n`));
    expect(g.tail().lines[0]).toMatch(/^p+\*\*\* \[…\]/);
    expect(g.tail().lines[0]).not.toContain('hunter');
  });
});

describe('the printer', () => {
  const doc = {
    metadata: { name: 'x' },
    steps: [
      { id: 'first', ssh: { run: 'true' } },
      { id: 'group', parallel: { steps: [{ id: 'inner', ssh: { run: 'true' } }] } },
      { id: 'undoable', ssh: { run: 'true' }, rollback: [{ id: 'undo', ssh: { run: 'true' } }] },
    ],
    rollback: [{ id: 'last_resort', ssh: { run: 'true' } }],
  } as unknown as RunbookDoc;

  function printer(opts: { host?: string; step?: string; json?: boolean } = {}) {
    const out: string[] = [];
    const err: string[] = [];
    const p = new LogPrinter({ json: false, ...opts }, { out: (l) => out.push(l), err: (l) => err.push(l) }, doc);
    return { p, out, err };
  }

  test('each line once, in order: from heartbeats while running, then what the result adds', () => {
    const { p, out, err } = printer();
    const at = { host: 'web-1', step: 'steps[0]' };
    p.running(at, { out: { first: 0, lines: ['l0', 'l1'], bytes: 6 } });
    p.running(at, { out: { first: 1, lines: ['l1', 'l2'], bytes: 9 } });
    p.finished({
      at,
      status: 'succeeded',
      result: { exitCode: 0, stdout: 'l1\nl2\nl3\nend', stderr: '', stdoutLines: 4, stderrLines: 0, stdoutBytes: 15 },
    });
    p.running(at, { out: { first: 3, lines: ['l3', 'late'], bytes: 20 } }); // a stale heartbeat after the end
    expect(out).toEqual([
      'web-1 first | l0',
      'web-1 first | l1',
      'web-1 first | l2',
      'web-1 first | l3',
      'web-1 first | end',
    ]);
    expect(err).toEqual([]);
  });

  test('escapes control characters; a cut tail is marked; a gap is said; stderr lines with `!`', () => {
    const { p, out, err } = printer();
    const at = { host: 'web-1', step: 'steps[1].parallel.steps[0]#2' };
    p.finished({
      at,
      status: 'failed',
      error: 'The command on web-1 exited with 3 (expected 0): boom',
      result: {
        exitCode: 3,
        stdout: 'ail of a long line\n\u001b[2Jcleared\r\u202eevil\u0007\n',
        stderr: 'boom\n',
        truncated: true,
        stdoutBytes: 5_000_000,
        stdoutLines: 90,
        stderrLines: 1,
      },
    });
    expect(out).toEqual([
      'web-1 inner#2 | […] ail of a long line',
      'web-1 inner#2 | \\e[2Jcleared\\r\\u{202e}evil\\x07',
      'web-1 inner#2 ! boom',
    ]);
    expect(err).toEqual([
      'web-1 inner#2: [… 88 earlier stdout lines not kept]',
      'web-1 inner#2: failed (exit 3): The command on web-1 exited with 3 (expected 0): boom',
    ]);
  });

  test('one step shown: no prefix, stderr lines on stderr; filters by host and by step id or path', () => {
    const { p, out, err } = printer({ host: 'web-2', step: 'undo' });
    p.prefix = false;
    const result = { stdout: 'out\n', stderr: 'err\n', stdoutLines: 1, stderrLines: 1 };
    p.finished({ at: { host: 'web-1', step: 'steps[2].rollback[0]' }, status: 'succeeded', result });
    p.finished({ at: { host: 'web-2', step: 'steps[0]' }, status: 'succeeded', result });
    p.finished({ at: { host: 'web-2', step: 'steps[2].rollback[0]' }, status: 'succeeded', result });
    expect(out).toEqual(['out']);
    expect(err).toEqual(['err']);
  });

  test('--json: one object per line and per step end, text as the host sent it (JSON escapes it)', () => {
    const { p, out } = printer({ json: true });
    p.finished({
      at: { host: 'web-1', step: 'rollback[0]' },
      status: 'succeeded',
      result: { exitCode: 0, stdout: 'a\u001b\n', stderr: '', stdoutLines: 1, stderrLines: 0, stdoutBytes: 3 },
    });
    expect(out.map((l) => JSON.parse(l) as unknown)).toEqual([
      {
        type: 'line',
        host: 'web-1',
        step: 'last_resort',
        path: 'rollback[0]',
        key: 'rollback[0]',
        stream: 'stdout',
        n: 0,
        text: 'a\u001b',
      },
      {
        type: 'step',
        host: 'web-1',
        step: 'last_resort',
        path: 'rollback[0]',
        key: 'rollback[0]',
        status: 'succeeded',
        exitCode: 0,
        stdoutBytes: 3,
        truncated: false,
      },
    ]);
  });
});

test.each([
  ['plain text\twith tab', 'plain text\twith tab'],
  ['\u001b[31mred\u001b[0m', '\\e[31mred\\e[0m'],
  ['\u001b]0;title\u0007', '\\e]0;title\\x07'],
  ['back\rspace\b', 'back\\rspace\\x08'],
  ['nul\u0000 del\u007f c1\u009b', 'nul\\x00 del\\x7f c1\\x9b'],
  ['bidi \u202e \u2066 \u200f', 'bidi \\u{202e} \\u{2066} \\u{200f}'],
  ['newline\nin text', 'newline\\x0ain text'],
  ['bytes \ufffd kept', 'bytes \ufffd kept'],
])('escapeControls(%j)', (input, expected) => {
  expect(escapeControls(input)).toBe(expected);
});

test.each([
  ['steps[2]', { path: 'steps[2]' }],
  ['steps[2]#3', { path: 'steps[2]', attempt: '3' }],
  ['steps[1]@4#2', { path: 'steps[1]', poll: '4', attempt: '2' }],
  ['steps[0]:host-3@2', { path: 'steps[0]', poll: '2' }],
  ['exec', { path: 'exec' }],
])('parseStepKey(%s)', (key, expected) => {
  expect(parseStepKey(key)).toEqual(expected);
});

test('stepIdAt: nested, rollback and unknown paths', () => {
  const doc = {
    steps: [
      { id: 'a', rollback: [{ id: 'undo_a' }, { id: 'undo_a2' }] },
      { id: 'p', parallel: { steps: [{ id: 'p0' }, { id: 'p1' }] } },
      { id: 'b', rollback: [{ id: 'undo_b' }] },
    ],
    rollback: [{ id: 'r0' }],
  } as unknown as RunbookDoc;
  expect(stepIdAt(doc, 'steps[0]')).toBe('a');
  expect(stepIdAt(doc, 'steps[1].parallel.steps[1]')).toBe('p1');
  expect(stepIdAt(doc, 'steps[0].rollback[1]')).toBe('undo_a2');
  expect(stepIdAt(doc, 'steps[0].rollback')).toBe('a.rollback');
  expect(stepIdAt(doc, 'steps[2].rollback')).toBe('undo_b');
  expect(stepIdAt(doc, 'rollback[0]')).toBe('r0');
  expect(stepIdAt(doc, 'steps[9]')).toBeUndefined();
  expect(stepIdAt(undefined, 'steps[0]')).toBeUndefined();
});
