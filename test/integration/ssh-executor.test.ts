// Integration (real sshd): the SSH executor directly. Injection strings reach the remote shell as literal data,
// secrets reach the command but never the host's disk, argv, results or logs; sudo, env, cwd, exit codes,
// output caps, timeouts, cancels that kill the process group, wrong keys and unknown host keys.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Secrets } from '../../activities/secrets/providers';
import { forgetSecrets } from '../../common/redact';
import { exec } from '../../activities/ssh/exec';
import { SshPool } from '../../activities/ssh/pool';
import type { SshTarget } from '../../dsl/selector';
import { runSshStep, type SshAction } from '../../activities/ssh/step';
import { REMOTE_RUNS_DIR, stepKey } from '../../activities/ssh/wrapper';
import { createLogger } from '../../common/logger';
import { render, secretToken } from '../../dsl/expr';
import { fleetHost, testRoot } from '../harness/env';

const pool = new SshPool();
const secretValue = `s3cr3t-${crypto.randomBytes(6).toString('hex')}`;
const secrets = new Secrets({ env: { ...process.env, RB_TEST_PASSWORD: secretValue } });
const decls = { pw: { provider: 'env' as const, key: 'RB_TEST_PASSWORD' } };
afterAll(async () => {
  await pool.closeAll();
  forgetSecrets();
});

const host = (): SshTarget => fleetHost(1);
let n = 0;
const key = () => ({ workflowId: `exec-test-${process.pid}-${Date.now()}`, stepPath: `steps[${n++}]` });
const action = (command: string, extra: Partial<SshAction> = {}): SshAction => ({
  kind: 'ssh',
  command,
  sudo: false,
  env: {},
  expectExit: [0],
  ...extra,
});
const remote = async (cmd: string) => (await pool.use(host(), (c) => exec(c, cmd))).stdout;

const INJECTION = [
  '; rm -rf /',
  '$(touch pwned-subst)',
  '`touch pwned-tick`',
  'it\'s "quoted"',
  '*',
  'two\nlines',
  '$HOME',
  'a && touch pwned-and',
  '| tee pwned-pipe',
  '\\',
  ' leading and trailing ',
  '-n',
  '--',
  '#comment',
  '~root',
  '{a,b}',
  '!!',
  'ünïcødé',
];

