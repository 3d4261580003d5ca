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

function haproxyConf(lb: ServiceHost, web: ServiceHost[], port: number): string {
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
`;
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

/** The host's supervisor: the only way the runbooks (and `fleet down`) start and stop its services. */
function svcScript(h: ServiceHost, services: Record<string, string>): string {
  const srv = srvDir(h);
  const cases = Object.entries(services)
    .map(([name, start]) => `  ${name}) start_cmd() { ${start}; } ;;`)
    .join('\n');
  return `#!/bin/bash
# The service supervisor of test fleet host ${h.name} (no systemd here): svc start|stop|restart|status SERVICE.
# status prints "active (pid N)" and exits 0, or prints "inactive" and exits 3, like an LSB init script.
set -u
action=\${1:-} name=\${2:-}
pidfile=${srv}/run/$name.pid
case "$name" in
${cases}
  *) echo "svc: no service '$name' on ${h.name} (it has: ${Object.keys(services).join(', ')})" >&2; exit 2 ;;
esac
running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
stop() {
  running || { rm -f "$pidfile"; return 0; }
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }; sleep 0.1; done
  echo "svc: $name (pid $pid) did not stop within 10 s" >&2; return 1
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
  status) if running; then echo "active (pid $(cat "$pidfile"))"; else echo inactive; exit 3; fi ;;
  *) echo "usage: svc start|stop|restart|status SERVICE" >&2; exit 2 ;;
esac
`;
}

function write(file: string, text: string, mode = 0o644): void {
  fs.writeFileSync(file, text, { mode, flag: 'wx' });
}

async function pickPort(hosts: ServiceHost[]): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = 40000 + Math.floor(Math.random() * 20000);
    const probes = await Promise.all(hosts.map((h) => isPortFree(port, h.address)));
    if (probes.every(Boolean)) return port;
  }
  throw new UserError('Could not find a free HTTP port on the fleet addresses after 20 tries.');
}

function svc(h: ServiceHost, action: string, service: string): void {
  execFileSync(path.join(srvDir(h), 'bin', 'svc'), [action, service], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Configures and starts the services: the first host balances, the others serve. Returns the inventory's vars
 * and groups. Needs at least two hosts.
 */
export async function servicesUp(hosts: ServiceHost[], fleetDir: string): Promise<FleetServices> {
  requireServicePrerequisites();
  if (hosts.length < 2) throw new UserError('fleet up --services needs at least 2 hosts (a balancer and a web host).');
  const [lb, ...web] = hosts as [ServiceHost, ...ServiceHost[]];
  const httpPort = await pickPort(hosts);
  for (const h of hosts) {
    const srv = srvDir(h);
    fs.rmSync(srv, { recursive: true, force: true });
    for (const d of ['bin', 'run', 'log', 'tmp', 'nginx', 'haproxy'])
      fs.mkdirSync(path.join(srv, d), { recursive: true });
    fs.chmodSync(srv, 0o755);
  }
  write(path.join(srvDir(lb), 'haproxy', 'haproxy.cfg'), haproxyConf(lb, web, httpPort));
  const haproxyStart = `${HAPROXY} -D -f ${srvDir(lb)}/haproxy/haproxy.cfg -p "$pidfile"`;
  write(path.join(srvDir(lb), 'bin', 'svc'), svcScript(lb, { haproxy: haproxyStart }), 0o755);
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
    write(path.join(srvDir(w), 'bin', 'svc'), svcScript(w, { nginx: nginxStart }), 0o755);
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
  return { httpPort, vars, groups: { lb: [lb.name], web: web.map((w) => w.name) } };
}

/** Stops a host's services (those whose pid file its supervisor left); best effort, for `fleet down`. */
export function servicesDown(h: ServiceHost): void {
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
