// Node side. The test fleet: N real OpenSSH sshd "hosts" on distinct loopback addresses, each with its own host
// key, login user, home directory, key auth and passwordless sudo. Serves jest, benchmarks and manual tries.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { UserError } from '../common/errors';
import { isPortFree, waitForPort } from '../common/ports';

export const SSHD = process.env.RUNBOOK_SSHD ?? '/usr/sbin/sshd';
const STATE_FILE = 'fleet.json';
const MAX_HOSTS = 250 * 200;

export interface FleetHost { name: string; address: string; port: number; user: string; home: string; dir: string }
export interface FleetState { id: string; dir: string; hosts: FleetHost[]; sudoersFile: string; createdAt: string }

export interface FleetUpOptions {
  hosts: number;
  dir: string;
  /** Receives progress lines. */
  progress?: (line: string) => void;
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function requirePrerequisites(): void {
  if (process.getuid?.() !== 0) {
    throw new UserError('The test fleet creates one login user per host and starts sshd, which needs root. Run ' +
      '`fleet up` as root (CI and the dev container are root), e.g. with sudo.');
  }
  const missing = [SSHD, '/usr/bin/ssh-keygen', '/usr/bin/sudo', '/usr/sbin/useradd'].filter((p) => !fs.existsSync(p));
  if (missing.length > 0) {
    throw new UserError(`The test fleet needs ${missing.join(', ')}, which ${missing.length > 1 ? 'are' : 'is'} not ` +
      'installed. Install them with: apt-get update && apt-get install -y openssh-server openssh-client sudo passwd');
  }
}

/** Reads DIR/fleet.json, or undefined when no fleet was started there. */
export function readFleetState(dir: string): FleetState | undefined {
  const file = path.join(dir, STATE_FILE);
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as FleetState) : undefined;
}

function pidOf(host: FleetHost): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(host.dir, 'sshd.pid'), 'utf8').trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** Every ancestor of the fleet dir must let the (unprivileged) host users through. */
function assertTraversable(dir: string): void {
  for (let d = dir; ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o001) === 0) {
      throw new UserError(`The fleet's users cannot reach their home directories: ${d} is not searchable by others ` +
        `(mode ${(fs.statSync(d).mode & 0o777).toString(8)}). Run \`chmod o+x ${d}\` or choose a --dir under /tmp.`);
    }
    if (d === path.dirname(d)) return;
  }
}