test('step records older than 7 days are cleaned from a host the first time this process uses it', async () => {
  const h2 = fleetHost(2);
  const on2 = async (cmd: string) => (await pool.use(h2, (c) => exec(c, cmd))).stdout;
  await on2(
    `mkdir -p ${REMOTE_RUNS_DIR} && touch -d '10 days ago' ${REMOTE_RUNS_DIR}/old.out && touch ${REMOTE_RUNS_DIR}/new.out`,
  );
  await runSshStep(pool, secrets, { target: h2, action: action('true'), key: key() });
  let left = '';
  for (let i = 0; i < 30; i++) {
    left = await on2(`ls ${REMOTE_RUNS_DIR} | grep -E '^(old|new)\\.out$' || true`);
    if (left === 'new.out\n') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(left).toBe('new.out\n');
});

test('the injection corpus reaches the remote shell as literal data', async () => {
  for (const value of INJECTION) {
    const command = render('printf %s ${{ params.v }}', { params: { v: value } }, 'shell');
    const r = await runSshStep(pool, secrets, { target: host(), action: action(command), key: key() });
    expect(r.stdout).toBe(value);
  }
  expect(await remote('ls pwned-* 2>/dev/null | wc -l')).toBe('0\n');
});

test('a secret reaches the command, but not the host disk, the result or the logs', async () => {
  const lines: string[] = [];
  const logger = createLogger(
    't',
    'debug',
    new Writable({
      write(c, _e, cb) {
        lines.push(String(c));
        cb();
      },
    }),
  );
  const command = render(
    'printf "%s" ${{ secrets.pw }} | sha256sum | cut -c1-64; sleep 1',
    { secrets: { pw: secretToken('pw') } },
    'shell',
  );
  const k = key();
  const r = await runSshStep(pool, secrets, {
    target: host(),
    action: action(command, { env: { PGPASSWORD: secretToken('pw'), MODE: 'x y' } }),
    key: k,
    secrets: decls,
  });
  expect(r.stdout).toBe(`${crypto.createHash('sha256').update(secretValue).digest('hex')}\n`);
  const record = `${REMOTE_RUNS_DIR}/${stepKey(k.workflowId, k.stepPath, host().name)}`;
  expect(await remote(`ls ${record}.* | wc -l`)).toBe('7\n'); // claimPID, lock, cmd, pid, out, err, exit
  expect(await remote(`grep -l ${secretValue} ${record}.* || echo none`)).toBe('none\n');
  expect(await remote(`cat ${record}.cmd`)).toBe(
    `export PGPASSWORD="$RB_SECRET_pw"\nexport MODE='x y'\nprintf "%s" "$RB_SECRET_pw" | sha256sum | cut -c1-64; sleep 1\n`,
  );
  // Output that echoes the secret is redacted, and so is anything logged.
  const echo = await runSshStep(pool, secrets, {
    target: host(),
    action: action(render('echo leaked=${{ secrets.pw }}', { secrets: { pw: secretToken('pw') } }, 'shell')),
    key: key(),
    secrets: decls,
  });
  expect(echo.stdout).toBe('leaked=***\n');
  logger.info({ detail: `value ${secretValue}`, nested: { list: [secretValue] } }, `message with ${secretValue}`);
  logger.error(new Error(`failed with ${secretValue}`), 'boom');
  const text = lines.join('');
  expect(text).toContain('"msg":"message with ***"');
  expect(text).toContain('"detail":"value ***"');
  expect(text).not.toContain(secretValue);
});

test('sudo, another user, env and cwd', async () => {
  const r1 = await runSshStep(pool, secrets, { target: host(), action: action('id -u', { sudo: true }), key: key() });
  expect(r1.stdout).toBe('0\n');
  const r2 = await runSshStep(pool, secrets, {
    target: host(),
    action: action('id -un', { user: 'nobody' }),
    key: key(),
  });
  expect(r2.stdout).toBe('nobody\n');
  const sudoSecret = render('printf %s ${{ secrets.pw }} | wc -c', { secrets: { pw: secretToken('pw') } }, 'shell');
  const r4 = await runSshStep(pool, secrets, {
    target: host(),
    action: action(sudoSecret, { user: 'nobody' }),
    key: key(),
    secrets: decls,
  });
  expect(r4.stdout.trim()).toBe(String(secretValue.length));
  const r3 = await runSshStep(pool, secrets, {
    target: host(),
    action: action('printf "%s|%s" "$GREETING" "$(pwd)"', { env: { GREETING: "it's $x" }, cwd: '/tmp' }),
    key: key(),
  });
  expect(r3.stdout).toBe("it's $x|/tmp");
});

test('an unexpected exit code is SshCommandFailed with the tail of stderr; an expected one is a result', async () => {
  await expect(
    runSshStep(pool, secrets, { target: host(), action: action('echo bad thing >&2; exit 3'), key: key() }),
  ).rejects.toMatchObject({
    name: 'SshCommandFailed',
    message: 'The command on host-1 exited with 3 (expected 0): bad thing',
  });
  const ok = await runSshStep(pool, secrets, {
    target: host(),
    action: action('exit 3', { expectExit: [0, 3] }),
    key: key(),
  });
  expect(ok.exitCode).toBe(3);
});

test('the same step key never runs twice: a second call returns the recorded result', async () => {
  const k = key();
  const a = action('echo x >> count.txt; wc -l < count.txt');
  await remote('rm -f count.txt');
  const first = await runSshStep(pool, secrets, { target: host(), action: a, key: k });
  const second = await runSshStep(pool, secrets, { target: host(), action: a, key: k });
  expect([first.mode, second.mode]).toEqual(['ran', 'attached']);
  expect(second.stdout).toBe(first.stdout);
  expect(await remote('wc -l < count.txt')).toBe('1\n');
});

test('output beyond the cap keeps the tail, with the sha256 of the whole', async () => {
  const r = await runSshStep(pool, secrets, {
    target: host(),
    action: action("head -c 300000 /dev/zero | tr '\\0' a; printf END"),
    key: key(),
    maxOutputBytes: 1000,
  });
  expect(r.truncated).toBe(true);
  expect(r.stdout).toBe(`${'a'.repeat(997)}END`);
  expect(r.stdoutBytes).toBe(300003);
  expect(r.stdoutSha256).toBe(
    crypto
      .createHash('sha256')
      .update(`${'a'.repeat(300000)}END`)
      .digest('hex'),
  );
});

/** `alive` while the process in the pid file exists and is not a zombie (PID 1 here may reap late). */
const ALIVE = (pidFile: string) =>
  `p=$(cat ${pidFile}); if [ -d /proc/$p ] && ! grep -q '^State:.*Z' /proc/$p/status; then echo alive; else echo gone; fi`;

test('a timeout or a cancel kills the remote process group, children included', async () => {
  const started = Date.now();
  await expect(
    runSshStep(pool, secrets, {
      target: host(),
      action: action('sleep 300 & echo $! > bg.pid; wait'),
      key: key(),
      timeoutMs: 1500,
    }),
  ).rejects.toMatchObject({
    name: 'SshCommandCancelled',
    message: 'The command on host-1 was killed after its 1.5 s timeout.',
  });
  expect(Date.now() - started).toBeLessThan(10_000);
  expect(await remote(ALIVE('bg.pid'))).toBe('gone\n');

  const ac = new AbortController();
  const running = runSshStep(
    pool,
    secrets,
    { target: host(), action: action('sleep 300 & echo $! > bg2.pid; wait'), key: key() },
    { signal: ac.signal },
  );
  await new Promise((r) => setTimeout(r, 700));
  ac.abort();
  await expect(running).rejects.toMatchObject({
    name: 'SshCommandCancelled',
    message: 'The command on host-1 was killed by a cancel.',
  });
  expect(await remote(ALIVE('bg2.pid'))).toBe('gone\n');
});

test('a wrong key is SshAuthError naming user, host and key file', async () => {
  const wrongKey = path.join(testRoot(), 'wrong_id_ed25519');
  if (!fs.existsSync(wrongKey)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrongKey]);
  const target = { ...fleetHost(2), identityFile: wrongKey };
  const other = new SshPool();
  await expect(runSshStep(other, secrets, { target, action: action('true'), key: key() })).rejects.toMatchObject({
    name: 'SshAuthError',
    message: `${target.user}@host-2 (${target.address}:${target.port}) refused the key ${wrongKey}: check the user name and that the public key is in its authorized_keys.`,
  });
  await other.closeAll();
});

