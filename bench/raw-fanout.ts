// The floor of a fan-out (bench/fanout.ts): a fresh Node process that opens one ssh2 connection per host, all at
// once, runs one command on each and exits. No engine, no audit, no exactly-once record, no host key check beyond
// what ssh2 does by default (none): the least any Node tool on ssh2 can do. Usage (from the bench only):
//   node dist/bench/raw-fanout.js TARGETS.json COMMAND
// TARGETS.json: [{ address, port, user, identityFile }]. Exits 1 unless every host ran the command with status 0.
import fs from 'node:fs';
import { Client } from 'ssh2';

interface RawTarget {
  address: string;
  port?: number;
  user: string;
  identityFile: string;
}

function runOn(target: RawTarget, key: Buffer, command: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const conn = new Client();
    conn
      .on('ready', () => {
        conn.exec(command, (err, stream) => {
          if (err) return reject(err);
          stream.on('data', () => undefined);
          stream.stderr.on('data', () => undefined);
          stream.on('close', (code: number | null) => {
            conn.end();
            resolve(code ?? -1);
          });
        });
      })
      .on('error', reject)
      .connect({ host: target.address, port: target.port ?? 22, username: target.user, privateKey: key });
  });
}

async function main(): Promise<void> {
  const [file, command] = process.argv.slice(2);
  if (!file || !command) throw new Error('usage: raw-fanout TARGETS.json COMMAND');
  const targets = JSON.parse(fs.readFileSync(file, 'utf8')) as RawTarget[];
  const keys = new Map<string, Buffer>();
  for (const t of targets) if (!keys.has(t.identityFile)) keys.set(t.identityFile, fs.readFileSync(t.identityFile));
  const codes = await Promise.all(targets.map((t) => runOn(t, keys.get(t.identityFile)!, command)));
  const bad = codes.filter((c) => c !== 0).length;
  if (bad) throw new Error(`${bad} of ${codes.length} hosts failed`);
}

main().catch((err: unknown) => {
  console.error((err as Error).message);
  process.exit(1);
});
