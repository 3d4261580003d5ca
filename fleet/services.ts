// Node side. Real services on the test fleet's hosts (`fleet up --services`), so the shipped runbooks can be
// proven end to end: host-1 is a load balancer (HAProxy with its runtime API on a unix socket), the other hosts
// are web servers (nginx with a /health endpoint), each listening on its own host address. Each web host has its
// own dpkg database and apt state (a package root, `DIR/hosts/NAME/root`, through `srv/bin/apt-get` and
// `dpkg-query`), fed by a local apt repository the fleet builds (`DIR/repo`, the real .deb `rb-site`, whose file
// nginx serves as /version). A per-host package root was chosen over a per-host root file system (debootstrap or
// namespaces): it needs no image build or network, takes a second per host, and is what a patch touches.
//
// The hosts have no systemd: each has a small service supervisor, `SRV/bin/svc start|stop|restart|status
// SERVICE` (root's, run through sudo), which the inventory names (`service_manager: command`,
// `service_command`), as a container or an older distribution would. Everything lives in the host's directory,
// `DIR/hosts/NAME/srv`, made by root and writable only by root; nginx's workers and HAProxy run as the host's
// user. Each host also has a scratch directory its user owns (`scratch_dirs`, for disk-cleanup).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../common/errors';
import { isPortFree, waitForPort } from '../common/ports';

export const NGINX = process.env.RUNBOOK_NGINX ?? '/usr/sbin/nginx';
export const HAPROXY = process.env.RUNBOOK_HAPROXY ?? '/usr/sbin/haproxy';
export const SOCAT = '/usr/bin/socat';

/** What `services` needs from a fleet host (a FleetHost). */
export interface ServiceHost {
  name: string;
  address: string;
  user: string;
  dir: string;
}

/** The HAProxy backend the web hosts are servers of. */
export const LB_BACKEND = 'web';

/** What the inventory says about each host, and its service groups. */
export interface FleetServices {
  /** The HTTP port of nginx on every web host and of HAProxy's frontend on the load balancer. */
  httpPort: number;
  vars: Record<string, Record<string, unknown>>;
  groups: Record<string, string[]>;
}

export function requireServicePrerequisites(): void {
  const missing = [NGINX, HAPROXY, SOCAT, '/usr/bin/dpkg-scanpackages'].filter((p) => !fs.existsSync(p));
  if (missing.length > 0) {
    throw new UserError(
      `fleet up --services needs ${missing.join(', ')}, which ${missing.length > 1 ? 'are' : 'is'} not installed. ` +
        'Install them with: apt-get update && apt-get install -y nginx-light haproxy socat dpkg-dev',
    );
  }
}

const srvDir = (h: ServiceHost) => path.join(h.dir, 'srv');
/** The host's own package root: its dpkg database and the files its packages install. */
const pkgRoot = (h: ServiceHost) => path.join(h.dir, 'root');

/** The package the fleet's local apt repository serves: nginx serves its file as /version. */
export const SITE_PACKAGE = 'rb-site';
const pidFile = (h: ServiceHost, service: string) => path.join(srvDir(h), 'run', `${service}.pid`);

function nginxConf(h: ServiceHost, port: number): string {
  const srv = srvDir(h);
  return `# nginx of fleet host ${h.name}: GET /health answers 200 while it serves.
daemon on;
worker_processes 1;
user ${h.user} ${h.user};
pid ${pidFile(h, 'nginx')};
error_log ${srv}/log/nginx-error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${srv}/tmp/body;
  proxy_temp_path ${srv}/tmp/proxy;
  fastcgi_temp_path ${srv}/tmp/fastcgi;
  uwsgi_temp_path ${srv}/tmp/uwsgi;
  scgi_temp_path ${srv}/tmp/scgi;
  default_type text/plain;
  server {
    listen ${h.address}:${port};
    location = /health { return 200 "ok ${h.name}\\n"; }
    location = /version { alias ${pkgRoot(h)}/srv/www/version.txt; }
    location / { return 200 "${h.name}\\n"; }
  }
}
`;
}

/** The PostgreSQL pair behind HAProxy's `pg` listener: the primary serves, the standby waits in MAINT. */
export const LB_PG_BACKEND = 'pg';