test('sudo with a password from a secret (host without NOPASSWD); without it, a clear failure', async () => {
  const target = fleetHost(2);
  const password = `sudo-pw-${crypto.randomBytes(4).toString('hex')}`;
  const dropIn = `/etc/sudoers.d/zz-runbook-test-${target.user}`;
  execFileSync('chpasswd', [], { input: `${target.user}:${password}\n` });
  fs.writeFileSync(dropIn, `${target.user} ALL=(ALL:ALL) PASSWD: ALL\n`, { mode: 0o440 });
  const withPw = new Secrets({ env: { SUDO_PW: password } });
  try {
    const r = await runSshStep(pool, withPw, {
      target,
      action: action("id -u; printf '%s' \"it's\"", { sudo: true }),
      key: key(),
      secrets: { sudo_pw: { provider: 'env', key: 'SUDO_PW' } },
      sudoPasswordSecret: 'sudo_pw',
    });
    expect(r.stdout).toBe("0\nit's");
    await expect(
      runSshStep(pool, withPw, { target, action: action('id -u', { sudo: true }), key: key() }),
    ).rejects.toMatchObject({
      name: 'SshCommandFailed',
      message: 'The command on host-2 exited with 1 (expected 0): sudo: a password is required',
    });
  } finally {
    fs.rmSync(dropIn, { force: true });
  }
});

test('through a jump host: the step runs on the target, reached via the bastion', async () => {
  const target = { ...fleetHost(3), jump: fleetHost(1) };
  const r = await runSshStep(pool, secrets, { target, action: action('whoami'), key: key() });
  expect(r.stdout).toBe(`${fleetHost(3).user}\n`);
});

test('trust on first use only when asked: the key is recorded, and a changed key is refused anyway', async () => {
  const file = path.join(testRoot(), `tofu-${Date.now()}`);
  const strict = { ...fleetHost(2), knownHosts: file };
  fs.writeFileSync(file, '');
  const other = new SshPool();
  try {
    await expect(
      runSshStep(other, secrets, { target: strict, action: action('true'), key: key() }),
    ).rejects.toMatchObject({ name: 'HostKeyError' });
    const r = await runSshStep(other, secrets, {
      target: { ...strict, hostKeyPolicy: 'accept-new' },
      action: action('echo ok'),
      key: key(),
    });
    expect(r.stdout).toBe('ok\n');
    const recorded = fs.readFileSync(file, 'utf8');
    expect(recorded).toBe(
      fs
        .readFileSync(fleetHost(2).knownHosts, 'utf8')
        .split('\n')
        .find((l) => l.startsWith(`[${strict.address}]:${strict.port} `))! + '\n',
    );
    // A different host's key under this name is a changed key: refused even with accept-new.
    const wrong = recorded.replace(
      / \S+\n$/,
      ` ${fs.readFileSync(fleetHost(1).knownHosts, 'utf8').split('\n')[0]!.split(' ')[2]}\n`,
    );
    fs.writeFileSync(file, wrong);
    await other.closeAll();
    await expect(
      runSshStep(other, secrets, {
        target: { ...strict, hostKeyPolicy: 'accept-new' },
        action: action('true'),
        key: key(),
      }),
    ).rejects.toMatchObject({
      name: 'HostKeyError',
      message: expect.stringContaining(
        `Host key of host-2 (${strict.address}:${strict.port}) CHANGED: it presented SHA256:`,
      ),
    });
  } finally {
    await other.closeAll();
  }
});

