// Integration (real HTTP and HTTPS servers on loopback): the HTTP step. Auth from secrets, JSON bodies,
// expected statuses, typed failures, TLS verification on by default, the size cap, timeouts.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { runHttpStep, type HttpAction } from '../../activities/http/request';
import { Secrets } from '../../activities/secrets/providers';
import { secretToken } from '../../dsl/expr';
import { testRoot } from '../harness/env';

const token = 'tok-0123456789abcdef';
const quoted = 'q"uote\\secret-value';
const secrets = new Secrets({ env: { API_TOKEN: token, API_PW: 'pw-secret-value', API_Q: quoted } });
const decls = {
  api: { provider: 'env' as const, key: 'API_TOKEN' },
  pw: { provider: 'env' as const, key: 'API_PW' },
  q: { provider: 'env' as const, key: 'API_Q' },
};
const seen: { method?: string; url?: string; headers: http.IncomingHttpHeaders; body: string }[] = [];

const handler: http.RequestListener = (req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => {
    body += c.toString();
  });
  req.on('end', () => {
    seen.push({ method: req.method, url: req.url, headers: req.headers, body });
    if (req.url === '/ok') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ replication: { lag: 42 }, echo: body }));
    } else if (req.url === '/secret-echo') res.end(`your token is ${req.headers.authorization}`);
    else if (req.url === '/big') res.end('x'.repeat(5000));
    else if (req.url === '/slow') setTimeout(() => res.end('late'), 3000);
    else if (req.url === '/boom') {
      res.statusCode = 503;
      res.end('overloaded');
    } else if (req.url === '/echo-403') {
      res.statusCode = 403;
      res.end(`denied: ${body} ${req.headers['x-token']}`);
    } else {
      res.statusCode = 404;
      res.end('nope');
    }
  });
};
let server: http.Server;
let tlsServer: https.Server;
let base = '';
let tlsBase = '';
let certFile = '';

