// Test harness (Node side). A real, throwaway PostgreSQL server from Debian's package: initdb into a temp dir,
// listening on a free loopback port only, trust auth (nothing else can reach it). As root, it runs as the
// `postgres` system user the package creates, because PostgreSQL refuses to run as root.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from '../../common/ports';

export interface PgServer {
  url: string;
  adminUrl: string;
  dataDir: string;
  stop(): Promise<void>;
}

function pgBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'postgres')))
    : [];
  if (versions.length === 0) {
    throw new Error(
      'PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install postgresql (.ci/run does)',
    );
  }
  return path.join(root, versions.sort((a, b) => Number(b) - Number(a))[0]!, 'bin');
}

const asRoot = process.getuid?.() === 0;

/** The command line that runs `bin` as a user PostgreSQL accepts (postgres, when we are root). */
function asPostgres(bin: string, args: string[]): [string, string[]] {
  return asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

function run(bin: string, args: string[]): void {
  execFileSync(...asPostgres(bin, args), { stdio: 'pipe' });
}

export async function startPostgres(dir: string): Promise<PgServer> {
  const bin = pgBin();
  const dataDir = path.join(dir, 'pgdata');
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  fs.mkdirSync(dataDir, { mode: 0o700 });
  if (asRoot) execFileSync('chown', ['postgres:postgres', dataDir]);
  run(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  const args = [
    '-D',
    dataDir,
    '-p',
    String(port),
    '-h',
    '127.0.0.1',
    '-k',
    dataDir,
    '-c',
    'fsync=off',
    '-c',
    'logging_collector=off',
  ];
  const [cmd, argv] = asPostgres(path.join(bin, 'postgres'), args);
  const log = fs.openSync(path.join(dir, 'postgres.log'), 'a');
  const child = spawn(cmd, argv, { stdio: ['ignore', log, log], detached: true });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      execFileSync(path.join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres'], {
        stdio: 'pipe',
      });
      break;
    } catch {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`PostgreSQL did not start; see ${path.join(dir, 'postgres.log')}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  execFileSync(path.join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'runbook_test'], {
    stdio: 'pipe',
  });
  return {
    url: `postgres://postgres@127.0.0.1:${port}/runbook_test`,
    adminUrl,
    dataDir,
    async stop() {
      if (child.exitCode === null) {
        // The whole process group: under runuser, postgres is a grandchild.
        process.kill(-child.pid!, 'SIGINT'); // PostgreSQL's fast shutdown
        const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      fs.closeSync(log);
    },
  };
}
