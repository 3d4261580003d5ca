// Test harness (Node side). A throwaway home whose PATH holds only the tools the remote wrapper and shell agent
// use, for running their scripts with the real /bin/sh on this machine (no ssh in between).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TOOLS = ['sh', 'mkdir', 'rm', 'tail', 'sleep', 'base64', 'cat', 'setsid', 'echo', 'sha256sum'];

/** Sets up the home before the file's tests and removes it after; `home` and `bin` are read once set. */
export function useShellHome(prefix: string): { readonly home: string; readonly bin: string } {
  const dirs = { home: '', bin: '' };
  beforeAll(() => {
    dirs.home = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    dirs.bin = path.join(dirs.home, 'bin');
    fs.mkdirSync(dirs.bin);
    for (const tool of TOOLS) {
      const found = execFileSync('/bin/sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
      fs.symlinkSync(found, path.join(dirs.bin, tool));
    }
  });
  afterAll(() => fs.rmSync(dirs.home, { recursive: true, force: true }));
  return dirs;
}
