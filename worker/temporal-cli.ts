// Node side. Finds the Temporal CLI (which embeds the dev server and Web UI), or builds it from the Go module
// proxy, or, on a machine with internet and no Go, lets the Temporal SDK download it. Says which path it took.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as TemporalTesting from '@temporalio/testing';
import { UserError } from '../common/errors';

/** The Temporal CLI release built from source; later tags carry a `replace` directive and cannot be `go install`ed. */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

export const PROJECT_ROOT = path.resolve(
  __dirname,
  '..',
  fs.existsSync(path.join(__dirname, '..', 'package.json')) ? '' : '..',
);

/** Project-local, git-ignored tools directory; `RUNBOOK_TOOLS_DIR` overrides it. */
export function toolsDir(): string {
  return process.env.RUNBOOK_TOOLS_DIR ?? path.join(PROJECT_ROOT, '.tools');
}

export interface TemporalCli {
  path: string;
  /** How it was found: 'TEMPORAL_CLI', 'PATH', 'go-bin', 'tools-dir', 'built', 'downloaded'. */
  source: string;
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, cmd))) return path.join(dir, cmd);
  }
  return undefined;
}

function goBinDir(go: string): string {
  if (process.env.GOBIN) return process.env.GOBIN;
  const gopath = execFileSync(go, ['env', 'GOPATH'], { encoding: 'utf8' }).trim().split(path.delimiter)[0];
  return path.join(gopath || path.join(os.homedir(), 'go'), 'bin');
}

/** Looks for an existing CLI: TEMPORAL_CLI, then PATH, then ~/go/bin (or GOBIN), then the tools dir. */
export function findTemporalCli(): TemporalCli | undefined {
  const explicit = process.env.TEMPORAL_CLI;
  if (explicit) {
    if (!isExecutable(explicit)) {
      throw new UserError(
        `TEMPORAL_CLI is set to ${explicit}, which is not an executable file. Point it at a ` +
          'Temporal CLI binary, or unset it to let runbook find or build one.',
      );
    }
    return { path: explicit, source: 'TEMPORAL_CLI' };
  }
  const onPath = which('temporal');
  if (onPath) return { path: onPath, source: 'PATH' };
  const goBin = path.join(process.env.GOBIN ?? path.join(os.homedir(), 'go', 'bin'), 'temporal');
  if (isExecutable(goBin)) return { path: goBin, source: 'go-bin' };
  for (const sub of ['bin', 'download']) {
    const dir = path.join(toolsDir(), sub);
    const found = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => /^temporal(-[\w.-]+)?$/.test(f)) : undefined;
    if (found && isExecutable(path.join(dir, found))) return { path: path.join(dir, found), source: 'tools-dir' };
  }
  return undefined;
}

/** Builds the CLI with `go install`, streaming Go's output to `progress`. Resolves to the binary's path. */
async function buildWithGo(go: string, progress: (line: string) => void): Promise<string> {
  const gobin = process.env.RUNBOOK_TOOLS_DIR ? path.join(toolsDir(), 'bin') : goBinDir(go);
  fs.mkdirSync(gobin, { recursive: true });
  progress(
    `building the Temporal CLI from source: go install ${TEMPORAL_CLI_MODULE} into ${gobin} ` +
      '(first time only; a few minutes on 2 cores)',
  );
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(go, ['install', TEMPORAL_CLI_MODULE], {
      env: { ...process.env, CGO_ENABLED: '0', GOBIN: gobin, GOFLAGS: '-mod=mod' },
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    let tail = '';
    child.stderr.on('data', (chunk: Buffer) => {
      tail = (tail + chunk.toString()).slice(-4000);
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve()
        : reject(
            new UserError(
              `Building the Temporal CLI with Go failed (exit ${code}). Go needs the module proxy ` +
                `(GOPROXY=${process.env.GOPROXY ?? 'default'}) to be reachable. Last output:\n${tail.trim()}\n` +
                'Alternatively install the Temporal CLI yourself and set TEMPORAL_CLI to its path.',
            ),
          ),
    );
  });
  progress(`built the Temporal CLI in ${Math.round((Date.now() - started) / 1000)} s`);
  return path.join(gobin, 'temporal');
}

/** Lets the Temporal SDK download its CLI build into the tools dir (needs internet; not this project's CI). */
async function downloadWithSdk(progress: (line: string) => void): Promise<string> {
  const downloadDir = path.join(toolsDir(), 'download');
  fs.mkdirSync(downloadDir, { recursive: true });
  progress(`Go is not installed; asking the Temporal SDK to download the CLI into ${downloadDir}`);
  let testing: typeof TemporalTesting;
  try {
    testing = await import('@temporalio/testing');
  } catch {
    throw noWayToGetCli('the @temporalio/testing package (which can download it) is not installed');
  }
  try {
    const env = await testing.TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'cached-download', downloadDir } },
    });
    await env.teardown();
  } catch {
    // A slow first start may time out; the download itself is what we came for.
  }
  const found = findTemporalCli();
  if (!found || found.source !== 'tools-dir') throw noWayToGetCli('the SDK could not download it (no internet?)');
  return found.path;
}

function noWayToGetCli(why: string): UserError {
  return new UserError(
    `Cannot find or build the Temporal CLI: it is not on PATH, in ~/go/bin or in ${toolsDir()}, ` +
      `Go is not installed, and ${why}. Install Go (https://go.dev/dl) and run \`runbook setup\` to build it ` +
      `(go install ${TEMPORAL_CLI_MODULE}), or install the Temporal CLI and set TEMPORAL_CLI to its path, or ` +
      'set TEMPORAL_ADDRESS to use an existing Temporal server instead of the embedded one.',
  );
}

/** Finds the CLI or obtains it (Go build, else SDK download). `progress` receives human-readable lines. */
export async function ensureTemporalCli(progress: (line: string) => void): Promise<TemporalCli> {
  const found = findTemporalCli();
  if (found) return found;
  const go = which('go');
  if (go) return { path: await buildWithGo(go, progress), source: 'built' };
  return { path: await downloadWithSdk(progress), source: 'downloaded' };
}

/** `temporal --version`'s first line, e.g. "temporal version 1.5.1 (Server 1.29.1, UI 2.42.1)". */
export function temporalCliVersion(cliPath: string): string {
  return execFileSync(cliPath, ['--version'], { encoding: 'utf8' }).split('\n')[0]?.trim() ?? 'unknown';
}