beforeAll(async () => {
  const dir = path.join(testRoot(), 'tls');
  fs.mkdirSync(dir, { recursive: true });
  certFile = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  server = http.createServer(handler);
  tlsServer = https.createServer(
    { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(certFile) },
    handler,
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  tlsBase = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  tlsServer.closeAllConnections();
  await new Promise((r) => server.close(r));
  await new Promise((r) => tlsServer.close(r));
});

const action = (url: string, extra: Partial<HttpAction> = {}): HttpAction => ({
  kind: 'http',
  method: 'GET',
  url,
  headers: {},
  expectStatus: [200],
  tlsVerify: true,
  ...extra,
});

test('POST JSON with bearer auth from a secret; JSON response parsed', async () => {
  const r = await runHttpStep(secrets, {
    action: action(`${base}/ok`, {
      method: 'POST',
      json: { host: 'db-2', port: 5432 },
      auth: { bearer: secretToken('api') },
      headers: { 'X-Run': 'r1' },
    }),
    secrets: decls,
  });
  expect(r.status).toBe(200);
  expect(r.json).toEqual({ replication: { lag: 42 }, echo: '{"host":"db-2","port":5432}' });
  const req = seen.at(-1)!;
  expect([req.method, req.headers.authorization, req.headers['x-run'], req.headers['content-type']]).toEqual([
    'POST',
    `Bearer ${token}`,
    'r1',
    'application/json',
  ]);
});

test('basic auth; a response echoing the secret comes back redacted', async () => {
  const r = await runHttpStep(secrets, {
    action: action(`${base}/secret-echo`, { auth: { basic: { user: 'ops', password: secretToken('pw') } } }),
    secrets: decls,
  });
  expect(seen.at(-1)!.headers.authorization).toBe(`Basic ${Buffer.from('ops:pw-secret-value').toString('base64')}`);
  expect(r.body).toBe('your token is Basic ***');
  const echoed = await runHttpStep(secrets, {
    action: action(`${base}/secret-echo`, { auth: { bearer: secretToken('api') } }),
    secrets: decls,
  });
  expect(echoed.body).toBe('your token is Bearer ***');
});

test.each([
  [
    'an unexpected 404 is not retryable',
    '/missing',
    {},
    'HttpUnexpectedStatus',
    'GET http://HOST/missing answered 404 (expected 200): nope',
  ],
  [
    'a 503 is retryable',
    '/boom',
    {},
    'HttpServerError',
    'GET http://HOST/boom answered 503 (expected 200): overloaded',
  ],
  [
    'the size cap',
    '/big',
    { maxBodyBytes: 1000 },
    'HttpBodyTooLarge',
    'GET http://HOST/big: the response is larger than 1000 bytes; refusing to read more',
  ],
  ['a timeout', '/slow', { timeoutMs: 300 }, 'HttpConnectError', 'GET http://HOST/slow: no answer within 300 ms'],
])('%s', async (_l, p, opts, name, message) => {
  await expect(runHttpStep(secrets, { action: action(`${base}${p}`), ...opts })).rejects.toMatchObject({
    name,
    message: message.replace('HOST', base.slice(7)),
  });
});

test('connection refused is retryable HttpConnectError', async () => {
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  await expect(runHttpStep(secrets, { action: action(`http://127.0.0.1:${port}/`) })).rejects.toMatchObject({
    name: 'HttpConnectError',
    message: `GET http://127.0.0.1:${port}/: ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:${port}`,
  });
});

test('TLS is verified by default; a trusted CA or an explicit opt-out makes it pass', async () => {
  await expect(runHttpStep(secrets, { action: action(`${tlsBase}/ok`) })).rejects.toMatchObject({
    name: 'HttpTlsError',
  });
  expect((await runHttpStep(secrets, { action: action(`${tlsBase}/ok`), caFile: certFile })).status).toBe(200);
  expect((await runHttpStep(secrets, { action: action(`${tlsBase}/ok`, { tlsVerify: false }) })).status).toBe(200);
});

/** Neither a secret's value nor its token may appear in what the step returns or throws. */
function expectNoSecrets(value: unknown) {
  const text = JSON.stringify(value, (_k, v: unknown) =>
    v instanceof Error ? { ...v, name: v.name, message: v.message } : v,
  );
  for (const secret of [token, 'pw-secret-value', quoted, JSON.stringify(quoted).slice(1, -1)])
    expect(text).not.toContain(secret);
  expect(text).not.toContain('secret:');
}

test('secrets inside a JSON body are sent as their values (nested, whole or inside a string) and never come back', async () => {
  const json = {
    token: secretToken('api'),
    nested: { list: [`Bearer ${secretToken('api')}`, { pw: secretToken('pw'), n: 1 }] },
    q: secretToken('q'),
    plain: 'x',
  };
  const r = await runHttpStep(secrets, { action: action(`${base}/ok`, { method: 'POST', json }), secrets: decls });
  expect(JSON.parse(seen.at(-1)!.body)).toEqual({
    token,
    nested: { list: [`Bearer ${token}`, { pw: 'pw-secret-value', n: 1 }] },
    q: quoted,
    plain: 'x',
  });
  expect(seen.at(-1)!.headers['content-type']).toBe('application/json');
  // The server echoed the body back (as a JSON string, so the quoted secret arrives escaped twice).
  expect(r.json).toEqual({
    replication: { lag: 42 },
    echo: '{"token":"***","nested":{"list":["Bearer ***",{"pw":"***","n":1}]},"q":"***","plain":"x"}',
  });
  expect(r.body).toBe(JSON.stringify(r.json));
  expectNoSecrets(r);
});

test('secrets in a raw body and in headers are sent as their values; an error echoing them is redacted', async () => {
  const body = `user=ops&token=${secretToken('api')}`;
  const r = await runHttpStep(secrets, {
    action: action(`${base}/ok`, { method: 'POST', body, headers: { 'X-Token': secretToken('pw') } }),
    secrets: decls,
  });
  expect([seen.at(-1)!.body, seen.at(-1)!.headers['x-token']]).toEqual([`user=ops&token=${token}`, 'pw-secret-value']);
  expectNoSecrets(r);
  const failed = await runHttpStep(secrets, {
    action: action(`${base}/echo-403`, {
      method: 'POST',
      json: { token: secretToken('api'), q: secretToken('q') },
      headers: { 'X-Token': secretToken('pw') },
    }),
    secrets: decls,
  }).catch((err: unknown) => err);
  expect(failed).toMatchObject({
    name: 'HttpUnexpectedStatus',
    message: `POST ${base}/echo-403 answered 403 (expected 200): denied: {"token":"***","q":"***"} ***`,
  });
  expectNoSecrets(failed);
});
