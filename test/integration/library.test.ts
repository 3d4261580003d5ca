// Integration (root; real sshd, nginx and HAProxy on a fleet of its own): the shipped runbooks of runbooks/ on the
// services they manage, asserting the real end state. restart-service: HAProxy never serves an error while every
// web host restarts; a host whose service does not come back stops the rollout and stays out of the balancer.
// disk-cleanup: a DiskFull alert through a real Alertmanager and the real receiver cleans the host's scratch
// directory once, however often Alertmanager repeats it. postgres-backup: the backup host's copy restores to as
// many rows as the source. postgres-failover: after the approval, writes through HAProxy land on the promoted
// standby and the old primary takes none; a second failover is refused and leaves the old primary down.
// password-reset: the generated password logs in over SSH and the old one does not; the password is in none of
// the worker's logs, the audit records or the workflow history.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import pino from 'pino';
import { Client as SshClient } from 'ssh2';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { fleetDown, fleetUp, type FleetState } from '../../fleet/fleet';
import { publishSitePackage } from '../../fleet/services';
import type { runbook, RunbookResult } from '../../workflows/runbook';
import { decideSignal, stateQuery } from '../../workflows/messages';
import { guardId } from '../../workflows/guard-state';
import { startAlertmanager } from '../harness/alertmanager';
import { connectTestEnv, testRoot, uniqueTaskQueue, withEngineWorker } from '../harness/env';
import { waitForPort } from '../../common/ports';
import { waitUntil } from '../harness/processes';
import { withReceiver } from '../harness/receiver';

const RUNBOOKS = path.join(__dirname, '..', '..', 'runbooks');
let env: TestWorkflowEnvironment;
let fleet: FleetState;
let dir: string;
let httpPort: number;
const notifications: { channel: string; message: string }[] = [];
let notifyServer: http.Server;
let notifyUrl: string;