function haproxyConf(lb: ServiceHost, web: ServiceHost[], port: number, pg?: PgPair): string {
  const srv = srvDir(lb);
  return `# HAProxy of fleet host ${lb.name}: round robin over the web hosts, health-checked; runtime API on a socket.
global
  nbthread 1
  user ${lb.user}
  group ${lb.user}
  stats socket ${srv}/run/haproxy.sock mode 600 level admin
  log stderr local0 warning
defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend web
  bind ${lb.address}:${port}
  default_backend ${LB_BACKEND}
backend ${LB_BACKEND}
  balance roundrobin
  option httpchk GET /health
  default-server check inter 300ms fall 2 rise 2
${web.map((w) => `  server ${w.name} ${w.address}:${port}`).join('\n')}
${
  pg
    ? `listen ${LB_PG_BACKEND}
  mode tcp
  bind ${lb.address}:${pg.port}
  timeout client 1h
  timeout server 1h
  default-server check inter 300ms fall 2 rise 2
  server ${pg.primary.name} ${pg.primary.address}:${pg.port}
  server ${pg.standby.name} ${pg.standby.address}:${pg.port} disabled
`
    : ''
}`;
}

/**
 * apt-get and dpkg-query of a host, on its own package root: the host's dpkg database, apt state and sources (the
 * fleet's local repository) are its own, so a patch can leave host-2 on v2 and host-3 on v1. Packages install
 * below the root, without chroot (the repository's packages have no maintainer scripts).
 */
function aptWrappers(h: ServiceHost): { aptGet: string; dpkgQuery: string } {
  const root = pkgRoot(h);
  return {
    aptGet: `#!/bin/sh
# apt-get of test fleet host ${h.name}: its own package root ${root}.
exec /usr/bin/apt-get -o Dir=${root}/ -o Dir::State::status=${root}/var/lib/dpkg/status \\
  -o Dir::Etc::SourceList=${root}/etc/apt/sources.list -o DPkg::Options::=--root=${root} \\
  -o DPkg::Options::=--force-script-chrootless -o DPkg::Options::=--log=${root}/var/log/dpkg.log "$@"
`,
    dpkgQuery: `#!/bin/sh
# dpkg-query of test fleet host ${h.name}: its own package database.
exec /usr/bin/dpkg-query --admindir=${root}/var/lib/dpkg "$@"
`,
  };
}