/** 127.A.B.C for host i: A fixed per fleet, B.C counting from .0.1, so fleets and hosts never share an address. */
function addressFor(octet: number, i: number): string {
  return `127.${octet}.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

async function pickAddressesAndPort(n: number): Promise<{ octet: number; port: number }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const octet = 32 + crypto.randomInt(220);
    const port = 20000 + crypto.randomInt(20000);
    const probes = await Promise.all(Array.from({ length: n }, (_, i) => isPortFree(port, addressFor(octet, i))));
    if (probes.every(Boolean)) return { octet, port };
  }
  throw new UserError('Could not find free loopback addresses and a port for the fleet after 20 tries.');
}

function sshdConfig(host: FleetHost): string {
  return [
    `ListenAddress ${host.address}:${host.port}`,
    `HostKey ${path.join(host.dir, 'ssh_host_ed25519_key')}`,
    `PidFile ${path.join(host.dir, 'sshd.pid')}`,
    'AuthorizedKeysFile .ssh/authorized_keys',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin no',
    `AllowUsers ${host.user}`,
    'UsePAM no',
    'UseDNS no',
    'PrintMotd no',
    // Fan-out and pooled channels: many connections and sessions at once.
    'MaxStartups 500:30:1000',
    'MaxSessions 200',
    'AcceptEnv LANG LC_* RUNBOOK_*',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n');
}

/** Starts the fleet and writes DIR/inventory.yaml, DIR/known_hosts, DIR/id_ed25519 and DIR/fleet.json. */
export async function fleetUp(opts: FleetUpOptions): Promise<FleetState> {
  const progress = opts.progress ?? (() => undefined);
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > MAX_HOSTS) {
    throw new UserError(`--hosts must be an integer from 1 to ${MAX_HOSTS}, got ${opts.hosts}.`);
  }
  requirePrerequisites();
  const dir = path.resolve(opts.dir);
  const existing = readFleetState(dir);
  if (existing && existing.hosts.some((h) => pidOf(h) !== undefined)) {
    throw new UserError(`A fleet is already running from ${dir}. Stop it first: npm run --silent fleet -- down --dir ${dir}`);
  }
  fs.mkdirSync(path.join(dir, 'hosts'), { recursive: true });
  // Each host's user must reach its home inside DIR.
  fs.chmodSync(dir, 0o755);
  assertTraversable(path.dirname(dir));
  fs.chmodSync(path.join(dir, 'hosts'), 0o755);
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const id = crypto.randomBytes(3).toString('hex');
  const { octet, port } = await pickAddressesAndPort(opts.hosts);
  const clientKey = path.join(dir, 'id_ed25519');
  fs.rmSync(clientKey, { force: true });
  fs.rmSync(`${clientKey}.pub`, { force: true });
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `runbook-fleet-${id}`, '-f', clientKey]);
  const publicKey = fs.readFileSync(`${clientKey}.pub`, 'utf8');

  const state: FleetState = { id, dir, hosts: [], sudoersFile: `/etc/sudoers.d/runbook-fleet-${id}`, createdAt: new Date().toISOString() };
  // Saved before anything global changes, so `down` can undo a half-finished `up`.
  const save = () => fs.writeFileSync(path.join(dir, STATE_FILE), JSON.stringify(state, null, 2));
  save();
  const knownHosts: string[] = [];
  try {
    for (let i = 0; i < opts.hosts; i++) {
      const name = `host-${i + 1}`;
      const hostDir = path.join(dir, 'hosts', name);
      fs.rmSync(hostDir, { recursive: true, force: true });
      fs.mkdirSync(hostDir, { recursive: true, mode: 0o755 });
      const host: FleetHost = { name, address: addressFor(octet, i), port, user: `rb${id}h${i + 1}`, home: path.join(hostDir, 'home'), dir: hostDir };
      state.hosts.push(host);
      save();
      run('useradd', ['-M', '-d', host.home, '-s', '/bin/bash', '-p', '*', '-c', `runbook test fleet ${id}`, host.user]);
      fs.mkdirSync(path.join(host.home, '.ssh'), { recursive: true, mode: 0o700 });
      fs.writeFileSync(path.join(host.home, '.ssh', 'authorized_keys'), publicKey, { mode: 0o600 });
      run('chown', ['-R', `${host.user}:${host.user}`, host.home]);
      fs.chmodSync(host.home, 0o755);
      run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path.join(hostDir, 'ssh_host_ed25519_key')]);
      const [type, blob] = fs.readFileSync(path.join(hostDir, 'ssh_host_ed25519_key.pub'), 'utf8').split(/\s+/);
      knownHosts.push(`[${host.address}]:${port} ${type} ${blob}`);
      fs.writeFileSync(path.join(hostDir, 'sshd_config'), sshdConfig(host));
      if ((i + 1) % 10 === 0 || i + 1 === opts.hosts) progress(`prepared ${i + 1}/${opts.hosts} hosts`);
    }
    const sudoers = state.hosts.map((h) => `${h.user} ALL=(ALL:ALL) NOPASSWD: ALL`).join('\n') + '\n';
    const tmpSudoers = path.join(dir, 'sudoers.tmp');
    fs.writeFileSync(tmpSudoers, sudoers, { mode: 0o440 });
    run('visudo', ['-cqf', tmpSudoers]);
    fs.renameSync(tmpSudoers, state.sudoersFile);

    for (const host of state.hosts) {
      run(SSHD, ['-f', path.join(host.dir, 'sshd_config'), '-E', path.join(host.dir, 'sshd.log')]);
    }
    await Promise.all(state.hosts.map((h) => waitForPort(h.port, h.address, 10_000)));
    progress(`${state.hosts.length} sshd hosts listening on 127.${octet}.x.y:${port}`);
  } catch (err) {
    await fleetDown(dir).catch(() => undefined);
    throw err;
  }

  fs.writeFileSync(path.join(dir, 'known_hosts'), knownHosts.join('\n') + '\n');
  const inventory = {
    vars: { identityFile: 'id_ed25519', knownHosts: 'known_hosts' },
    hosts: Object.fromEntries(state.hosts.map((h, i) => [h.name, {
      address: h.address, port: h.port, user: h.user, labels: { fleet: id, index: String(i + 1) },
    }])),
    groups: { all: state.hosts.map((h) => h.name) },
  };
  fs.writeFileSync(path.join(dir, 'inventory.yaml'),
    `# Generated by \`runbook fleet up\` (fleet ${id}); removed hosts and users by \`fleet down --dir ${dir}\`.\n` +
    YAML.stringify(inventory));
  return state;
}

/** Stops the fleet's sshd processes and removes its users and sudoers entry. */
export async function fleetDown(dirArg: string): Promise<FleetState> {
  const dir = path.resolve(dirArg);
  const state = readFleetState(dir);
  if (!state) throw new UserError(`No fleet state in ${dir} (${STATE_FILE} is missing): nothing to stop there.`);
  for (const host of state.hosts) {
    const pid = pidOf(host);
    if (pid !== undefined) process.kill(pid, 'SIGTERM');
  }
  for (const host of state.hosts) {
    try { run('pkill', ['-KILL', '-u', host.user]); } catch { /* no processes left */ }
    try { run('userdel', ['-f', host.user]); } catch { /* already gone */ }
  }
  fs.rmSync(state.sudoersFile, { force: true });
  fs.rmSync(path.join(dir, STATE_FILE), { force: true });
  return state;
}
