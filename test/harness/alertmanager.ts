// Test harness (Node side). A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`, or `alertmanager`
// on PATH) with its own config file and data dir, listening on loopback, HA gossip off, routing every alert to
// one webhook (our receiver) with a bearer token and resolved notifications.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from '../../common/ports';
import { stopProcess } from './processes';

/** Where the binary is: ALERTMANAGER_BIN, `alertmanager` or `prometheus-alertmanager` on PATH, Debian's path. */
export function alertmanagerBinary(): string | undefined {
  const candidates = [
    process.env.ALERTMANAGER_BIN,
    ...(process.env.PATH ?? '')
      .split(path.delimiter)
      .filter(Boolean)
      .flatMap((d) => [path.join(d, 'alertmanager'), path.join(d, 'prometheus-alertmanager')]),
    '/usr/bin/prometheus-alertmanager',
  ];
  return candidates.find((c): c is string => {
    if (!c) return false;
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return fs.statSync(c).isFile();
    } catch {
      return false;
    }
  });
}

export interface Alertmanager {
  /** http://127.0.0.1:PORT */
  url: string;
  /** Its log so far (the last 64 KiB), for failure messages. */
  log(): string;
  /** POSTs alerts to /api/v2/alerts; throws unless Alertmanager answers 200. */
  postAlerts(alerts: object[]): Promise<void>;
  /** GET /api/v2/alerts (active, silenced and inhibited ones; resolved ones too until they are garbage-collected). */
  alerts(): Promise<
    { fingerprint: string; labels: Record<string, string>; startsAt: string; status: { state: string } }[]
  >;
  stop(): Promise<void>;
}

export interface AlertmanagerOptions {
  /** A directory of its own: config file and data (created). */
  dir: string;
  /** The webhook every alert is routed to. */
  webhookUrl: string;
  /** Sent as `Authorization: Bearer TOKEN`. */
  token: string;
  /** @default 1s */
  groupWait?: string;
  /** @default 1s */
  groupInterval?: string;
  /** How often an unchanged firing group is sent again. @default 2s (so the receiver sees redeliveries) */
  repeatInterval?: string;
}

/** Starts Alertmanager on a free loopback port; resolves once /-/ready answers 200 (or rejects with its log). */
export async function startAlertmanager(o: AlertmanagerOptions): Promise<Alertmanager> {
  const bin = alertmanagerBinary();
  if (!bin)
    throw new Error(
      'no Alertmanager binary: install Debian\'s prometheus-alertmanager (".ci/run" does), put `alertmanager` on PATH, or set ALERTMANAGER_BIN',
    );
  fs.mkdirSync(path.join(o.dir, 'data'), { recursive: true });
  const config = path.join(o.dir, 'alertmanager.yml');
  // JSON is YAML: no quoting questions for the URL or the token.
  const doc = {
    route: {
      receiver: 'runbook',
      group_by: ['...'], // every alert its own group: a notification per alert
      group_wait: o.groupWait ?? '1s',
      group_interval: o.groupInterval ?? '1s',
      repeat_interval: o.repeatInterval ?? '2s',
    },
    receivers: [
      {
        name: 'runbook',
        webhook_configs: [
          {
            url: o.webhookUrl,
            send_resolved: true,
            http_config: { authorization: { type: 'Bearer', credentials: o.token } },
          },
        ],
      },
    ],
  };
  fs.writeFileSync(config, JSON.stringify(doc, null, 2), { mode: 0o600 });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    bin,
    [
      `--config.file=${config}`,
      `--storage.path=${path.join(o.dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      `--web.external-url=${url}`,
      '--cluster.listen-address=', // no HA gossip (nothing listens on 9094)
      '--log.level=debug',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const append = (c: Buffer) => {
    log = (log + c.toString()).slice(-65_536);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`Alertmanager (${bin}) exited before it was ready:\n${log}`);
    const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stopProcess(child, 'SIGKILL');
      throw new Error(`Alertmanager (${bin}) not ready on ${url} within 20 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    url,
    log: () => log,
    postAlerts: async (alerts) => {
      const r = await fetch(`${url}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alerts),
        signal: AbortSignal.timeout(10_000),
      });
      if (r.status !== 200) throw new Error(`Alertmanager refused the alerts: ${r.status} ${await r.text()}`);
    },
    alerts: async () => {
      const r = await fetch(`${url}/api/v2/alerts`, { signal: AbortSignal.timeout(10_000) });
      if (r.status !== 200) throw new Error(`Alertmanager GET /api/v2/alerts: ${r.status} ${await r.text()}`);
      return (await r.json()) as Awaited<ReturnType<Alertmanager['alerts']>>;
    },
    stop: async () => {
      await stopProcess(child, 'SIGTERM');
      await exited;
    },
  };
}
