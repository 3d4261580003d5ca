// Integration (real sshd): the SSH executor when things go wrong around a step. A cancel kills only its own step's
// process group, never what earlier steps left running nor the shell agent's other work; a connection dropped
// mid-step is a retryable failure whose retry re-attaches to the one run of the command; and a jump host stays
// connected while a connection tunnelled through it is in use, however long that is past its idle time.
import crypto from 'node:crypto';
import { Secrets } from '../../activities/secrets/providers';
import { FINAL_FAILURES, isIn } from '../../common/failure-types';
import { exec } from '../../activities/ssh/exec';
import { SshPool } from '../../activities/ssh/pool';
import type { SshTarget } from '../../dsl/selector';
import { runSshStep, type SshAction } from '../../activities/ssh/step';
import { fleetHost } from '../harness/env';
import { waitUntil } from '../harness/processes';

const pool = new SshPool();
const secrets = new Secrets({ env: {} });
afterAll(async () => {
  await pool.closeAll();
});

const host = (): SshTarget => fleetHost(2);
const tag = () => `res-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
let n = 0;
const key = () => ({
  workflowId: `resilience-${process.pid}-${Date.now()}`,
  runId: crypto.randomUUID(),
  stepPath: `steps[${n++}]`,
});
const action = (command: string): SshAction => ({ kind: 'ssh', command, sudo: false, env: {}, expectExit: [0] });
const remote = async (cmd: string, target = host()) => (await pool.use(target, (c) => exec(c, cmd))).stdout;
/** `alive` while the process in the pid file exists and is not a zombie. */
const ALIVE = (pidFile: string) =>
  `p=$(cat ${pidFile}); if [ -d /proc/$p ] && ! grep -q '^State:.*Z' /proc/$p/status; then echo alive; else echo gone; fi`;

test.each([
  ['through the shell agent', 'on' as const],
  ['over plain exec channels', 'off' as const],
])(
  'a cancel kills only its own step (%s): what an earlier step left running survives, and steps still run after it',
  async (_how, mode) => {
    const own = new SshPool({ shellAgent: mode === 'on' });
    const t = tag();
    try {
      // Step A leaves a process running behind it, as `systemctl`-less scripts often do.
      const a = await runSshStep(own, secrets, {
        target: host(),
        action: action(`nohup sleep 300 > /dev/null 2>&1 & echo $! > ${t}.a; echo $PPID`),
        key: key(),
      });
      expect(a.exitCode).toBe(0);
      const ac = new AbortController();
      const b = runSshStep(
        own,
        secrets,
        { target: host(), action: action(`echo $PPID > ${t}.b; sleep 60`), key: key() },
        { signal: ac.signal },
      );
      await waitUntil(async () => (await remote(`cat ${t}.b 2>/dev/null || true`)) !== '', 'step B to start');
      if (mode === 'on') expect(await remote(`cat ${t}.b`)).toBe(a.stdout); // the same agent ran both
      ac.abort();
      await expect(b).rejects.toMatchObject({ name: 'SshCommandCancelled' });
      expect(await remote(ALIVE(`${t}.a`))).toBe('alive\n');
      // The connection is still good for steps (through the same agent or a clean new one).
      const c = await runSshStep(own, secrets, { target: host(), action: action('echo after'), key: key() });
      expect([c.mode, c.stdout]).toEqual(['ran', 'after\n']);
    } finally {
      await remote(`kill $(cat ${t}.a) 2>/dev/null; rm -f ${t}.a ${t}.b`);
      await own.closeAll();
    }
  },
  60_000,
);

test.each([
  ['through the shell agent', 'on' as const],
  ['over a plain exec channel', 'off' as const],
])(
  'the connection dropped mid-step (%s): a retryable SshConnectionLost, and the retry re-attaches to the one run',
  async (_how, mode) => {
    const own = new SshPool({ shellAgent: mode === 'on' });
    const t = tag();
    try {
      // The sshd process serving this pooled connection: killing it drops the connection, as a network failure would.
      const sshd = (await own.use(host(), (c) => exec(c, 'echo $PPID'))).stdout.trim();
      expect(await remote(`tr '\\0' ' ' < /proc/${sshd}/cmdline`)).toMatch(/^sshd/);
      const k = key();
      const a = action(`echo x >> ${t}.count; echo started > ${t}.started; sleep 2; echo done`);
      const first = runSshStep(own, secrets, { target: host(), action: a, key: k }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      await waitUntil(
        async () => (await remote(`cat ${t}.started 2>/dev/null || true`)) !== '',
        'the command to start',
      );
      const killedAt = Date.now();
      await remote(`kill -KILL ${sshd}`);
      const err = await first;
      expect(err).toMatchObject({
        name: 'SshConnectionLost',
        message: `The connection to ${host().name} was lost before the step reported its outcome. A retry re-attaches to the command (it is not run again).`,
      });
      expect(isIn(FINAL_FAILURES, err!.name)).toBe(false);
      expect(Date.now() - killedAt).toBeLessThan(1500); // at once, not when the command ends
      const retry = await runSshStep(own, secrets, { target: host(), action: a, key: k });
      expect([retry.mode, retry.stdout, retry.exitCode]).toEqual(['attached', 'done\n', 0]);
      expect(await remote(`cat ${t}.count`)).toBe('x\n');
    } finally {
      await remote(`rm -f ${t}.count ${t}.started`);
      await own.closeAll();
    }
  },
  60_000,
);

test('a jump host stays connected while a connection tunnelled through it is in use, past its idle time, then closes', async () => {
  const own = new SshPool({ idleMs: 300 });
  const bastion = fleetHost(1);
  const target = { ...fleetHost(3), jump: bastion };
  try {
    const r = await runSshStep(own, secrets, { target, action: action('sleep 1.5; echo ok'), key: key() });
    expect([r.mode, r.stdout]).toEqual(['ran', 'ok\n']);
    // Then nothing is in use: the target's connection idles out, and after it the bastion's.
    const before = await own.use(bastion, async (c) => c);
    await new Promise((res) => setTimeout(res, 1500));
    const after = await own.use(bastion, async (c) => c);
    expect(after).not.toBe(before);
  } finally {
    await own.closeAll();
  }
}, 30_000);