test('SFTP upload and download, checksum-verified; a repeated upload changes nothing', async () => {
  const { upload, download } = await import('../../activities/ssh/sftp');
  const src = path.join(testRoot(), 'upload.bin');
  fs.writeFileSync(src, crypto.randomBytes(200_000));
  const sha = crypto.createHash('sha256').update(fs.readFileSync(src)).digest('hex');
  const first = await upload(pool, host(), src, 'uploaded.bin', '0640');
  expect(first).toEqual({ sha256: sha, bytes: 200_000, changed: true });
  expect(await remote('stat -c %a uploaded.bin; sha256sum uploaded.bin | cut -c1-64')).toBe(`640\n${sha}\n`);
  expect((await upload(pool, host(), src, 'uploaded.bin', '0640')).changed).toBe(false);
  const back = path.join(testRoot(), 'downloaded.bin');
  expect((await download(pool, host(), 'uploaded.bin', back)).sha256).toBe(sha);
  expect(fs.readFileSync(back).equals(fs.readFileSync(src))).toBe(true);
});

describe('the shell agent (one long-lived sh per connection runs the steps)', () => {
  // In a subshell $$ stays the main shell's pid: a plain exec's own shell, or the agent's shell serving this
  // request (a new one per request, in a session of its own); $PPID is then the agent itself.
  const shellPid = 'echo $$';
  const agentPid = 'echo $PPID';

  test('sequential steps go through one agent process, each served in a process group of its own', async () => {
    const own = new SshPool();
    try {
      const runs = [];
      for (let i = 0; i < 3; i++)
        runs.push(
          (
            await runSshStep(own, secrets, {
              target: host(),
              action: action(`${agentPid}; ${shellPid}; ps -o pgid= -p $$`),
              key: key(),
            })
          ).stdout.split('\n'),
        );
      expect(new Set(runs.map((r) => r[0])).size).toBe(1);
      expect(new Set(runs.map((r) => r[1])).size).toBe(3);
      for (const [, server, group] of runs) expect(group!.trim()).toBe(server);
      expect(await remote(`tr '\\0' ' ' < /proc/${runs[0]![0]}/cmdline`)).toContain('RB_AGENT_INPUT');
    } finally {
      await own.closeAll();
    }
  });

  test('shell agent off (RUNBOOK_SSH_AGENT=off): each step gets its own exec channel and shell', async () => {
    const own = new SshPool({ shellAgent: false });
    try {
      const runs = [];
      for (let i = 0; i < 2; i++)
        runs.push(
          await runSshStep(own, secrets, {
            target: host(),
            action: action(
              render(
                `${agentPid}; ${shellPid}; printf %s \${{ secrets.pw }} | wc -c`,
                { secrets: { pw: secretToken('pw') } },
                'shell',
              ),
            ),
            key: key(),
            secrets: decls,
          }),
        );
      expect(runs.map((r) => r.mode)).toEqual(['ran', 'ran']);
      const [a, b] = runs.map((r) => r.stdout.split('\n'));
      // Not through an agent: the shell's parent is not an agent (with one, it is the agent, RB_AGENT_INPUT in its
      // command line, alive between steps).
      expect(a![1]).not.toBe(b![1]);
      expect(await remote(`tr '\\0' ' ' < /proc/${a![0]}/cmdline 2>/dev/null || true`)).not.toContain('RB_AGENT_INPUT');
      expect(a![2]!.trim()).toBe(String(secretValue.length)); // the secret still arrives, on the exec's stdin
    } finally {
      await own.closeAll();
    }
  });

  test('an agent killed mid-step: the step re-attaches over a plain exec and its command ran once', async () => {
    const own = new SshPool();
    const counter = `agent-lost-${process.pid}-${Date.now()}`;
    try {
      // The agent and the shell serving the request: the wrapper then answers to nobody.
      const step = runSshStep(own, secrets, {
        target: host(),
        action: action(`echo x >> ${counter}; echo $PPID $$ > ${counter}.agent; sleep 2; echo done`),
        key: key(),
      });
      let agent = '';
      for (let i = 0; i < 50 && !agent; i++) {
        agent = (await remote(`cat ${counter}.agent 2>/dev/null || true`)).trim();
        if (!agent) await new Promise((r) => setTimeout(r, 100));
      }
      expect(agent).toMatch(/^\d+ \d+$/);
      await remote(`kill -KILL ${agent}`);
      const result = await step;
      expect([result.mode, result.stdout, result.exitCode]).toEqual(['attached', 'done\n', 0]);
      expect(await remote(`cat ${counter}`)).toBe('x\n');
    } finally {
      await own.closeAll();
    }
  });
});