/** Builds version VERSION of the site package into the fleet's repository (DIR/repo) and re-indexes it. */
export function publishSitePackage(fleetDir: string, version: string): void {
  if (!/^[0-9][0-9A-Za-z.+~-]*$/.test(version)) throw new UserError(`not a package version: ${version}`);
  const repo = path.join(fleetDir, 'repo');
  fs.mkdirSync(repo, { recursive: true, mode: 0o755 });
  const stage = fs.mkdtempSync(path.join(repo, '.build-'));
  try {
    fs.mkdirSync(path.join(stage, 'DEBIAN'));
    fs.mkdirSync(path.join(stage, 'srv', 'www'), { recursive: true });
    fs.writeFileSync(
      path.join(stage, 'DEBIAN', 'control'),
      `Package: ${SITE_PACKAGE}\nVersion: ${version}\nArchitecture: all\nMaintainer: runbook test fleet <root@localhost>\n` +
        'Description: the content the test fleet serves as /version\n',
    );
    fs.writeFileSync(path.join(stage, 'srv', 'www', 'version.txt'), `${version}\n`);
    execFileSync(
      'dpkg-deb',
      ['--root-owner-group', '--build', stage, path.join(repo, `${SITE_PACKAGE}_${version}_all.deb`)],
      {
        stdio: 'ignore',
      },
    );
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  const index = execFileSync('dpkg-scanpackages', ['--multiversion', '.', '/dev/null'], {
    cwd: repo,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  fs.writeFileSync(path.join(repo, 'Packages'), index);
}

/** Makes the host's package root (empty dpkg database, the fleet repository as its only source). */
function makePackageRoot(h: ServiceHost, repo: string): void {
  const root = pkgRoot(h);
  fs.rmSync(root, { recursive: true, force: true });
  for (const d of [
    'var/lib/dpkg/info',
    'var/lib/dpkg/updates',
    'var/lib/dpkg/triggers',
    'etc/apt/sources.list.d',
    'etc/apt/apt.conf.d',
    'etc/apt/preferences.d',
    'var/lib/apt/lists/partial',
    'var/cache/apt/archives/partial',
    'var/log/apt',
    'srv/www',
  ])
    fs.mkdirSync(path.join(root, d), { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(root, 'var/lib/dpkg/status'), '');
  fs.writeFileSync(path.join(root, 'var/lib/dpkg/available'), '');
  fs.writeFileSync(path.join(root, 'etc/apt/sources.list'), `deb [trusted=yes] file:${repo} ./\n`);
}

/** How the supervisor runs one service: its start command, and where its pid is (default `SRV/run/NAME.pid`). */
interface SvcService {
  start: string;
  pidfile?: string;
  /** Signal that stops it (default TERM; PostgreSQL's fast shutdown is INT). */
  stopSignal?: string;
}

/** The host's supervisor: the only way the runbooks (and `fleet down`) start and stop its services. */
function svcScript(h: ServiceHost, services: Record<string, SvcService>): string {
  const srv = srvDir(h);
  const cases = Object.entries(services)
    .map(
      ([name, s]) =>
        `  ${name}) start_cmd() { ${s.start}; }${s.pidfile ? `; pidfile=${s.pidfile}` : ''}${s.stopSignal ? `; signal=${s.stopSignal}` : ''} ;;`,
    )
    .join('\n');
  return `#!/bin/bash
# The service supervisor of test fleet host ${h.name} (no systemd here): svc start|stop|restart|status SERVICE.
# status prints "active (pid N)" and exits 0, or prints "inactive" and exits 3, like an LSB init script.
set -u
action=\${1:-} name=\${2:-}
pidfile=${srv}/run/$name.pid signal=TERM
case "$name" in
${cases}
  *) echo "svc: no service '$name' on ${h.name} (it has: ${Object.keys(services).join(', ')})" >&2; exit 2 ;;
esac
pid() { head -n 1 "$pidfile" 2>/dev/null; }
running() { [ -s "$pidfile" ] && kill -0 "$(pid)" 2>/dev/null; }
stop() {
  running || return 0
  local p; p=$(pid)
  kill -"$signal" "$p"
  for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  echo "svc: $name (pid $p) did not stop within 30 s" >&2; return 1
}
start() {
  running && return 0
  start_cmd || { echo "svc: $name failed to start" >&2; return 1; }
  for _ in $(seq 50); do running && return 0; sleep 0.1; done
  echo "svc: $name did not write its pid file within 5 s" >&2; return 1
}
case "$action" in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status) if running; then echo "active (pid $(pid))"; else echo inactive; exit 3; fi ;;
  *) echo "usage: svc start|stop|restart|status SERVICE" >&2; exit 2 ;;
esac
`;
}

function write(file: string, text: string, mode = 0o644): void {
  fs.writeFileSync(file, text, { mode, flag: 'wx' });
}

async function pickPort(hosts: ServiceHost[], taken: number[] = []): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = 40000 + Math.floor(Math.random() * 20000);
    if (taken.includes(port)) continue;
    const probes = await Promise.all(hosts.map((h) => isPortFree(port, h.address)));
    if (probes.every(Boolean)) return port;
  }
  throw new UserError('Could not find a free HTTP port on the fleet addresses after 20 tries.');
}

function svc(h: ServiceHost, action: string, service: string): void {
  execFileSync(path.join(srvDir(h), 'bin', 'svc'), [action, service], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The fleet's PostgreSQL primary and streaming standby. */
interface PgPair {
  primary: ServiceHost;
  standby: ServiceHost;
  port: number;
  bin: string;
}

/** The newest PostgreSQL server binaries of Debian's packages. */
export function pgBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'postgres')))
    : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  return newest ? path.join(root, newest, 'bin') : undefined;
}

const pgDir = (h: ServiceHost) => path.join(h.dir, 'pg');
const pgData = (h: ServiceHost) => path.join(pgDir(h), 'data');