const inventory = () => path.join(dir, 'inventory.yaml');
const srv = (host: string, ...p: string[]) => path.join(dir, 'hosts', host, 'srv', ...p);
const nginxPid = (host: string) => fs.readFileSync(srv(host, 'run', 'nginx.pid'), 'utf8').trim();
const svc = (host: string, ...args: string[]) =>
  execFileSync(srv(host, 'bin', 'svc'), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const lbAddress = () => fleet.hosts[0]!.address;

/** A command to HAProxy's runtime API on host-1; its answer. */
const lbCommand = (command: string) =>
  execFileSync('socat', ['-t', '5', 'stdio', `UNIX-CONNECT:${srv('host-1', 'run', 'haproxy.sock')}`], {
    input: `${command}\n`,
    encoding: 'utf8',
  });

/** HAProxy's view of a backend (`web` or `pg`), from its runtime API: server name → status and current sessions. */
function backend(name = 'web'): Record<string, { status: string; sessions: number }> {
  const csv = lbCommand('show stat');
  const out: Record<string, { status: string; sessions: number }> = {};
  for (const line of csv.split('\n')) {
    const f = line.split(',');
    if (f[0] === name && f[1] !== 'FRONTEND' && f[1] !== 'BACKEND' && f[1])
      out[f[1]] = { status: f[17]!, sessions: Number(f[4]) };
  }
  return out;
}

/** Samples HAProxy's status of host-2 and host-3 every 50 ms until stopped (at most 60 s); each change, in order. */
function sampleBackend() {
  const seen: [string, string][] = [];
  let stopped = false;
  const deadline = Date.now() + 60_000;
  const done = (async () => {
    while (!stopped && Date.now() < deadline) {
      const b = backend();
      const now: [string, string] = [b['host-2']!.status, b['host-3']!.status];
      const last = seen.at(-1);
      if (!last || last[0] !== now[0] || last[1] !== now[1]) seen.push(now);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await done;
      return seen;
    },
  };
}

const allUp = () =>
  waitUntil(
    () => Promise.resolve(Object.values(backend()).every((s) => s.status === 'UP')),
    'every web server UP in HAProxy',
    20_000,
  );

/**
 * Requests through HAProxy until stopped: 4 at a time, each on a new connection, bounded at 60 s and 20,000
 * requests. Counts answers by status, and connection errors.
 */
function load() {
  const counts = { ok: 0, bad: 0, errors: [] as string[], byHost: {} as Record<string, number> };
  let stopped = false;
  const deadline = Date.now() + 60_000;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.get({ host: lbAddress(), port: httpPort, path: '/', agent: false, timeout: 5_000 }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => {
          if (res.statusCode === 200) {
            counts.ok++;
            counts.byHost[body.trim()] = (counts.byHost[body.trim()] ?? 0) + 1;
          } else {
            counts.bad++;
            counts.errors.push(`${res.statusCode} ${body.slice(0, 80)}`);
          }
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err) => {
        counts.bad++;
        counts.errors.push(err.message);
        resolve();
      });
    });
  const worker = async () => {
    while (!stopped && Date.now() < deadline && counts.ok + counts.bad < 20_000) {
      await one();
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const workers = Promise.all([worker(), worker(), worker(), worker()]);
  return {
    counts,
    stop: async () => {
      stopped = true;
      await workers;
      return counts;
    },
  };
}

/** Runs a shipped runbook on its own task queue; `during` acts on the run while it goes (e.g. approves it). */
async function runbookRun(
  name: string,
  params: Record<string, unknown>,
  during?: (handle: WorkflowHandle) => Promise<void>,
  opts: Parameters<typeof withEngineWorker>[3] = {},
): Promise<{ result?: RunbookResult; handle: WorkflowHandle }> {
  const taskQueue = uniqueTaskQueue(name);
  return withEngineWorker(
    env,
    taskQueue,
    async () => {
      const handle = await env.client.workflow.start<typeof runbook>('runbook', {
        taskQueue,
        workflowId: `${taskQueue}-run`,
        args: [{ runbook: name, params, inventory: inventory(), initiator: 'test' }],
      });
      try {
        await during?.(handle);
        return { result: await handle.result(), handle };
      } catch (err) {
        if (!(err instanceof WorkflowFailedError)) throw err;
        const details = (err.cause as { details?: unknown[] } | undefined)?.details;
        return { result: details?.[0] as RunbookResult | undefined, handle };
      }
    },
    { ...opts, config: { ...engineConfig(), ...opts.config } },
  );
}

const engineConfig = () => ({
  runbookDir: RUNBOOKS,
  inventories: [inventory()],
  defaultInventory: inventory(),
  notifyUrl,
});

beforeAll(async () => {
  dir = path.join(testRoot(), 'library-fleet');
  // host-1 HAProxy (and the backup host), host-2 and host-3 nginx, host-4 the PostgreSQL primary, host-5 its standby.
  fleet = await fleetUp({ hosts: 5, dir, services: true });
  httpPort = Number(/http_port: (\d+)/.exec(fs.readFileSync(inventory(), 'utf8'))![1]);
  notifyServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      notifications.push(JSON.parse(body) as { channel: string; message: string });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => notifyServer.listen(0, '127.0.0.1', resolve));
  notifyUrl = `http://127.0.0.1:${(notifyServer.address() as AddressInfo).port}/notify`;
  env = await connectTestEnv();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
  notifyServer?.close();
  if (fleet) await fleetDown(dir);
});

describe('restart-service', () => {
  test('restarts nginx on every web host, one at a time, while HAProxy answers every request with 200', async () => {
    await allUp();
    const before = { 'host-2': nginxPid('host-2'), 'host-3': nginxPid('host-3') };
    const traffic = load();
    const states = sampleBackend();
    const { result } = await runbookRun('restart-service', { service: 'nginx' });
    await new Promise((r) => setTimeout(r, 500)); // traffic after the last host is back
    const counts = await traffic.stop();
    const seen = await states.stop();
    expect(result?.status).toBe('succeeded');
    // Both really restarted: new nginx master processes.
    expect(nginxPid('host-2')).not.toBe(before['host-2']);
    expect(nginxPid('host-3')).not.toBe(before['host-3']);
    expect(counts.errors).toEqual([]);
    expect(counts.ok).toBeGreaterThan(50);
    // Both served during the run, and both are back in the balancer.
    expect(Object.keys(counts.byHost).sort()).toEqual(['host-2', 'host-3']);
    expect(backend()).toMatchObject({ 'host-2': { status: 'UP' }, 'host-3': { status: 'UP' } });
    // HAProxy saw the choreography: host-2 drained, then back up, and only then host-3 drained.
    const changes = seen.map(([a, b]) => `host-2 ${a}, host-3 ${b}`);
    expect(changes[0]).toBe('host-2 UP, host-3 UP');
    expect(changes[1]).toBe('host-2 DRAIN, host-3 UP');
    expect(changes).toContain('host-2 UP, host-3 DRAIN');
    expect(changes.at(-1)).toBe('host-2 UP, host-3 UP');
    expect(seen.every(([a, b]) => a === 'UP' || b === 'UP')).toBe(true);
  });

  test('two at once: with host-2 out of the backend, draining host-3 (the last one UP) is refused before anything changes', async () => {
    await allUp();
    const before = nginxPid('host-3');
    lbCommand('set server web/host-2 state drain'); // as another run's drain would
    try {
      const { result } = await runbookRun('restart-service', { service: 'nginx', hosts: 'host:host-3' });
      expect(result?.status).toBe('failed');
      expect(result?.hosts['host-3']?.error).toMatch(
        /only 0 other servers of web are UP \(at least 1 must stay\): not draining host-3/,
      );
      expect(nginxPid('host-3')).toBe(before);
      expect(backend()['host-3']!.status).toBe('UP');
    } finally {
      lbCommand('set server web/host-2 state ready');
    }
    await allUp();
  });

  test('control: the same traffic check sees errors when HAProxy sends requests to a stopped nginx', async () => {
    // HAProxy's health checks take a stopped server out within a second and redispatch what it had sent there, so
    // the check that stands in for "no draining" turns them off for host-2, as a balancer that cannot see it.
    await allUp();
    lbCommand('disable health web/host-2');
    const traffic = load();
    try {
      svc('host-2', 'stop', 'nginx');
      // Longer than HAProxy's retries of a refused connection (3, a second apart) hide.
      await new Promise((r) => setTimeout(r, 5_000));
      svc('host-2', 'start', 'nginx');
      const counts = await traffic.stop();
      expect(counts.bad).toBeGreaterThan(0);
    } finally {
      await traffic.stop();
      lbCommand('enable health web/host-2');
    }
    await allUp();
  });

  test('a host whose service does not come back: the rollout stops there, the host stays out of HAProxy, on-call is told, no request fails', async () => {
    await allUp();
    const host3 = nginxPid('host-3');
    const fault = breakNginx('host-2');
    const traffic = load();
    try {
      const { result } = await runbookRun('restart-service', { service: 'nginx' });
      const counts = await traffic.stop();
      expect(result?.status).toBe('failed');
      expect(result?.hosts['host-2']?.state).toBe('rolled-back');
      expect(result?.hosts['host-2']?.error).toMatch(/nginx failed to start/);
      expect(result?.hosts['host-3']?.state).toBe('skipped');
      expect(nginxPid('host-3')).toBe(host3); // never touched
      expect(counts.errors).toEqual([]);
      // After the run, only host-3 serves.
      const after = load();
      await new Promise((r) => setTimeout(r, 500));
      expect(Object.keys((await after.stop()).byHost)).toEqual(['host-3']);
      const csv = lbCommand('show servers state web');
      // srv_admin_state 8 is "drained by the runtime API" (HAProxy's SRV_ADMF_DRAIN).
      const host2 = csv
        .split('\n')
        .find((l) => l.split(' ')[3] === 'host-2')!
        .split(' ');
      expect(Number(host2[6]) & 8).toBe(8);
      expect(notifications).toContainEqual({
        channel: 'oncall',
        message: expect.stringMatching(/^restart of nginx failed on host-2 .*stays out/),
      });
    } finally {
      await traffic.stop();
      await fault.restore();
    }
  });
});

/** The installed version of the site package on a web host (its own dpkg database). */
const siteVersion = (host: string) =>
  execFileSync(srv(host, 'bin', 'dpkg-query'), ['-W', '-f=${Version}', 'rb-site'], { encoding: 'utf8' });

/** A fault on host-2's nginx: its config gains an unknown directive, so it does not start again until `restore`. */
function breakNginx(host: string) {
  const conf = srv(host, 'nginx', 'nginx.conf');
  const good = fs.readFileSync(conf, 'utf8');
  fs.writeFileSync(conf, good.replace('worker_processes 1;', 'worker_processes 1;\nno_such_directive on;'));
  return {
    restore: async () => {
      fs.writeFileSync(conf, good);
      svc(host, 'start', 'nginx');
      lbCommand(`set server web/${host} state ready`);
      await allUp();
    },
  };
}

describe('rolling-patch', () => {
  test('v1 to v2 from the local apt repository host by host; a host that fails is back on v1 and out of HAProxy, which served every request', async () => {
    await allUp();
    expect([siteVersion('host-2'), siteVersion('host-3')]).toEqual(['1.0', '1.0']);
    publishSitePackage(dir, '2.0');
    // host-3's nginx will not come back after the upgrade's restart.
    const fault = breakNginx('host-3');
    const traffic = load();
    try {
      const { result } = await runbookRun('rolling-patch', { packages: ['rb-site'], service: 'nginx' });
      const counts = await traffic.stop();
      expect(result?.status).toBe('failed');
      expect(result?.hosts['host-2']?.state).toBe('succeeded');
      expect(result?.hosts['host-3']).toMatchObject({ state: 'rolled-back', error: expect.stringMatching(/nginx/) });
      // Per-host package state: host-2 upgraded, host-3 put back on its recorded version.
      expect([siteVersion('host-2'), siteVersion('host-3')]).toEqual(['2.0', '1.0']);
      expect(fs.readFileSync(path.join(dir, 'hosts', 'host-3', 'root', 'srv', 'www', 'version.txt'), 'utf8')).toBe(
        '1.0\n',
      );
      expect(counts.errors).toEqual([]);
      expect(counts.ok).toBeGreaterThan(20);
      // Through HAProxy now: host-2 only, serving v2.
      const after = await fetch(`http://${lbAddress()}:${httpPort}/version`);
      expect(await after.text()).toBe('2.0\n');
      expect(backend()['host-3']!.status).not.toBe('UP');
      expect(notifications).toContainEqual({
        channel: 'oncall',
        message: expect.stringMatching(/^rolling-patch failed on host-3; /),
      });
    } finally {
      await traffic.stop();
      await fault.restore();
    }
  });
});

describe('disk-cleanup', () => {
  test('the shipped Prometheus rule raises DiskFull with the labels the runbook reads (promtool test rules)', () => {
    const out = execFileSync('promtool', ['test', 'rules', 'disk-cleanup.rules.test.yml'], {
      cwd: path.join(RUNBOOKS, 'prometheus'),
      encoding: 'utf8',
    });
    expect(out).toContain('SUCCESS');
  });

  test('a DiskFull alert through Alertmanager cleans the scratch directory once: old files gone; new files, links and what they point to kept', async () => {
    const scratch = path.join(dir, 'hosts', 'host-2', 'scratch');
    const user = fleet.hosts[1]!.user;
    const days = (n: number) => new Date(Date.now() - n * 86_400_000);
    const file = (p: string, age: number) => {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, 'x'.repeat(1000));
      fs.utimesSync(p, days(age), days(age));
      execFileSync('chown', ['-R', `${user}:${user}`, scratch]);
    };
    const old = [path.join(scratch, 'old.log'), path.join(scratch, 'cache', 'old.bin')];
    const kept = [path.join(scratch, 'new.log'), path.join(scratch, 'cache', 'six-days.bin')];
    for (const p of old) file(p, 30);
    file(kept[0]!, 0);
    file(kept[1]!, 6);
    // An old file outside the scratch directory, linked from it: the link may go, its target must stay.
    const outside = path.join(dir, 'hosts', 'host-2', 'precious.db');
    fs.writeFileSync(outside, 'keep');
    fs.utimesSync(outside, days(30), days(30));
    fs.symlinkSync(outside, path.join(scratch, 'link-to-precious'));
    // And a link to a directory outside with an old file in it: find must not follow it.
    const outsideDir = path.join(dir, 'hosts', 'host-2', 'precious-dir');
    fs.mkdirSync(outsideDir, { recursive: true });
    const deep = path.join(outsideDir, 'old-but-precious.db');
    fs.writeFileSync(deep, 'keep');
    fs.utimesSync(deep, days(30), days(30));
    fs.symlinkSync(outsideDir, path.join(scratch, 'link-to-dir'));

    const taskQueue = uniqueTaskQueue('disk');
    const token = `library-${taskQueue}`;
    const guard = env.client.workflow.getHandle(guardId('disk-cleanup'));
    await guard.terminate('test: a fresh guard').catch(() => undefined);
    try {
      await withEngineWorker(
        env,
        taskQueue,
        () =>
          withReceiver(
            { taskQueue, runbookDir: RUNBOOKS, inventory: inventory(), token, minRules: 2 },
            async (receiver) => {
              const am = await startAlertmanager({
                dir: path.join(dir, 'alertmanager'),
                webhookUrl: `${receiver.url}/alerts/alertmanager`,
                token,
              });
              try {
                await am.postAlerts([
                  {
                    labels: { alertname: 'DiskFull', instance: 'host-2:9100', mountpoint: '/', severity: 'page' },
                    annotations: { summary: 'host-2:9100: / has 5% free' },
                    startsAt: new Date(Date.now() - 60_000).toISOString(),
                  },
                ]);
                const query = `WorkflowType = 'runbook' AND TaskQueue = '${taskQueue}'`;
                const runs = async () => {
                  const out = [];
                  for await (const w of env.client.workflow.list({ query })) out.push(w);
                  return out;
                };
                await waitUntil(
                  async () => (await runs()).some((w) => w.status.name === 'COMPLETED'),
                  'the remediation run to complete',
                  60_000,
                );
                // Alertmanager repeats the firing alert every 2 s: give it a few more deliveries.
                await new Promise((r) => setTimeout(r, 6_000));
                const all = await runs();
                expect(all.map((w) => w.status.name)).toEqual(['COMPLETED']);
                const result = (await env.client.workflow.getHandle(all[0]!.workflowId).result()) as RunbookResult;
                expect(result.hosts['host-2']).toMatchObject({ state: 'succeeded' });
                expect(Object.keys(result.hosts)).toEqual(['host-2']);
              } finally {
                await am.stop();
              }
            },
          ),
        { config: engineConfig() },
      );
    } finally {
      await guard.terminate('test: done').catch(() => undefined);
    }
    for (const p of old) expect(fs.existsSync(p)).toBe(false);
    for (const p of kept) expect(fs.existsSync(p)).toBe(true);
    expect(fs.readFileSync(outside, 'utf8')).toBe('keep');
    expect(fs.readFileSync(deep, 'utf8')).toBe('keep');
    expect(fs.lstatSync(path.join(scratch, 'link-to-precious')).isSymbolicLink()).toBe(true);
  });
});

