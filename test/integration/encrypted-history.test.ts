// Integration (real Temporal, real sshd): with codec keys set, the worker, the client and the CLI encrypt every
// payload, so history fetched raw from the server holds no cleartext param; the codec server decodes only for a
// caller with the token (401 otherwise) and admits the UI origin by CORS; `runbook dev` wires it into the UI.
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { EncryptionCodec, codecKeysFromEnv, dataConverterFromEnv, newKeyEntry } from '../../common/codec';
import { freePort } from '../../common/ports';
import { startCodecServer, type CodecServer } from '../../common/codec-server';
import type { runbook, RunbookResult } from '../../workflows/runbook';
import { connectTestEnv, fleetDir, testRoot, uniqueTaskQueue, withEngineWorker } from '../harness/env';

process.env.RUNBOOK_DIR = path.join(__dirname, '..', 'fixtures', 'runbooks');
process.env.RUNBOOK_CODEC_KEYS = newKeyEntry('test-1');
const TOKEN = 'codec-test-token-0123456789';
const runbookBin = path.join(__dirname, '..', '..', 'bin', 'runbook.js');
let env: TestWorkflowEnvironment;
let codecServer: CodecServer;
const UI_ORIGIN = 'http://127.0.0.1:65001';

beforeAll(async () => {
  env = await connectTestEnv();
  codecServer = await startCodecServer({
    codec: new EncryptionCodec(codecKeysFromEnv(process.env)),
    token: TOKEN,
    host: '127.0.0.1',
    port: 0,
    corsOrigins: [UI_ORIGIN],
  });
});
afterAll(async () => {
  await codecServer?.close();
  await env?.teardown();
});

/**
 * History as the server stores it, fetched with no codec: its JSON, every string in it base64-decoded as well
 * (bytes fields come back as base64), and the payloads of inputs, results and markers.
 */
async function rawHistory(
  connection: Connection,
  workflowId: string,
): Promise<{ text: string; payloads: { metadata?: Record<string, string>; data?: string }[] }> {
  const res = await connection.workflowService.getWorkflowExecutionHistory({
    namespace: 'default',
    execution: { workflowId },
  });
  const json = JSON.stringify(res.history);
  const payloads: { metadata?: Record<string, string>; data?: string }[] = [];
  const decoded: string[] = [];
  JSON.parse(json, (k, v: unknown) => {
    if (k === 'payloads' && Array.isArray(v)) payloads.push(...(v as never[]));
    if (typeof v === 'string') decoded.push(Buffer.from(v, 'base64').toString('latin1'));
    return v;
  });
  return { text: `${json}\n${decoded.join('\n')}`, payloads };
}

const encodingOf = (p: { metadata?: Record<string, string> }) =>
  Buffer.from(p.metadata?.encoding ?? '', 'base64').toString();

/** The SDK core's own marker bookkeeping: patch ids; a local activity's id, type and times. */
const BOOKKEEPING = new Set([
  'id',
  'deprecated',
  'seq',
  'attempt',
  'activity_id',
  'activity_type',
  'complete_time',
  'backoff',
  'original_schedule_time',
]);

/** The fields of unencrypted payloads that are not that bookkeeping (none, when history is encrypted). */
function plainFieldsBeyondBookkeeping(payloads: { metadata?: Record<string, string>; data?: string }[]): string[] {
  return payloads
    .filter((p) => encodingOf(p) !== 'binary/encrypted')
    .flatMap((p) => Object.keys(JSON.parse(Buffer.from(p.data ?? '', 'base64').toString()) as object))
    .filter((k) => !BOOKKEEPING.has(k));
}

const decodeCall = (body: unknown, headers: Record<string, string> = {}, url = `${codecServer.url}/decode`) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

/** Runs a fixture runbook with the keys-aware client; resolves to its result or the error it failed with. */
function runWithKeys(tq: string, workflowId: string, name: string, params: Record<string, unknown>): Promise<unknown> {
  const client = new Client({ connection: env.connection, dataConverter: dataConverterFromEnv(process.env) });
  return withEngineWorker(env, tq, async () =>
    client.workflow
      .execute<typeof runbook>('runbook', {
        taskQueue: tq,
        workflowId,
        args: [{ runbook: name, params, inventory: path.join(fleetDir(), 'inventory.yaml'), initiator: 'test' }],
      })
      .then(
        (r) => r,
        (e: unknown) => e,
      ),
  );
}

