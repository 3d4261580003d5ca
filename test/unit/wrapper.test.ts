// The exactly-once wrapper and its kill script, run by the real /bin/sh on this machine (no ssh in between), with
// a PATH that has no sudo: a cancel has to work for a login user who cannot sudo. Both ways of starting the
// command are covered: the login shell leading its own process group (what sshd gives an exec) and not (the
// setsid fallback).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { INLINE_SCRIPT_MAX, killScript, parseTrailer, shCommand, stepKey, wrapperScript, wrapperStdin } from '../../activities/ssh/wrapper';
import { waitUntil } from '../harness/processes';

let home: string;
let bin: string;
beforeAll(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-wrapper-'));
  bin = path.join(home, 'bin');
  fs.mkdirSync(bin);
  for (const tool of ['sh', 'mkdir', 'rm', 'tail', 'sleep', 'base64', 'cat', 'setsid', 'echo']) {
    fs.symlinkSync(execFileSync('/bin/sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), path.join(bin, tool));
  }
});
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

interface Ran { code: number | null; signal: string | null; stdout: string; stderr: string }

/** Runs the wrapper like sshd does with a bash login shell: `bash -c EXEC`, in a session of its own when `leader`. */
function wrapper(key: string, command: string, leader: boolean): Promise<Ran> {
  const script = `${command}\n`;
  const child = spawn('/bin/bash', ['-c', shCommand(wrapperScript({ key, capBytes: 4096, sudo: false, secretNames: [], sudoPassword: false }, script))],
    { env: { HOME: home, PATH: bin }, detached: leader, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => undefined); // an attaching wrapper exits without reading its input
  child.stdin.end(wrapperStdin({}, script));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

const record = (key: string, ext: string) => path.join(home, '.runbook', 'runs', `${key}.${ext}`);
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

test.each([
  ['the login shell leads its process group (as under sshd)', true],
  ['it does not (setsid fallback)', false],
])('cancel without sudo kills the whole command, records it, and a re-attach reports it: %s', async (_what, leader) => {
  const key = stepKey(`wf-${leader}`, 'stop', 'host-1');
  const marker = path.join(home, `child-${leader}`);
  // The command's own child writes its pid: it must die with the command.
  const first = wrapper(key, `sleep 60 & echo $! > ${marker}; wait`, leader);
  await waitUntil(async () => fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').trim() !== '', 'the command to start');
  const grandchild = Number(fs.readFileSync(marker, 'utf8'));
  const [runner, group] = fs.readFileSync(record(key, 'pid'), 'utf8').trim().split(' ').map(Number);
  expect(group === runner).toBe(!leader); // under setsid the runner leads a new group; otherwise the login shell's

  execFileSync('/bin/sh', ['-c', killScript(key)], { env: { HOME: home, PATH: bin } });
  const killed = await first;
  expect(fs.readFileSync(record(key, 'exit'), 'utf8').trim()).toBe('cancelled');
  await waitUntil(async () => !alive(grandchild), 'the command\'s child to die');
  if (leader) {
    expect(killed.signal).toBe('SIGTERM'); // the wrapper shares the group; the worker attaches again for the outcome
  } else {
    expect(parseTrailer(killed.stderr)).toMatchObject({ mode: 'ran', exit: 'cancelled' });
  }
  const again = await wrapper(key, 'echo must-not-run', leader);
  expect(parseTrailer(again.stderr)).toMatchObject({ mode: 'attached', exit: 'cancelled' });
  expect(again.stdout).not.toContain('must-not-run');
}, 30_000);

test('two attempts at once: the command runs once and both report its output and exit code', async () => {
  const key = stepKey('wf-twice', 'step', 'host-1');
  const counter = path.join(home, 'counter');
  const cmd = `echo x >> ${counter}; sleep 1; echo out; echo err >&2; exit 3`;
  const [a, b] = await Promise.all([wrapper(key, cmd, true), wrapper(key, cmd, true)]);
  expect(fs.readFileSync(counter, 'utf8')).toBe('x\n');
  for (const r of [a, b]) {
    expect(r.stdout).toBe('out\n');
    expect(parseTrailer(r.stderr)).toMatchObject({ exit: 3, stderr: 'err\n' });
    expect(r.code).toBe(0); // tail's: it sent the output last; the trailer carries the command's code
  }
  expect([parseTrailer(a.stderr)!.mode, parseTrailer(b.stderr)!.mode].sort()).toEqual(['attached', 'ran']);
});

test('a script that calls exit still gets its exit code recorded; without output the wrapper exits with it', async () => {
  const key = stepKey('wf-exit', 'step', 'host-1');
  const r = await wrapper(key, 'echo before; exit 7; echo after', true);
  expect(r.stdout).toBe('before\n');
  expect(parseTrailer(r.stderr)).toMatchObject({ mode: 'ran', exit: 7 });
  expect(fs.readFileSync(record(key, 'exit'), 'utf8').trim()).toBe('7');
  const quiet = await wrapper(stepKey('wf-exit', 'quiet', 'host-1'), 'exit 5', true);
  expect([quiet.code, quiet.stdout]).toEqual([5, '']);
});

test('the script runs with the login shell\'s state, not the wrapper\'s', async () => {
  const r = await wrapper(stepKey('wf-state', 'step', 'host-1'), 'echo "[${D}${R}${undefined_var}]"; type finish >/dev/null 2>&1 || echo no-finish; umask', true);
  expect(r.stdout).toBe(`[]\nno-finish\n${execFileSync('/bin/sh', ['-c', 'umask'], { encoding: 'utf8' })}`);
  expect(fs.statSync(path.join(home, '.runbook', 'runs')).mode & 0o777).toBe(0o700);
});

test.each([
  ['inline, just under the limit', INLINE_SCRIPT_MAX - 200],
  ['on stdin, over the limit', 3 * INLINE_SCRIPT_MAX],
])('a quote-heavy script arrives intact: %s', async (_what, size) => {
  const line = `x='a"b\\c$d\`e!f'"'"'g'; y="$x"\n`; // every character the two levels of quoting must get right
  const body = line.repeat(Math.floor(size / line.length));
  const r = await wrapper(stepKey(`wf-quote-${size}`, 'step', 'host-1'), `${body}printf '%s' "$y"`, true);
  expect(parseTrailer(r.stderr)).toMatchObject({ exit: 0, stderr: '' });
  expect(r.stdout).toBe('a"b\\c$d`e!f\'g');
});