function asPostgres(bin: string, args: string[]): void {
  execFileSync('runuser', ['-u', 'postgres', '--', bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The host's server settings: its own address and socket directory; replication on. */
const pgConf = (h: ServiceHost, port: number) => `
# test fleet host ${h.name}
listen_addresses = '${h.address}'
port = ${port}
unix_socket_directories = '${path.join(pgDir(h), 'run')}'
wal_level = replica
max_wal_senders = 5
hot_standby = on
fsync = off
logging_collector = off
`;

function pgService(h: ServiceHost, pg: PgPair): SvcService {
  return {
    start: `runuser -u postgres -- ${pg.bin}/pg_ctl -D ${pgData(h)} -l ${path.join(pgDir(h), 'postgresql.log')} -w -t 30 start >/dev/null`,
    pidfile: path.join(pgData(h), 'postmaster.pid'),
    stopSignal: 'INT',
  };
}

/** The primary (a database \`app\` with 1,000 rows in \`items\`) and a standby streaming from it. */
function pgUp(pg: PgPair): void {
  for (const h of [pg.primary, pg.standby]) {
    fs.rmSync(pgDir(h), { recursive: true, force: true });
    fs.mkdirSync(path.join(pgDir(h), 'run'), { recursive: true, mode: 0o755 });
    fs.mkdirSync(pgData(h), { mode: 0o700 });
    execFileSync('chown', ['-R', 'postgres:postgres', pgDir(h)]);
  }
  const { primary, standby, port, bin } = pg;
  asPostgres(path.join(bin, 'initdb'), [
    '-D',
    pgData(primary),
    '-U',
    'postgres',
    '--auth=trust',
    '-E',
    'UTF8',
    '--no-sync',
  ]);
  fs.appendFileSync(path.join(pgData(primary), 'postgresql.conf'), pgConf(primary, port));
  // Loopback only, no passwords: the test fleet's hosts and nothing else reach these addresses.
  fs.appendFileSync(
    path.join(pgData(primary), 'pg_hba.conf'),
    'host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n',
  );
  svc(primary, 'start', 'postgresql');
  const psql = (db: string, sql: string) =>
    execFileSync(
      'psql',
      ['-h', primary.address, '-p', String(port), '-U', 'postgres', '-d', db, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
  psql('postgres', 'create database app');
  psql(
    'app',
    "create table items (id serial primary key, name text not null); insert into items (name) select 'item-' || g from generate_series(1, 1000) g",
  );
  fs.rmSync(pgData(standby), { recursive: true, force: true });
  asPostgres(path.join(bin, 'pg_basebackup'), [
    '-h',
    primary.address,
    '-p',
    String(port),
    '-U',
    'postgres',
    '-D',
    pgData(standby),
    '-R',
    '-X',
    'stream',
    '--no-sync',
    '--checkpoint=fast',
  ]);
  fs.appendFileSync(path.join(pgData(standby), 'postgresql.conf'), pgConf(standby, port));
  svc(standby, 'start', 'postgresql');
}

/** The backup host's key, authorized on the database hosts, and their host keys: it pulls dumps over SFTP. */
function backupAccess(backup: ServiceHost, dbs: ServiceHost[], fleetDir: string): string {
  const ssh = path.join(backup.dir, 'home', '.ssh');
  const key = path.join(ssh, 'id_ed25519');
  fs.rmSync(key, { force: true });
  fs.rmSync(`${key}.pub`, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${backup.name} backups`, '-f', key]);
  const pub = fs.readFileSync(`${key}.pub`, 'utf8');
  for (const db of dbs) fs.appendFileSync(path.join(db.dir, 'home', '.ssh', 'authorized_keys'), pub);
  fs.copyFileSync(path.join(fleetDir, 'known_hosts'), path.join(ssh, 'known_hosts'));
  const backups = path.join(backup.dir, 'backups');
  fs.mkdirSync(backups, { recursive: true, mode: 0o750 });
  execFileSync('chown', ['-R', `${backup.user}:${backup.user}`, ssh, backups]);
  return backups;
}

/**
 * Configures and starts the services: the first host balances, the others serve. Returns the inventory's vars
 * and groups. Needs at least two hosts.
 */
export async function servicesUp(hosts: ServiceHost[], fleetDir: string): Promise<FleetServices> {
  requireServicePrerequisites();
  if (hosts.length < 2) throw new UserError('fleet up --services needs at least 2 hosts (a balancer and a web host).');
  const [lb, ...rest] = hosts as [ServiceHost, ...ServiceHost[]];
  const httpPort = await pickPort(hosts);
  // From 5 hosts on, the last two are a PostgreSQL primary and its standby.
  const bin = pgBinDir();
  const withPg = hosts.length >= 5;
  if (withPg && !bin)
    throw new UserError(
      'fleet up --services with 5 or more hosts runs PostgreSQL on the last two: apt-get install -y postgresql',
    );
  const web = withPg ? rest.slice(0, -2) : rest;
  const pg: PgPair | undefined = withPg
    ? {
        primary: rest.at(-2)!,
        standby: rest.at(-1)!,
        port: await pickPort(hosts, [httpPort]),
        bin: bin!,
      }
    : undefined;
  for (const h of hosts) {
    const srv = srvDir(h);
    fs.rmSync(srv, { recursive: true, force: true });
    for (const d of ['bin', 'run', 'log', 'tmp', 'nginx', 'haproxy'])
      fs.mkdirSync(path.join(srv, d), { recursive: true });
    fs.chmodSync(srv, 0o755);
  }
  write(path.join(srvDir(lb), 'haproxy', 'haproxy.cfg'), haproxyConf(lb, web, httpPort, pg));
  const haproxyStart = `${HAPROXY} -D -f ${srvDir(lb)}/haproxy/haproxy.cfg -p "$pidfile"`;
  write(path.join(srvDir(lb), 'bin', 'svc'), svcScript(lb, { haproxy: { start: haproxyStart } }), 0o755);
  publishSitePackage(fleetDir, '1.0');
  for (const w of web) {
    makePackageRoot(w, path.join(fleetDir, 'repo'));
    const apt = aptWrappers(w);
    write(path.join(srvDir(w), 'bin', 'apt-get'), apt.aptGet, 0o755);
    write(path.join(srvDir(w), 'bin', 'dpkg-query'), apt.dpkgQuery, 0o755);
    for (const args of [
      ['update', '-q'],
      ['install', '-y', '-q', `${SITE_PACKAGE}=1.0`],
    ])
      execFileSync(path.join(srvDir(w), 'bin', 'apt-get'), args, {
        stdio: 'ignore',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    write(path.join(srvDir(w), 'nginx', 'nginx.conf'), nginxConf(w, httpPort));
    const nginxStart = `${NGINX} -c ${srvDir(w)}/nginx/nginx.conf -p ${srvDir(w)}/nginx/`;
    write(path.join(srvDir(w), 'bin', 'svc'), svcScript(w, { nginx: { start: nginxStart } }), 0o755);
  }
  if (pg) {
    for (const h of [pg.primary, pg.standby])
      write(path.join(srvDir(h), 'bin', 'svc'), svcScript(h, { postgresql: pgService(h, pg) }), 0o755);
    pgUp(pg);
  }
  for (const w of web) svc(w, 'start', 'nginx');
  await Promise.all(web.map((w) => waitForPort(httpPort, w.address, 10_000)));
  svc(lb, 'start', 'haproxy');
  await waitForPort(httpPort, lb.address, 10_000);

  // Each host's scratch directory, its user's to fill (disk-cleanup's default scratch_dirs: never the real /tmp).
  for (const h of hosts) {
    const scratch = path.join(h.dir, 'scratch');
    fs.rmSync(scratch, { recursive: true, force: true });
    fs.mkdirSync(scratch, { mode: 0o755 });
    execFileSync('chown', [`${h.user}:${h.user}`, scratch]);
  }
  const common = (h: ServiceHost) => ({
    service_manager: 'command',
    service_command: path.join(srvDir(h), 'bin', 'svc'),
    scratch_dirs: [path.join(h.dir, 'scratch')],
  });
  const vars: FleetServices['vars'] = {
    [lb.name]: { ...common(lb), http_port: httpPort, lb_socket: path.join(srvDir(lb), 'run', 'haproxy.sock') },
  };
  for (const w of web)
    vars[w.name] = {
      ...common(w),
      http_port: httpPort,
      lb: lb.name,
      lb_backend: LB_BACKEND,
      apt_get: path.join(srvDir(w), 'bin', 'apt-get'),
      dpkg_query: path.join(srvDir(w), 'bin', 'dpkg-query'),
    };
  const groups: Record<string, string[]> = { lb: [lb.name], web: web.map((w) => w.name) };
  if (pg) {
    vars[lb.name]!.backup_dir = backupAccess(lb, [pg.primary, pg.standby], fleetDir);
    for (const h of [pg.primary, pg.standby])
      vars[h.name] = {
        ...common(h),
        pg_port: pg.port,
        pg_bin: pg.bin,
        pg_service: 'postgresql',
        lb: lb.name,
        lb_pg_backend: LB_PG_BACKEND,
        dump_dir: path.join(h.dir, 'home'),
      };
    Object.assign(groups, { postgres: [pg.primary.name, pg.standby.name], 'postgres-primary': [pg.primary.name] });
  }
  return { httpPort, vars, groups };
}

/** Stops a host's services (those whose pid file its supervisor left); best effort, for `fleet down`. */
export function servicesDown(h: ServiceHost): void {
  // PostgreSQL's pid file is the postgres user's: trust it only for a process started on this host's data directory.
  try {
    const pid = Number(fs.readFileSync(path.join(pgData(h), 'postmaster.pid'), 'utf8').split('\n')[0]);
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (pid > 1 && cmdline.includes(pgData(h))) process.kill(pid, 'SIGINT');
  } catch {
    /* no PostgreSQL here, or already stopped */
  }
  const run = path.join(srvDir(h), 'run');
  let files: string[];
  try {
    files = fs.readdirSync(run).filter((f) => f.endsWith('.pid'));
  } catch {
    return; // no services on this host
  }
  for (const f of files) {
    const st = fs.lstatSync(path.join(run, f));
    if (!st.isFile() || st.uid !== 0) continue; // only what root's supervisor wrote
    const pid = Number(fs.readFileSync(path.join(run, f), 'utf8').trim());
    if (Number.isInteger(pid) && pid > 1) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
  }
}
