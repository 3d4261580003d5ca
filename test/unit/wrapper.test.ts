// The exactly-once wrapper and its kill script, run by the real /bin/sh on this machine (no ssh in between), with
// a PATH that has no sudo: a cancel has to work for a login user who cannot sudo. Both ways of starting the
// command are covered: the login shell leading its own process group (what sshd gives an exec) and not (the
// setsid fallback). Also: input that arrives incomplete (nothing is claimed or run), records whose pid is not
// the recorded process any more (another boot, another start time), claims taken over only from a dead claimer,
// and run-scoped record keys.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  INLINE_SCRIPT_MAX,
  killScript,
  parseTrailer,
  shCommand,
  stepKey,
  wrapperScript,
  wrapperStdin,
} from '../../activities/ssh/wrapper';
import { waitUntil } from '../harness/processes';
import { useShellHome } from '../harness/shell-home';

const sandbox = useShellHome('runbook-wrapper-');

interface Ran {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the wrapper like sshd does with a bash login shell: `bash -c EXEC`, in a session of its own when `leader`.
 * `stdin` replaces the payload the wrapper expects (to cut it short); `secrets` go into the payload.
 */
function wrapper(
  key: string,
  command: string,
  leader: boolean,
  opts: { secrets?: Record<string, string>; stdin?: Buffer } = {},
): Promise<Ran> {
  const script = `${command}\n`;
  const child = spawn(
    '/bin/bash',
    [
      '-c',
      shCommand(wrapperScript({ key, capBytes: 4096, sudo: false, secretNames: [], sudoPassword: false }, script)),
    ],
    { env: { HOME: sandbox.home, PATH: sandbox.bin }, detached: leader, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  child.stdin.on('error', () => undefined); // a wrapper may exit before it read all of its input
  child.stdin.end(opts.stdin ?? wrapperStdin(opts.secrets ?? {}, script));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

const record = (key: string, ext: string) => path.join(sandbox.home, '.runbook', 'runs', `${key}.${ext}`);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test.each([
  ['the login shell leads its process group (as under sshd)', true],
  ['it does not (setsid fallback)', false],
])(
  'cancel without sudo kills the whole command, records it, and a re-attach reports it: %s',
  async (_what, leader) => {
    const key = stepKey(`wf-${leader}`, 'stop', 'host-1');
    const marker = path.join(sandbox.home, `child-${leader}`);
    // The command's own child writes its pid: it must die with the command.
    const first = wrapper(key, `sleep 60 & echo $! > ${marker}; wait`, leader);
    await waitUntil(
      async () => fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').trim() !== '',
      'the command to start',
    );
    const grandchild = Number(fs.readFileSync(marker, 'utf8'));
    const [runner, group] = fs.readFileSync(record(key, 'pid'), 'utf8').trim().split(' ').map(Number);
    expect(group === runner).toBe(!leader); // under setsid the runner leads a new group; otherwise the login shell's

    execFileSync('/bin/sh', ['-c', killScript(key)], { env: { HOME: sandbox.home, PATH: sandbox.bin } });
    const killed = await first;
    expect(fs.readFileSync(record(key, 'exit'), 'utf8').trim()).toBe('cancelled');
    await waitUntil(async () => !alive(grandchild), "the command's child to die");
    if (leader) {
      expect(killed.signal).toBe('SIGTERM'); // the wrapper shares the group; the worker attaches again for the outcome
    } else {
      expect(parseTrailer(killed.stderr)).toMatchObject({ mode: 'ran', exit: 'cancelled' });
    }
    const again = await wrapper(key, 'echo must-not-run', leader);
    expect(parseTrailer(again.stderr)).toMatchObject({ mode: 'attached', exit: 'cancelled' });
    expect(again.stdout).not.toContain('must-not-run');
  },
  30_000,
);

test('two attempts at once: the command runs once and both report its output and exit code', async () => {
  const key = stepKey('wf-twice', 'step', 'host-1');
  const counter = path.join(sandbox.home, 'counter');
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

test("the script runs with the login shell's state, not the wrapper's", async () => {
  const r = await wrapper(
    stepKey('wf-state', 'step', 'host-1'),
    'echo "[${D}${R}${undefined_var}]"; type finish >/dev/null 2>&1 || echo no-finish; umask',
    true,
  );
  expect(r.stdout).toBe(`[]\nno-finish\n${execFileSync('/bin/sh', ['-c', 'umask'], { encoding: 'utf8' })}`);
  expect(fs.statSync(path.join(sandbox.home, '.runbook', 'runs')).mode & 0o777).toBe(0o700);
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

test('record keys: a run id scopes the key; without one it is the key earlier versions derived', () => {
  const sha = (text: string) => crypto.createHash('sha256').update(text).digest('hex').slice(0, 32);
  expect(stepKey('wf', 'steps[0]', 'host-1')).toBe(sha('wf\0steps[0]\0host-1'));
  const a = stepKey('wf', 'steps[0]', 'host-1', 'run-a');
  const b = stepKey('wf', 'steps[0]', 'host-1', 'run-b');
  expect(a).toBe(sha('wf\0run-a\0steps[0]\0host-1'));
  expect(new Set([a, b, stepKey('wf', 'steps[0]', 'host-1')]).size).toBe(3);
});

describe('input that arrives incomplete: nothing is claimed, nothing runs', () => {
  const secrets = { pw: 'alice-password-1234' };
  const leaks = (marker: string) => `printf '%s' "$RB_SECRET_pw" > ${marker}`;
  const big = (marker: string) =>
    `${'# padding line to go over the inline limit\n'.repeat(Math.ceil((2 * INLINE_SCRIPT_MAX) / 44))}echo ran > ${marker}`;
  const payload = (command: string) => wrapperStdin(secrets, `${command}\n`);
  test.each([
    ['no input at all', leaks, () => Buffer.alloc(0)],
    ['cut inside the header', leaks, (cmd: string) => payload(cmd).subarray(0, 5)],
    ['cut inside a secret line', leaks, (cmd: string) => payload(cmd).subarray(0, payload(cmd).indexOf('=') + 4)],
    ['cut before the end-of-secrets line', leaks, (cmd: string) => payload(cmd).subarray(0, payload(cmd).length - 1)],
    [
      'a secret altered in transit (same length)',
      leaks,
      (cmd: string) => {
        const p = Buffer.from(payload(cmd));
        const at = p.indexOf('=') + 2;
        p[at] = p[at] === 0x41 ? 0x42 : 0x41;
        return p;
      },
    ],
    [
      'a long script on stdin cut in the middle',
      big,
      (cmd: string) => {
        const p = wrapperStdin({}, `${cmd}\n`);
        return p.subarray(0, Math.floor(p.length / 2));
      },
    ],
  ])('%s', async (what, command, input) => {
    const key = stepKey('wf-incomplete', what, 'host-1');
    const marker = path.join(sandbox.home, `incomplete-${key}`);
    const r = await wrapper(key, command(marker), true, { stdin: input(command(marker)) });
    expect(r.code).toBe(242);
    expect(r.stderr).toBe('\n__RUNBOOK_WRAPPER__ input=incomplete\n');
    expect(parseTrailer(r.stderr)).toBeUndefined();
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.readdirSync(path.join(sandbox.home, '.runbook', 'runs')).filter((f) => f.startsWith(key))).toEqual([]);
  });

  test('the whole input: the secret and a long script arrive, and the next attempt (same key) attaches', async () => {
    const key = stepKey('wf-incomplete', 'whole', 'host-1');
    const marker = path.join(sandbox.home, `whole-${key}`);
    const cmd = `${big(`${marker}.big`)}; ${leaks(marker)}`;
    const r = await wrapper(key, cmd, true, { secrets });
    expect(parseTrailer(r.stderr)).toMatchObject({ mode: 'ran', exit: 0 });
    expect(fs.readFileSync(marker, 'utf8')).toBe(secrets.pw);
    expect(fs.readFileSync(`${marker}.big`, 'utf8')).toBe('ran\n');
    const again = await wrapper(key, cmd, true, { secrets });
    expect(parseTrailer(again.stderr)).toMatchObject({ mode: 'attached', exit: 0 });
  });
});

/** A long-lived process that is not a step: its pid, boot id and start time as a record would hold them. */
function bystander(): { child: ChildProcess; pid: number; start: string } {
  const child = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  const stat = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8');
  return { child, pid: child.pid!, start: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]! };
}
const bootId = () => fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const OTHER_BOOT = '00000000-0000-4000-8000-000000000000';

/** The wrapper's result, or 'still running' when it has not finished within `ms`. */
const within = (ms: number, run: Promise<Ran>) =>
  Promise.race([run, new Promise<'still running'>((r) => setTimeout(() => r('still running'), ms))]);

describe('a recorded pid is trusted only with its boot id and start time', () => {
  test.each([
    [
      'another start time (the pid was reused)',
      (b: ReturnType<typeof bystander>) => `${b.pid} ${b.pid} ${b.pid} ${bootId()} 1 1`,
    ],
    [
      'another boot (the host rebooted)',
      (b: ReturnType<typeof bystander>) => `${b.pid} ${b.pid} ${b.pid} ${OTHER_BOOT} ${b.start} ${b.start}`,
    ],
  ])(
    '%s: attach reports the command lost at once, and a cancel signals nothing',
    async (what, pidLine) => {
      const other = bystander();
      try {
        const key = stepKey('wf-reuse', what, 'host-1');
        fs.mkdirSync(path.join(sandbox.home, '.runbook', 'runs'), { recursive: true, mode: 0o700 });
        fs.writeFileSync(record(key, 'lock'), '');
        fs.writeFileSync(record(key, 'pid'), `${pidLine(other)}\n`);
        const r = await within(3000, wrapper(key, 'echo must-not-run', true));
        expect(r === 'still running' ? r : parseTrailer(r.stderr)).toMatchObject({
          mode: 'attached',
          exit: 'lost',
          pid: String(other.pid),
        });
        execFileSync('/bin/sh', ['-c', killScript(key)], { env: { HOME: sandbox.home, PATH: sandbox.bin } });
        expect(alive(other.pid)).toBe(true);
      } finally {
        other.child.kill('SIGKILL');
      }
    },
    20_000,
  );
});

describe('a claim is taken over only when its claimer is provably gone', () => {
  const claimed = (key: string, content: string) => {
    fs.mkdirSync(path.join(sandbox.home, '.runbook', 'runs'), { recursive: true, mode: 0o700 });
    fs.writeFileSync(record(key, 'lock'), content);
  };

  test('a live claimer that is slow to start the command is waited for, however long; once it is dead, the claim is taken over', async () => {
    const claimer = bystander();
    const key = stepKey('wf-claim', 'slow', 'host-1');
    const marker = path.join(sandbox.home, `claim-slow-${key}`);
    claimed(key, `${claimer.pid} ${bootId()} ${claimer.start}\n`);
    const second = wrapper(key, `echo ran >> ${marker}`, true);
    expect(await within(3500, second)).toBe('still running'); // the old rule took over after 2 s
    expect(fs.existsSync(marker)).toBe(false);
    claimer.child.kill('SIGKILL');
    const r = await second;
    expect(parseTrailer(r.stderr)).toMatchObject({ mode: 'ran', exit: 0 });
    expect(fs.readFileSync(marker, 'utf8')).toBe('ran\n');
  }, 20_000);

  test('a claim whose claimer is dead but whose lock a live process still holds open (its runner) is waited for', async () => {
    const key = stepKey('wf-claim', 'held', 'host-1');
    const marker = path.join(sandbox.home, `claim-held-${key}`);
    claimed(key, `999999 ${bootId()} 1\n`); // a claimer that no longer runs
    const holder = spawn('/bin/sh', ['-c', `exec 9>>"${record(key, 'lock')}"; exec sleep 60`], { stdio: 'ignore' });
    await waitUntil(async () => fs.existsSync(`/proc/${holder.pid}/fd/9`), 'the holder to open the lock');
    const second = wrapper(key, `echo ran >> ${marker}`, true);
    expect(await within(2500, second)).toBe('still running');
    holder.kill('SIGKILL');
    expect(parseTrailer((await second).stderr)).toMatchObject({ mode: 'ran', exit: 0 });
    expect(fs.readFileSync(marker, 'utf8')).toBe('ran\n');
  }, 20_000);

  test('a lock still empty (its claimer between the create and writing itself into it): its announced claimer is waited for', async () => {
    const claimer = bystander();
    const key = stepKey('wf-claim', 'announced', 'host-1');
    const marker = path.join(sandbox.home, `claim-announced-${key}`);
    claimed(key, '');
    fs.writeFileSync(record(key, `claim${claimer.pid}`), `${claimer.pid} ${bootId()} ${claimer.start}\n`);
    const second = wrapper(key, `echo ran >> ${marker}`, true);
    expect(await within(2500, second)).toBe('still running');
    claimer.child.kill('SIGKILL');
    expect(parseTrailer((await second).stderr)).toMatchObject({ mode: 'ran', exit: 0 });
    expect(fs.readFileSync(marker, 'utf8')).toBe('ran\n');
  }, 20_000);

  test.each([
    ['a claimer from another boot (even with its pid in use now)', () => `${process.pid} ${OTHER_BOOT} 1\n`],
    ['a claimer of this boot that no longer runs', () => `${process.pid} ${bootId()} 1\n`],
    ['a lock left empty (crash right after the create)', () => ''],
  ])(
    '%s: two attempts at once take it over, and the command runs once',
    async (what, content) => {
      const key = stepKey('wf-claim', what, 'host-1');
      const counter = path.join(sandbox.home, `claim-dead-${key}`);
      claimed(key, content());
      const [a, b] = await Promise.all([
        wrapper(key, `echo x >> ${counter}; sleep 0.3`, true),
        wrapper(key, `echo x >> ${counter}; sleep 0.3`, true),
      ]);
      expect(fs.readFileSync(counter, 'utf8')).toBe('x\n');
      expect([parseTrailer(a.stderr)?.mode, parseTrailer(b.stderr)?.mode].sort()).toEqual(['attached', 'ran']);
    },
    20_000,
  );
});