/** psql against a fleet host (or the balancer), as the test sees it: the first row's first column. */
function psql(address: string, sql: string, db = 'app'): string {
  return execFileSync(
    'psql',
    ['-h', address, '-p', String(pgPort()), '-U', 'postgres', '-d', db, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  ).trim();
}
const pgPort = () => Number(/pg_port: (\d+)/.exec(fs.readFileSync(inventory(), 'utf8'))![1]);
const host = (name: string) => fleet.hosts.find((h) => h.name === name)!;

describe('postgres-backup', () => {
  test('dump, checksum, pull to the backup host over SFTP, restore check, prune: the copy restores to as many rows as the source', async () => {
    const backups = path.join(dir, 'hosts', 'host-1', 'backups');
    const stale = path.join(backups, 'host-4-app-old.dump');
    const recent = path.join(backups, 'host-4-app-recent.dump');
    const other = path.join(backups, 'host-4-otherdb-old.dump');
    for (const [f, age] of [
      [stale, 30],
      [recent, 1],
      [other, 30],
    ] as const) {
      fs.writeFileSync(f, 'x');
      const t = new Date(Date.now() - age * 86_400_000);
      fs.utimesSync(f, t, t);
    }
    psql(host('host-4').address, "insert into items (name) select 'more-' || g from generate_series(1, 234) g");
    const source = psql(host('host-4').address, 'select count(*) from items');
    expect(source).toBe('1234');
    const { result } = await runbookRun('postgres-backup', {
      database: 'app',
      check_table: 'items',
      backup_host: 'host:host-1',
    });
    expect(result?.status).toBe('succeeded');
    expect(Object.keys(result!.hosts)).toEqual(['host-4']);
    // Pruned: only this database's dumps past the retention.
    expect([fs.existsSync(stale), fs.existsSync(recent), fs.existsSync(other)]).toEqual([false, true, true]);
    const copies = fs.readdirSync(backups).filter((f) => f.startsWith('host-4-app-') && f !== 'host-4-app-recent.dump');
    expect(copies).toHaveLength(1);
    // The copy, restored independently of the runbook, has the source's rows; the database host kept no dump.
    const copy = path.join(backups, copies[0]!);
    psql(host('host-4').address, 'drop database if exists test_restore', 'postgres');
    psql(host('host-4').address, 'create database test_restore', 'postgres');
    execFileSync('pg_restore', [
      '-h',
      host('host-4').address,
      '-p',
      String(pgPort()),
      '-U',
      'postgres',
      '-d',
      'test_restore',
      '--no-owner',
      copy,
    ]);
    expect(psql(host('host-4').address, 'select count(*) from items', 'test_restore')).toBe(source);
    expect(fs.readdirSync(path.join(dir, 'hosts', 'host-4', 'home')).filter((f) => f.endsWith('.dump'))).toEqual([]);
    // The runbook's own scratch database is gone.
    expect(
      psql(host('host-4').address, "select count(*) from pg_database where datname = 'runbook_verify_app'", 'postgres'),
    ).toBe('0');
  });
});

/** HAProxy's `pg` listener, `SERVER STATUS` per server, once it is `want` (it flickers while checks settle). */
async function pgServers(want: string[]): Promise<string[]> {
  const now = () => Object.entries(backend('pg')).map(([server, { status }]) => `${server} ${status}`);
  await waitUntil(
    async () => JSON.stringify(now()) === JSON.stringify(want),
    `HAProxy's pg servers ${want.join(', ')}`,
    10_000,
  ).catch(() => undefined);
  return now();
}

/** Waits for a run's approval gate and approves it as a DBA. */
async function approveAsDba(h: WorkflowHandle): Promise<void> {
  await waitUntil(async () => (await h.query(stateQuery)).status === 'awaiting-approval', 'the approval gate', 30_000);
  await h.signal(decideSignal, { id: 'gate', approve: true, by: 'dana', groups: ['dba'], comment: 'primary is gone' });
}

describe('postgres-failover', () => {
  test('a primary that will not stop is not promoted over: the run stops before the promotion and puts the old primary back in HAProxy', async () => {
    const svcFile = srv('host-4', 'bin', 'svc');
    const good = fs.readFileSync(svcFile, 'utf8');
    expect(good).toContain('  stop) stop ;;');
    fs.writeFileSync(
      svcFile,
      good.replace('  stop) stop ;;', '  stop) echo "svc: will not stop (test fault)" >&2; exit 1 ;;'),
    );
    try {
      const { result } = await runbookRun(
        'postgres-failover',
        { standby: 'host:host-5', primary: 'host:host-4' },
        approveAsDba,
      );
      expect(result?.status).toBe('failed');
      expect(result?.hosts['host-5']?.error).toMatch(
        /the old primary still answers \(pg_isready exit 0\): not promoting/,
      );
      // Nothing changed: the old primary serves through HAProxy again, the standby is still one.
      expect(psql(lbAddress(), 'select host(inet_server_addr())')).toBe(host('host-4').address);
      expect(psql(host('host-5').address, 'select pg_is_in_recovery()')).toBe('t');
      expect(await pgServers(['host-4 UP', 'host-5 MAINT'])).toEqual(['host-4 UP', 'host-5 MAINT']);
    } finally {
      fs.writeFileSync(svcFile, good);
    }
  });

  test('after the approval: the old primary is fenced, the standby promoted, and writes through HAProxy land on it', async () => {
    const [primary, standby] = [host('host-4').address, host('host-5').address];
    expect(psql(lbAddress(), 'select host(inet_server_addr())')).toBe(primary);
    // The standby has what the primary had (streaming replication).
    await waitUntil(
      async () => psql(standby, 'select count(*) from items') === psql(primary, 'select count(*) from items'),
      'the standby to catch up',
      20_000,
    );
    const { result } = await runbookRun(
      'postgres-failover',
      { standby: 'host:host-5', primary: 'host:host-4' },
      approveAsDba,
    );
    expect(result?.status).toBe('succeeded');
    // A write through HAProxy lands on the new primary, which is out of recovery.
    psql(lbAddress(), "insert into items (name) values ('after-failover')");
    expect(psql(lbAddress(), "select host(inet_server_addr()) || ' ' || pg_is_in_recovery()")).toBe(`${standby} false`);
    expect(psql(standby, "select count(*) from items where name = 'after-failover'")).toBe('1');
    // The old primary takes nothing: it is stopped and out of HAProxy.
    expect(() => psql(primary, 'select 1')).toThrow();
    expect(await pgServers(['host-4 MAINT', 'host-5 UP'])).toEqual(['host-4 MAINT', 'host-5 UP']);
    expect(notifications).toContainEqual({
      channel: 'dba-oncall',
      message: expect.stringMatching(/^failover done: host-5 /),
    });
  });

  test('a second failover onto the new primary is refused before anything changes; the old primary stays down', async () => {
    const { result } = await runbookRun(
      'postgres-failover',
      { standby: 'host:host-5', primary: 'host:host-4' },
      approveAsDba,
    );
    expect(result?.status).toBe('failed');
    expect(result?.hosts['host-5']?.error).toMatch(/host-5 is not a standby in recovery: refusing to promote it/);
    expect(() => psql(host('host-4').address, 'select 1')).toThrow();
    expect(psql(lbAddress(), 'select host(inet_server_addr())')).toBe(host('host-5').address);
  });
});

/** Whether an SSH password login as `user` on fleet host `name` succeeds (ssh2, no key, no agent). */
function passwordLogin(name: string, user: string, password: string): Promise<boolean> {
  const h = host(name);
  return new Promise((resolve) => {
    const c = new SshClient();
    const timer = setTimeout(() => {
      c.end();
      resolve(false);
    }, 15_000);
    c.on('ready', () => {
      clearTimeout(timer);
      c.end();
      resolve(true);
    });
    c.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
    c.connect({ host: h.address, port: h.port, username: user, password, tryKeyboard: false, readyTimeout: 10_000 });
  });
}

/**
 * A person's account on host-3 (not the engine's login), for password-reset; `allowSsh` adds it to host-3's sshd
 * AllowUsers. Removed, and sshd's configuration restored, after `fn`.
 */
async function withPerson<T>(fn: (person: { user: string; allowSsh: () => Promise<void> }) => Promise<T>): Promise<T> {
  const h = host('host-3');
  const user = `rb${fleet.id}p3`;
  const home = path.join(h.dir, 'person');
  const config = path.join(h.dir, 'sshd_config');
  const original = fs.readFileSync(config, 'utf8');
  const reload = async () => {
    process.kill(Number(fs.readFileSync(path.join(h.dir, 'sshd.pid'), 'utf8').trim()), 'SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    await waitForPort(h.port, h.address, 10_000);
  };
  execFileSync('useradd', ['-M', '-d', home, '-s', '/bin/bash', '-p', '*', '-c', 'runbook test person', user]);
  try {
    fs.mkdirSync(home, { mode: 0o755 });
    execFileSync('chown', [`${user}:${user}`, home]);
    return await fn({
      user,
      allowSsh: async () => {
        fs.writeFileSync(config, original.replace(`AllowUsers ${h.user}`, `AllowUsers ${h.user} ${user}`));
        await reload();
      },
    });
  } finally {
    execFileSync('userdel', ['-f', user]);
    fs.rmSync(home, { recursive: true, force: true });
    if (fs.readFileSync(config, 'utf8') !== original) {
      fs.writeFileSync(config, original);
      await reload();
    }
  }
}

const passwdStatus = (user: string) => execFileSync('passwd', ['--status', user], { encoding: 'utf8' }).split(' ')[1];

describe('password-reset', () => {
  test("system accounts (root) and the engine's own login are refused before anything changes", async () => {
    const shadow = () =>
      fs
        .readFileSync('/etc/shadow', 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('root:') || l.startsWith(`${host('host-3').user}:`));
    const before = shadow();
    for (const user of ['root', host('host-3').user]) {
      const { result } = await runbookRun('password-reset', { user, hosts: 'host:host-3' }, undefined, {
        config: { secretsDir: path.join(dir, 'secrets-refused') },
      });
      expect(result?.status).toBe('failed');
      expect(result?.hosts['host-3']?.error).toMatch(
        new RegExp(
          `${user} is not a person's account here \\(uid \\d+; system accounts and the engine's own login are refused\\)`,
        ),
      );
    }
    expect(shadow()).toEqual(before);
    expect(fs.existsSync(path.join(dir, 'secrets-refused', 'password-reset', 'new_password'))).toBe(false);
  });

  test('a login check that cannot log in with the new password fails the run, and the account is locked', () =>
    withPerson(async ({ user }) => {
      // sshd does not let this account in: the check's password login fails (the engine's own key would not).
      const { result } = await runbookRun(
        'password-reset',
        { user, hosts: 'host:host-3', force_change: false },
        undefined,
        {
          config: { secretsDir: path.join(dir, 'secrets-locked') },
        },
      );
      expect(result?.status).toBe('failed');
      expect(result?.hosts['host-3']).toMatchObject({ state: 'rolled-back' });
      expect(result?.hosts['host-3']?.error).toMatch(/refused the password/);
      expect(passwdStatus(user)).toBe('L');
    }));

  test('a generated password is set, stored 0600 and proven by an SSH login; the old one fails; logs, audit records and history never hold it', () =>
    withPerson(async ({ user, allowSsh }) => {
      await allowSsh();
      const old = 'Old-passw0rd-for-the-test';
      execFileSync('chpasswd', { input: `${user}:${old}\n` });
      expect(await passwordLogin('host-3', user, old)).toBe(true);
      const secretsDir = path.join(dir, 'secrets');
      const auditFile = path.join(dir, 'password-reset-audit.jsonl');
      const logFile = path.join(dir, 'password-reset-worker.log');
      const logger = pino({ level: 'debug' }, pino.destination({ dest: logFile, sync: true }));
      const { result, handle } = await runbookRun(
        'password-reset',
        { user, hosts: 'host:host-3', force_change: false },
        undefined,
        { logger, config: { secretsDir, auditUrl: `file:${auditFile}` } },
      );
      expect(result?.status).toBe('succeeded');
      const stored = path.join(secretsDir, 'password-reset', 'new_password');
      expect(fs.statSync(stored).mode & 0o777).toBe(0o600);
      const password = fs.readFileSync(stored, 'utf8').trim();
      expect(password).toMatch(/^[A-Za-z0-9]{24}$/);
      expect(await passwordLogin('host-3', user, password)).toBe(true);
      expect(await passwordLogin('host-3', user, old)).toBe(false);
      expect(passwdStatus(user)).toBe('P');
      // Nowhere: the worker's debug log, the audit records, the history (every payload decoded), the host's files.
      const history = await handle.fetchHistory();
      const payloads: string[] = [];
      const collect = (v: unknown): void => {
        if (v instanceof Uint8Array) payloads.push(Buffer.from(v).toString('utf8'));
        else if (Array.isArray(v)) v.forEach(collect);
        else if (v && typeof v === 'object') Object.values(v).forEach(collect);
      };
      collect(history);
      expect(payloads.join('\n')).toContain('login_check'); // the scan does see the history's payloads
      expect(fs.readFileSync(auditFile, 'utf8')).toContain('set_password');
      expect(fs.readFileSync(logFile, 'utf8').length).toBeGreaterThan(0);
      const grep = spawnSync(
        'grep',
        [
          '-rlF',
          '--',
          password,
          path.join(dir, 'hosts', 'host-3', 'home'),
          path.join(dir, 'hosts', 'host-3', 'person'),
        ],
        { encoding: 'utf8' },
      );
      expect([grep.status, grep.stdout]).toEqual([1, '']);
      for (const [where, text] of [
        ['history', payloads.join('\n') + JSON.stringify(history)],
        ['audit', fs.readFileSync(auditFile, 'utf8')],
        ['worker log', fs.readFileSync(logFile, 'utf8')],
      ] as const)
        expect({ where, found: text.includes(password) }).toEqual({ where, found: false });
    }));
});
