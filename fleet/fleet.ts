// Node side. The test fleet: N real OpenSSH sshd "hosts" on distinct loopback addresses, each with its own host
// key, login user, home directory, key auth and passwordless sudo. Serves jest, benchmarks and manual tries.
//
// `up` and `down` run as root in a directory a user names, so they trust nothing in it they did not make: the
// directory (and every directory above it) must be root's and not writable by others, nothing they write may be
// a symbolic link (refused up front, and opened with O_NOFOLLOW | O_EXCL), and `down` acts only on a root-owned
// fleet.json whose users, files and processes all have the names and places `up` gives them.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { UserError } from '../common/errors';
import { isPortFree, waitForPort } from '../common/ports';
import { requireServicePrerequisites, servicesDown, servicesUp, type FleetServices } from './services';

export const SSHD = process.env.RUNBOOK_SSHD ?? '/usr/sbin/sshd';
const STATE_FILE = 'fleet.json';
const MAX_HOSTS = 250 * 200;

export interface FleetHost {
  name: string;
  address: string;
  port: number;
  user: string;
  home: string;
  dir: string;
}
export interface FleetState {
  id: string;
  dir: string;
  hosts: FleetHost[];
  sudoersFile: string;
  createdAt: string;
}

export interface FleetUpOptions {
  hosts: number;
  dir: string;
  /** Real services on the hosts (./services.ts): host-1 balances with HAProxy, the others serve with nginx. */
  services?: boolean;
  /** Receives progress lines. */
  progress?: (line: string) => void;
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function requirePrerequisites(): void {
  if (process.getuid?.() !== 0) {
    throw new UserError(
      'The test fleet creates one login user per host and starts sshd, which needs root. Run ' +
        '`fleet up` as root (CI and the dev container are root), e.g. with sudo.',
    );
  }
  const missing = [SSHD, '/usr/bin/ssh-keygen', '/usr/bin/sudo', '/usr/sbin/useradd'].filter((p) => !fs.existsSync(p));
  if (missing.length > 0) {
    throw new UserError(
      `The test fleet needs ${missing.join(', ')}, which ${missing.length > 1 ? 'are' : 'is'} not ` +
        'installed. Install them with: apt-get update && apt-get install -y openssh-server openssh-client sudo passwd',
    );
  }
}

/** Files `up` writes directly in DIR. */
const DIR_FILES = [STATE_FILE, 'inventory.yaml', 'known_hosts', 'id_ed25519', 'id_ed25519.pub', 'sudoers.tmp'];

function refuse(p: string, problem: string): UserError {
  return new UserError(`Refusing ${p}: ${problem}.`);
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const modeOf = (st: fs.Stats) => (st.mode & 0o7777).toString(8).padStart(4, '0');

/** A directory root works in: a real directory (not a link), root's, writable by nobody else. */
function assertRootDir(p: string, st: fs.Stats): void {
  if (st.isSymbolicLink()) {
    throw refuse(
      p,
      `it is a symbolic link (to ${fs.readlinkSync(p)}); fleet up and down run as root and write there, so give the real directory`,
    );
  }
  if (!st.isDirectory()) throw refuse(p, 'it is not a directory');
  if (st.uid !== 0) {
    throw refuse(
      p,
      `it is owned by uid ${st.uid}, not root, so that user could have prepared files in it; ` +
        'remove it or choose a new --dir (fleet up creates it)',
    );
  }
  if (st.mode & 0o022) {
    throw refuse(
      p,
      `it is writable by group or others (mode ${modeOf(st)}), so they could plant files in it; ` +
        `run \`chmod go-w ${p}\` or choose a new --dir`,
    );
  }
}

/** A file root reads or replaces: a regular file (not a link), root's, writable by nobody else. */
function assertRootFile(p: string, st: fs.Stats): void {
  if (st.isSymbolicLink())
    throw refuse(p, `it is a symbolic link (to ${fs.readlinkSync(p)}); remove it, fleet up writes a new file`);
  if (!st.isFile()) throw refuse(p, 'it is not a regular file');
  if (st.uid !== 0) throw refuse(p, `it is owned by uid ${st.uid}, not root; remove it`);
  if (st.mode & 0o022) throw refuse(p, `it is writable by group or others (mode ${modeOf(st)}); remove it`);
}

/**
 * The fleet directory as a real path whose every ancestor only root can change (or is sticky, like /tmp), so no
 * user can swap it or what is in it. With `create`, a missing directory is made (root's, 0755).
 */
function fleetDir(dirArg: string, create: boolean): { dir: string; exists: boolean } {
  const wanted = path.resolve(dirArg);
  let existing = path.dirname(wanted);
  while (!fs.existsSync(existing)) existing = path.dirname(existing);
  const real = fs.realpathSync(existing);
  for (let d = real; ; d = path.dirname(d)) {
    const st = fs.lstatSync(d);
    if (st.uid !== 0) {
      throw refuse(
        wanted,
        `${d} above it is owned by uid ${st.uid}, not root, so that user could swap the directory; ` +
          'choose a --dir under a root-owned directory such as /tmp',
      );
    }
    if (st.mode & 0o022 && !(st.mode & 0o1000)) {
      throw refuse(
        wanted,
        `${d} above it is writable by group or others (mode ${modeOf(st)}) without the sticky bit; ` +
          'choose a --dir under /tmp or another root-owned directory',
      );
    }
    if (d === path.dirname(d)) break;
  }
  if (existing !== path.dirname(wanted)) {
    if (!create) return { dir: wanted, exists: false };
    fs.mkdirSync(path.join(real, path.relative(existing, path.dirname(wanted))), { recursive: true, mode: 0o755 });
  }
  const parent = fs.realpathSync(path.dirname(wanted));
  const dir = path.join(parent, path.basename(wanted));
  let st = lstatOrUndefined(dir);
  if (!st && create) {
    try {
      fs.mkdirSync(dir, { mode: 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    st = fs.lstatSync(dir);
  }
  if (!st) return { dir, exists: false };
  assertRootDir(dir, st);
  return { dir, exists: true };
}

/** Writes a new file (never through a link, never into one someone else made): removes the old one first. */
function writeNew(file: string, data: string, mode = 0o644): void {
  fs.rmSync(file, { force: true });
  let fd: number;
  try {
    fd = fs.openSync(
      file,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
      mode,
    );
  } catch (err) {
    throw refuse(file, `cannot create it afresh (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    fs.writeFileSync(fd, data);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads a file root made, without following a link. */
function readRootFile(file: string): string | undefined {
  const st = lstatOrUndefined(file);
  if (!st) return undefined;
  assertRootFile(file, st);
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads DIR/fleet.json (root's, not a link), or undefined when no fleet was started there. */
export function readFleetState(dir: string): FleetState | undefined {
  const file = path.join(dir, STATE_FILE);
  const text = readRootFile(file);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as FleetState;
  } catch (err) {
    throw refuse(file, `it is not JSON (${(err as Error).message})`);
  }
}

/**
 * Checks a state file against what `up` writes: user names rb<id>h<n>, host dirs DIR/hosts/host-<n>, the
 * sudoers file /etc/sudoers.d/runbook-fleet-<id>. Anything else was not written by `up`.
 */
export function checkFleetState(dir: string, state: unknown): FleetState {
  const file = path.join(dir, STATE_FILE);
  const s = state as Partial<FleetState> | null;
  if (!s || typeof s !== 'object' || typeof s.id !== 'string' || !/^[0-9a-f]{6}$/.test(s.id)) {
    throw refuse(file, 'its fleet id is not the six hex digits fleet up writes');
  }
  const sudoers = `/etc/sudoers.d/runbook-fleet-${s.id}`;
  if (s.sudoersFile !== sudoers)
    throw refuse(file, `it names sudoers file ${JSON.stringify(s.sudoersFile)}, but fleet ${s.id} writes ${sudoers}`);
  if (!Array.isArray(s.hosts)) throw refuse(file, 'it has no list of hosts');
  s.hosts.forEach((h: Partial<FleetHost> | null, i) => {
    const name = `host-${i + 1}`;
    const expected = {
      name,
      user: `rb${s.id}h${i + 1}`,
      dir: path.join(dir, 'hosts', name),
      home: path.join(dir, 'hosts', name, 'home'),
    };
    for (const key of ['name', 'user', 'dir', 'home'] as const) {
      if (h?.[key] !== expected[key]) {
        throw refuse(
          file,
          `it names ${key} ${JSON.stringify(h?.[key])} for host ${i + 1}, but fleet up names it ${JSON.stringify(expected[key])}; ` +
            'fleet down only removes what fleet up made',
        );
      }
    }
  });
  return s as FleetState;
}

/** The passwd entry of a user (name, uid, comment, home), or undefined when there is none. */
function passwdEntry(user: string): { uid: number; comment: string; home: string } | undefined {
  for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === user && f.length >= 7) return { uid: Number(f[2]), comment: f[4]!, home: f[5]! };
  }
  return undefined;
}

/** The sshd serving a host, if it runs: the pid in its pid file, only when that process is this host's sshd. */
function pidOf(host: FleetHost): number | undefined {
  try {
    const pidFile = path.join(host.dir, 'sshd.pid');
    const text = readRootFile(pidFile);
    const pid = Number(text?.trim());
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(path.join(host.dir, 'sshd_config'))) return undefined; // a stale pid, reused
    return pid;
  } catch {
    return undefined;
  }
}

/** Every ancestor of the fleet dir must let the (unprivileged) host users through. */
function assertTraversable(dir: string): void {
  for (let d = dir; ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o001) === 0) {
      throw new UserError(
        `The fleet's users cannot reach their home directories: ${d} is not searchable by others ` +
          `(mode ${(fs.statSync(d).mode & 0o777).toString(8)}). Run \`chmod o+x ${d}\` or choose a --dir under /tmp.`,
      );
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

function sshdConfig(host: FleetHost, passwords = false): string {
  return [
    `ListenAddress ${host.address}:${host.port}`,
    `HostKey ${path.join(host.dir, 'ssh_host_ed25519_key')}`,
    `PidFile ${path.join(host.dir, 'sshd.pid')}`,
    'AuthorizedKeysFile .ssh/authorized_keys',
    'PubkeyAuthentication yes',
    // With services, the hosts accept passwords too (password-reset proves a new one logs in); no user has one until
    // a runbook or a test sets it (useradd -p '*').
    `PasswordAuthentication ${passwords ? 'yes' : 'no'}`,
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
  if (opts.services) requireServicePrerequisites();
  const { dir } = fleetDir(opts.dir, true);
  for (const f of DIR_FILES) {
    const st = lstatOrUndefined(path.join(dir, f));
    if (st) assertRootFile(path.join(dir, f), st);
  }
  const existing = readFleetState(dir);
  if (existing && Array.isArray(existing.hosts) && existing.hosts.some((h) => pidOf(h) !== undefined)) {
    throw new UserError(
      `A fleet is already running from ${dir}. Stop it first: npm run --silent fleet -- down --dir ${dir}`,
    );
  }
  const hostsDir = path.join(dir, 'hosts');
  const hostsSt = lstatOrUndefined(hostsDir);
  if (hostsSt) assertRootDir(hostsDir, hostsSt);
  else fs.mkdirSync(hostsDir, { mode: 0o755 });
  // Each host's user must reach its home inside DIR.
  fs.chmodSync(dir, 0o755);
  assertTraversable(path.dirname(dir));
  fs.chmodSync(hostsDir, 0o755);
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const id = crypto.randomBytes(3).toString('hex');
  const { octet, port } = await pickAddressesAndPort(opts.hosts);
  const clientKey = path.join(dir, 'id_ed25519');
  fs.rmSync(clientKey, { force: true });
  fs.rmSync(`${clientKey}.pub`, { force: true });
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `runbook-fleet-${id}`, '-f', clientKey]);
  const publicKey = fs.readFileSync(`${clientKey}.pub`, 'utf8');

  const state: FleetState = {
    id,
    dir,
    hosts: [],
    sudoersFile: `/etc/sudoers.d/runbook-fleet-${id}`,
    createdAt: new Date().toISOString(),
  };
  // Saved before anything global changes, so `down` can undo a half-finished `up`.
  const save = () => writeNew(path.join(dir, STATE_FILE), JSON.stringify(state, null, 2));
  save();
  const knownHosts: string[] = [];
  let services: FleetServices | undefined;
  try {
    for (let i = 0; i < opts.hosts; i++) {
      const name = `host-${i + 1}`;
      const hostDir = path.join(dir, 'hosts', name);
      fs.rmSync(hostDir, { recursive: true, force: true });
      fs.mkdirSync(hostDir, { recursive: true, mode: 0o755 });
      const host: FleetHost = {
        name,
        address: addressFor(octet, i),
        port,
        user: `rb${id}h${i + 1}`,
        home: path.join(hostDir, 'home'),
        dir: hostDir,
      };
      state.hosts.push(host);
      save();
      run('useradd', [
        '-M',
        '-d',
        host.home,
        '-s',
        '/bin/bash',
        '-p',
        '*',
        '-c',
        `runbook test fleet ${id}`,
        host.user,
      ]);
      fs.mkdirSync(path.join(host.home, '.ssh'), { recursive: true, mode: 0o700 });
      fs.writeFileSync(path.join(host.home, '.ssh', 'authorized_keys'), publicKey, { mode: 0o600 });
      run('chown', ['-R', `${host.user}:${host.user}`, host.home]);
      fs.chmodSync(host.home, 0o755);
      run('ssh-keygen', [
        '-q',
        '-t',
        'ed25519',
        '-N',
        '',
        '-C',
        name,
        '-f',
        path.join(hostDir, 'ssh_host_ed25519_key'),
      ]);
      const [type, blob] = fs.readFileSync(path.join(hostDir, 'ssh_host_ed25519_key.pub'), 'utf8').split(/\s+/);
      knownHosts.push(`[${host.address}]:${port} ${type} ${blob}`);
      writeNew(path.join(hostDir, 'sshd_config'), sshdConfig(host, opts.services));
      if ((i + 1) % 10 === 0 || i + 1 === opts.hosts) progress(`prepared ${i + 1}/${opts.hosts} hosts`);
    }
    const sudoers = state.hosts.map((h) => `${h.user} ALL=(ALL:ALL) NOPASSWD: ALL`).join('\n') + '\n';
    const tmpSudoers = path.join(dir, 'sudoers.tmp');
    writeNew(tmpSudoers, sudoers, 0o440);
    run('visudo', ['-cqf', tmpSudoers]);
    fs.renameSync(tmpSudoers, state.sudoersFile);

    for (const host of state.hosts) {
      run(SSHD, ['-f', path.join(host.dir, 'sshd_config'), '-E', path.join(host.dir, 'sshd.log')]);
    }
    await Promise.all(state.hosts.map((h) => waitForPort(h.port, h.address, 10_000)));
    progress(`${state.hosts.length} sshd hosts listening on 127.${octet}.x.y:${port}`);
    writeNew(path.join(dir, 'known_hosts'), knownHosts.join('\n') + '\n');
    if (opts.services) {
      services = await servicesUp(state.hosts, dir);
      progress(
        `services up: HAProxy on ${state.hosts[0]!.name}; nginx on ${services.groups.web!.join(', ')} (HTTP port ${services.httpPort})` +
          (services.groups.postgres
            ? `; PostgreSQL primary and standby on ${services.groups.postgres.join(', ')}`
            : ''),
      );
    }
  } catch (err) {
    await fleetDown(dir).catch(() => undefined);
    throw err;
  }

  const inventory = {
    vars: { identityFile: 'id_ed25519', knownHosts: 'known_hosts' },
    hosts: Object.fromEntries(
      state.hosts.map((h, i) => [
        h.name,
        {
          address: h.address,
          port: h.port,
          user: h.user,
          labels: { fleet: id, index: String(i + 1) },
          ...(services ? { vars: services.vars[h.name] } : {}),
        },
      ]),
    ),
    groups: { all: state.hosts.map((h) => h.name), ...services?.groups },
  };
  writeNew(
    path.join(dir, 'inventory.yaml'),
    `# Generated by \`runbook fleet up\` (fleet ${id}); removed hosts and users by \`fleet down --dir ${dir}\`.\n` +
      YAML.stringify(inventory),
  );
  return state;
}

/**
 * Stops the fleet's sshd processes and removes its users and sudoers entry. Everything is checked before
 * anything is done: the state file (root's, the names `up` gives), and each user that still exists (made by this
 * fleet: its comment and home are the ones `up` sets).
 */
export async function fleetDown(dirArg: string): Promise<FleetState> {
  const { dir, exists } = fleetDir(dirArg, false);
  const raw = exists ? readFleetState(dir) : undefined;
  if (!raw) throw new UserError(`No fleet state in ${dir} (${STATE_FILE} is missing): nothing to stop there.`);
  const state = checkFleetState(dir, raw);
  const users = state.hosts.filter((host) => {
    const entry = passwdEntry(host.user);
    if (!entry) return false; // never created, or already removed
    if (entry.uid === 0 || entry.comment !== `runbook test fleet ${state.id}` || entry.home !== host.home) {
      throw refuse(
        path.join(dir, STATE_FILE),
        `user ${host.user} exists but is not the one fleet ${state.id} created ` +
          `(uid ${entry.uid}, comment ${JSON.stringify(entry.comment)}, home ${entry.home}); remove it by hand if it is yours to remove`,
      );
    }
    return true;
  });
  for (const host of state.hosts) {
    const pid = pidOf(host);
    if (pid !== undefined) process.kill(pid, 'SIGTERM');
    servicesDown(host);
  }
  for (const host of users) {
    try {
      run('pkill', ['-KILL', '-u', host.user]);
    } catch {
      /* no processes left */
    }
    try {
      run('userdel', ['-f', host.user]);
    } catch {
      /* already gone */
    }
  }
  fs.rmSync(state.sudoersFile, { force: true });
  fs.rmSync(path.join(dir, STATE_FILE), { force: true });
  return state;
}