test('history holds ciphertext only; the codec server decodes it for a caller with the token, 401 otherwise', async () => {
  const tq = uniqueTaskQueue('crypt');
  const note = 'cleartext-param-value-5150';
  const workflowId = `${tq}-touch`;
  const result = (await runWithKeys(tq, workflowId, 'fleet-touch', { note, marker: `${tq}.txt` })) as RunbookResult;
  expect(result.status).toBe('succeeded');
  expect(result.hosts['host-1']!.steps.read).toBe('succeeded');

  const raw = await rawHistory(env.connection, workflowId);
  expect(raw.payloads.length).toBeGreaterThan(5);
  expect(raw.text).toContain('host-1'); // the decoding above works: search attributes are plain by design
  expect(raw.text).not.toContain(note);
  // Only the SDK core's own marker bookkeeping (patch ids; a local activity's id, type and times) is plain.
  expect(plainFieldsBeyondBookkeeping(raw.payloads)).toEqual([]);
  expect(raw.payloads.filter((p) => encodingOf(p) === 'binary/encrypted').length).toBeGreaterThan(5);

  const input = raw.payloads[0]!;
  const unauthorised = await decodeCall({ payloads: [input] });
  expect(unauthorised.status).toBe(401);
  expect(await unauthorised.json()).toEqual({ error: 'missing or wrong bearer token' });
  expect((await decodeCall({ payloads: [input] }, { authorization: 'Bearer wrong-token-wrong-token' })).status).toBe(
    401,
  );
  expect((await decodeCall({ payloads: [input] }, {}, `${codecServer.url}/ui/not-the-token/decode`)).status).toBe(401);

  for (const call of [
    () => decodeCall({ payloads: [input] }, { authorization: `Bearer ${TOKEN}` }),
    () => decodeCall({ payloads: [input] }, {}, `${codecServer.uiEndpoint}/decode`),
  ]) {
    const res = await call();
    expect(res.status).toBe(200);
    const { payloads } = (await res.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
    expect(Buffer.from(payloads[0]!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
    expect(JSON.parse(Buffer.from(payloads[0]!.data, 'base64').toString())).toMatchObject({
      runbook: 'fleet-touch',
      params: { note },
    });
  }
  // Encode, for the UI's signal and start forms, and the round trip back.
  const hello = {
    metadata: { encoding: Buffer.from('json/plain').toString('base64') },
    data: Buffer.from('"hello"').toString('base64'),
  };
  const enc = (await (
    await fetch(`${codecServer.url}/encode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ payloads: [hello] }),
    })
  ).json()) as { payloads: unknown[] };
  const dec = (await (await decodeCall(enc, { authorization: `Bearer ${TOKEN}` })).json()) as { payloads: unknown[] };
  expect(dec.payloads).toEqual([hello]);
  expect((await decodeCall({ nope: 1 }, { authorization: `Bearer ${TOKEN}` })).status).toBe(400);
});

test("failures are ciphertext too: a failed command's stderr never appears in history in the clear", async () => {
  const tq = uniqueTaskQueue('crypt');
  const note = 'stderr-cleartext-marker-6502';
  const workflowId = `${tq}-fail`;
  const err = await runWithKeys(tq, workflowId, 'fail-stderr', { note });
  // The client with the keys reads the message back.
  expect((err as { cause?: { message?: string } }).cause?.message).toContain(note);
  const raw = await rawHistory(env.connection, workflowId);
  expect(raw.text).toContain('Encoded failure');
  expect(raw.text).not.toContain(note);
});

test('CORS admits the UI origin only', async () => {
  const preflight = (origin: string) =>
    fetch(`${codecServer.url}/decode`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-namespace,authorization',
      },
    });
  const ok = await preflight(UI_ORIGIN);
  expect(ok.status).toBe(204);
  expect(ok.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
  expect(ok.headers.get('access-control-allow-headers')).toContain('x-namespace');
  const evil = await preflight('http://evil.example');
  expect(evil.headers.get('access-control-allow-origin')).toBeNull();
});

test('runbook dev with keys: the UI gets the codec endpoint, the CLI encrypts, history stays ciphertext', async () => {
  const port = await freePort();
  const uiPort = await freePort();
  const codecPort = await freePort();
  const dataDir = path.join(testRoot(), 'dev-crypt');
  const child = spawn(
    'node',
    [
      runbookBin,
      'dev',
      '--data-dir',
      dataDir,
      '--port',
      String(port),
      '--ui-port',
      String(uiPort),
      '--codec-port',
      String(codecPort),
    ],
    { env: { ...process.env, TEMPORAL_ADDRESS: undefined, RUNBOOK_CODEC_TOKEN: TOKEN } },
  );
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  try {
    const deadline = Date.now() + 120_000;
    while (!out.includes('Worker       polling')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`runbook dev did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(out).toContain(
      `History      encrypted (AES-256-GCM, key test-1); codec server http://127.0.0.1:${codecPort} (bearer token in RUNBOOK_CODEC_TOKEN)`,
    );
    const settings = (await (await fetch(`http://127.0.0.1:${uiPort}/api/v1/settings`)).json()) as {
      Codec: { Endpoint: string };
    };
    expect(settings.Codec.Endpoint).toBe(`http://127.0.0.1:${codecPort}/ui/${TOKEN}`);

    const marker = 'cli-cleartext-marker-8086';
    const exec = spawnSync(
      'node',
      [
        runbookBin,
        'exec',
        '--json',
        '-i',
        path.join(fleetDir(), 'inventory.yaml'),
        '-H',
        'host-2',
        '--',
        'echo',
        marker,
      ],
      { encoding: 'utf8', env: { ...process.env, TEMPORAL_ADDRESS: `127.0.0.1:${port}` } },
    );
    expect(exec.stderr).toBe('');
    const result = JSON.parse(exec.stdout) as { workflowId: string; stdout: string };
    expect(result.stdout).toBe(`${marker}\n`);
    const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
    try {
      const raw = await rawHistory(connection, result.workflowId);
      // Plain payloads are only the SDK's local-activity bookkeeping (the host's login is resolved by one).
      expect(plainFieldsBeyondBookkeeping(raw.payloads)).toEqual([]);
      expect(raw.text).toContain('sshStep');
      expect(raw.text).not.toContain(marker);
    } finally {
      await connection.close();
    }
  } finally {
    child.kill('SIGINT');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
  }
}, 240_000);
