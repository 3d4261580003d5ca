// Integration: `fleet up --hosts 5` gives five real sshd hosts that OpenSSH's own client reaches with strict
// host-key checking, each with its own user, home and passwordless sudo; `fleet down` removes them.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { testRoot } from '../harness/env';

const runbook = path.join(__dirname, '..', '..', 'bin', 'runbook.js');
const dir = () => path.join(testRoot(), 'fleet5');

interface InvHost {
  address: string;
  port: number;
  user: string;
}

function ssh(host: InvHost, command: string) {
  return spawnSync(
    'ssh',
    [
      '-i',
      path.join(dir(), 'id_ed25519'),
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${path.join(dir(), 'known_hosts')}`,
      '-o',
      'BatchMode=yes',
      '-p',
      String(host.port),
      `${host.user}@${host.address}`,
      command,
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
}

test('fleet up --hosts 5: every host takes strict-host-key ssh, has its own user and home, and sudo', () => {
  execFileSync('node', [runbook, 'fleet', 'up', '--hosts', '5', '--dir', dir()], { encoding: 'utf8' });
  const inventory = YAML.parse(fs.readFileSync(path.join(dir(), 'inventory.yaml'), 'utf8')) as {
    hosts: Record<string, InvHost>;
  };
  const hosts = Object.values(inventory.hosts);
  expect(hosts).toHaveLength(5);
  expect(new Set(hosts.map((h) => h.address)).size).toBe(5);
  expect(new Set(hosts.map((h) => h.user)).size).toBe(5);
  for (const host of hosts) {
    const r = ssh(host, 'whoami; echo "$HOME"; sudo -n id -u');
    expect(r.stderr).toBe('');
    const [user, home, rootUid] = r.stdout.trim().split('\n');
    expect(user).toBe(host.user);
    expect(home).toMatch(new RegExp(`/fleet5/hosts/host-\\d/home$`));
    expect(rootUid).toBe('0');
  }
  // Separate state: a file written on one host is not visible on another.
  expect(ssh(hosts[0]!, 'echo one > marker').status).toBe(0);
  expect(ssh(hosts[1]!, 'test -e marker').status).toBe(1);
});

test('fleet down stops the hosts and removes their users', () => {
  const inventory = YAML.parse(fs.readFileSync(path.join(dir(), 'inventory.yaml'), 'utf8')) as {
    hosts: Record<string, InvHost>;
  };
  execFileSync('node', [runbook, 'fleet', 'down', '--dir', dir()], { encoding: 'utf8' });
  for (const host of Object.values(inventory.hosts)) {
    expect(spawnSync('id', [host.user]).status).not.toBe(0);
    expect(ssh(host, 'true').status).toBe(255);
  }
});

test('fleet down on a directory without a fleet says so plainly', () => {
  const r = spawnSync('node', [runbook, 'fleet', 'down', '--dir', path.join(testRoot(), 'nothing-here')], {
    encoding: 'utf8',
  });
  expect(r.status).toBe(2);
  expect(r.stderr).toBe(
    `runbook: No fleet state in ${path.join(testRoot(), 'nothing-here')} (fleet.json is missing): nothing to stop there.\n`,
  );
});

test('fleet up and down refuse a directory another user prepared, and say why (exit 2)', () => {
  const prepared = path.join(testRoot(), 'prepared');
  fs.mkdirSync(prepared, { mode: 0o755 });
  fs.chownSync(prepared, 65534, 65534);
  const up = spawnSync('node', [runbook, 'fleet', 'up', '--hosts', '1', '--dir', prepared], { encoding: 'utf8' });
  expect([up.status, up.stderr]).toEqual([
    2,
    `runbook: Refusing ${prepared}: it is owned by uid 65534, not root, so that user could have ` +
      'prepared files in it; remove it or choose a new --dir (fleet up creates it).\n',
  ]);
  expect(fs.readdirSync(prepared)).toEqual([]);

  const forged = path.join(testRoot(), 'forged');
  fs.mkdirSync(forged, { mode: 0o755 });
  const hostDir = path.join(forged, 'hosts', 'host-1');
  fs.writeFileSync(
    path.join(forged, 'fleet.json'),
    JSON.stringify({
      id: 'abcdef',
      dir: forged,
      sudoersFile: '/etc/sudoers.d/runbook-fleet-abcdef',
      createdAt: '2026-01-01T00:00:00Z',
      hosts: [
        {
          name: 'host-1',
          address: '127.0.0.2',
          port: 2222,
          user: 'root',
          home: path.join(hostDir, 'home'),
          dir: hostDir,
        },
      ],
    }),
  );
  const down = spawnSync('node', [runbook, 'fleet', 'down', '--dir', forged], { encoding: 'utf8' });
  expect([down.status, down.stderr]).toEqual([
    2,
    `runbook: Refusing ${forged}/fleet.json: it names user "root" for host 1, but fleet up names it ` +
      '"rbabcdefh1"; fleet down only removes what fleet up made.\n',
  ]);
});
