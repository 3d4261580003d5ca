// Unit: escalation to humans. Message formats (Slack-compatible webhook, PagerDuty Events v2), escaping and bounds
// of untrusted alert data, and delivery against a local HTTP server: retryable or not, one target down, secrets kept
// out of logs and errors.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import {
  pagerDutyEvent,
  runLink,
  sendEscalation,
  slackMessage,
  type Escalation,
  type EscalationConfig,
} from '../../activities/escalate';
import { createLogger } from '../../common/logger';
import { forgetSecrets, rememberSecret } from '../../common/redact';

const ROUTING_KEY = 'R0UT1NGKEY0123456789abcdefABCDEF';
const SLACK_PATH = '/services/T0001/B0001/sl4ckT0kenInPath';

const escalation: Escalation = {
  kind: 'remediation-failed',
  runbook: 'restart-service',
  reason: 'run failed: SshCommandFailed on web-1',
  fingerprint: 'c0ffee1234',
  alertname: 'ServiceDown',
  labels: { instance: 'web-1:9100', alertname: 'ServiceDown', job: 'node' },
  workflowId: 'alert:restart-service:c0ffee1234',
  runId: '0190b1c2-aaaa-7bbb-8ccc-123456789abc',
  dedupKey: 'runbook:restart-service:c0ffee1234',
};
const ui: EscalationConfig = { uiUrl: 'http://127.0.0.1:8233' };
const LINK =
  'http://127.0.0.1:8233/namespaces/default/workflows/alert%3Arestart-service%3Ac0ffee1234/0190b1c2-aaaa-7bbb-8ccc-123456789abc/history';

/** Every mrkdwn text object of a Slack message (section texts and fields). */
function mrkdwnTexts(msg: object): string[] {
  const blocks = (msg as { blocks: { text?: { text: string }; fields?: { text: string }[] }[] }).blocks;
  return blocks.flatMap((b) => [...(b.text ? [b.text.text] : []), ...(b.fields ?? []).map((f) => f.text)]);
}

describe('runLink', () => {
  test('the Temporal UI 2.x history page of a run; the workflow page (redirects to the latest run) without one', () => {
    expect(runLink(ui, escalation.workflowId, escalation.runId)).toBe(LINK);
    expect(runLink({ uiUrl: 'https://temporal.example.com/ui/', namespace: 'ops prod' }, 'a/b c?#')).toBe(
      'https://temporal.example.com/ui/namespaces/ops%20prod/workflows/a%2Fb%20c%3F%23',
    );
    expect(runLink({}, 'wf', 'run')).toBeUndefined();
    expect(runLink({ uiUrl: 'javascript:alert(1)' }, 'wf')).toBeUndefined();
    expect(runLink({ uiUrl: 'not a url' }, 'wf')).toBeUndefined();
  });
});

describe('slackMessage', () => {
  test('plain text for Slack-compatible servers, Block Kit sections for Slack, a text link to the run', () => {
    expect(slackMessage(escalation, ui)).toEqual({
      text: [
        'Remediation failed: runbook restart-service: run failed: SshCommandFailed on web-1',
        'alert ServiceDown · fingerprint c0ffee1234 · severity error',
        'Labels: alertname=ServiceDown, instance=web-1:9100, job=node',
        `Run: ${LINK}`,
      ].join('\n'),
      blocks: [
        {
          type: 'section',
          text: {
            type: 'mrkdwn',
            text: '*Remediation failed* · runbook *restart-service*\nrun failed: SshCommandFailed on web-1',
            verbatim: true,
          },
        },
        {
          type: 'section',
          fields: [
            { type: 'mrkdwn', text: '*Alert*\nServiceDown', verbatim: true },
            { type: 'mrkdwn', text: '*Severity*\nerror', verbatim: true },
            { type: 'mrkdwn', text: '*Fingerprint*\nc0ffee1234', verbatim: true },
            {
              type: 'mrkdwn',
              text: '*Workflow*\nalert:restart-service:c0ffee1234\nrun 0190b1c2-aaaa-7bbb-8ccc-123456789abc',
              verbatim: true,
            },
          ],
        },
        {
          type: 'section',
          text: {
            type: 'mrkdwn',
            text: '*Labels*\nalertname=ServiceDown\ninstance=web-1:9100\njob=node',
            verbatim: true,
          },
        },
        {
          type: 'section',
          text: { type: 'mrkdwn', text: `<${LINK}|Open the run in the Temporal UI>`, verbatim: true },
        },
      ],
    });
  });

  test('without alert, labels, run id or UI: only what is known', () => {
    const e: Escalation = {
      kind: 'suppressed',
      runbook: 'disk-cleanup',
      reason: 'rate limit: 5 runs in 1h reached',
      fingerprint: 'f1',
      workflowId: 'guard:disk-cleanup',
      dedupKey: 'runbook:disk-cleanup:f1',
      severity: 'warning',
    };
    expect(slackMessage(e, {})).toEqual({
      text: 'Remediation suppressed: runbook disk-cleanup: rate limit: 5 runs in 1h reached\nfingerprint f1 · severity warning',
      blocks: [
        {
          type: 'section',
          text: {
            type: 'mrkdwn',
            text: '*Remediation suppressed* · runbook *disk-cleanup*\nrate limit: 5 runs in 1h reached',
            verbatim: true,
          },
        },
        {
          type: 'section',
          fields: [
            { type: 'mrkdwn', text: '*Severity*\nwarning', verbatim: true },
            { type: 'mrkdwn', text: '*Fingerprint*\nf1', verbatim: true },
            { type: 'mrkdwn', text: '*Workflow*\nguard:disk-cleanup', verbatim: true },
          ],
        },
      ],
    });
  });

  test('hostile label values cannot inject mentions, links or lines', () => {
    const e: Escalation = {
      ...escalation,
      kind: 'refused',
      alertname: '<!channel> down',
      reason: 'param host: "a&b <@U123>" does not match ^[a-z0-9.-]+$',
      labels: {
        mention: '<!here|here> @channel @here',
        link: '<https://evil.example/|click me>',
        md: '[click](https://evil.example/) ![img](https://evil.example/p.png)',
        amp: 'a &amp; b & c',
        forged: 'x\n*Severity*\ncritical\r\u202eevil',
        '<!everyone>': 'key',
      },
    };
    const msg = slackMessage(e, ui);
    const json = JSON.stringify(msg);
    for (const bad of [
      '<!channel>',
      '<!here',
      '<!everyone>',
      '<@U123>',
      '<https://evil',
      '](https',
      '@channel',
      '@here',
    ]) {
      expect(json).not.toContain(bad);
    }
    const texts = [(msg as { text: string }).text, ...mrkdwnTexts(msg)];
    // The only control sequence left is our own link, in the last section.
    expect(texts.filter((t) => t.includes('<'))).toEqual([`<${LINK}|Open the run in the Temporal UI>`]);
    const labels = mrkdwnTexts(msg).find((t) => t.startsWith('*Labels*'))!;
    expect(labels.split('\n')).toEqual([
      '*Labels*',
      '&lt;!everyone&gt;=key',
      'amp=a &amp;amp; b &amp; c',
      'forged=x *Severity* critical  evil',
      'link=&lt;https://evil.example/|click me&gt;',
      'md=[click]\u200b(https://evil.example/) ![img]\u200b(https://evil.example/p.png)',
      'mention=&lt;!here|here&gt; @\u200bchannel @\u200bhere',
    ]);
    expect(mrkdwnTexts(msg)[1]).toBe('*Alert*\n&lt;!channel&gt; down');
    expect(mrkdwnTexts(msg)[0]).toBe(
      '*Alert refused* · runbook *restart-service*\nparam host: "a&amp;b &lt;@\u200bU123&gt;" does not match ^[a-z0-9.-]+$',
    );
  });

  test('long and many values stay within Slack limits (3000 per text, 2000 per field)', () => {
    const labels = Object.fromEntries(
      Array.from({ length: 200 }, (_, i) => [`label${String(i).padStart(3, '0')}`, '<'.repeat(10_000)]),
    );
    const msg = slackMessage(
      { ...escalation, reason: '&'.repeat(100_000), runbook: 'r'.repeat(5000), alertname: '>'.repeat(5000), labels },
      ui,
    );
    const texts = mrkdwnTexts(msg);
    for (const t of texts) expect(t.length).toBeLessThanOrEqual(3000);
    const fields = (msg as { blocks: { fields?: { text: string }[] }[] }).blocks[1]!.fields!;
    for (const f of fields) expect(f.text.length).toBeLessThanOrEqual(2000);
    const labelsText = texts.find((t) => t.startsWith('*Labels*'))!;
    expect(labelsText).toMatch(/\n… and \d+ more$/);
    // Escaping is never cut inside an entity.
    for (const t of texts) expect(t).not.toMatch(/&(?!amp;|lt;|gt;)/);
    expect((msg as { text: string }).text.length).toBeLessThan(4000);
  });
});

describe('pagerDutyEvent', () => {
  test('an Events API v2 trigger with the run linked', () => {
    expect(pagerDutyEvent(escalation, { ...ui, pagerDutyRoutingKey: ROUTING_KEY })).toEqual({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: 'runbook:restart-service:c0ffee1234',
      payload: {
        summary:
          'Remediation failed: runbook restart-service (alert ServiceDown): run failed: SshCommandFailed on web-1',
        source: 'web-1:9100',
        severity: 'error',
        component: 'restart-service',
        group: 'ServiceDown',
        class: 'remediation-failed',
        custom_details: {
          kind: 'remediation-failed',
          runbook: 'restart-service',
          reason: 'run failed: SshCommandFailed on web-1',
          fingerprint: 'c0ffee1234',
          alertname: 'ServiceDown',
          workflow_id: 'alert:restart-service:c0ffee1234',
          run_id: '0190b1c2-aaaa-7bbb-8ccc-123456789abc',
          run_url: LINK,
          labels: { alertname: 'ServiceDown', instance: 'web-1:9100', job: 'node' },
        },
      },
      links: [{ href: LINK, text: 'Run in the Temporal UI' }],
      client: 'runbook-engine',
      client_url: LINK,
    });
  });

  test('without alert, labels or UI: source is the runbook, no links', () => {
    const e: Escalation = {
      kind: 'breaker-open',
      runbook: 'disk-cleanup',
      reason: 'circuit breaker: 3 failures in 1h; escalating only',
      fingerprint: 'f1',
      workflowId: 'guard:disk-cleanup',
      dedupKey: 'runbook:disk-cleanup:f1',
      severity: 'critical',
    };
    expect(pagerDutyEvent(e, { pagerDutyRoutingKey: ROUTING_KEY })).toEqual({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: 'runbook:disk-cleanup:f1',
      payload: {
        summary: 'Circuit breaker open: runbook disk-cleanup: circuit breaker: 3 failures in 1h; escalating only',
        source: 'runbook:disk-cleanup',
        severity: 'critical',
        component: 'disk-cleanup',
        class: 'breaker-open',
        custom_details: {
          kind: 'breaker-open',
          runbook: 'disk-cleanup',
          reason: 'circuit breaker: 3 failures in 1h; escalating only',
          fingerprint: 'f1',
          workflow_id: 'guard:disk-cleanup',
        },
      },
      client: 'runbook-engine',
    });
  });

  test('bounded: summary ≤ 1024, 64 labels × 256 characters, dedup key ≤ 255 and stable', () => {
    const labels = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`l${i}`, 'v'.repeat(10_000)]));
    const long = `runbook:x:${'k'.repeat(1000)}`;
    const ev = pagerDutyEvent(
      { ...escalation, reason: 'x'.repeat(100_000), labels, dedupKey: long },
      { pagerDutyRoutingKey: ROUTING_KEY },
    ) as {
      dedup_key: string;
      payload: { summary: string; custom_details: { labels: Record<string, string>; labels_omitted: number } };
    };
    expect(ev.payload.summary.length).toBeLessThanOrEqual(1024);
    expect(ev.payload.summary.endsWith('…')).toBe(true);
    expect(Object.keys(ev.payload.custom_details.labels)).toHaveLength(64);
    for (const v of Object.values(ev.payload.custom_details.labels)) expect(v.length).toBeLessThanOrEqual(256);
    expect(ev.payload.custom_details.labels_omitted).toBe(36);
    expect(ev.dedup_key.length).toBeLessThanOrEqual(255);
    expect(ev.dedup_key.startsWith('runbook:x:kkk')).toBe(true);
    const again = pagerDutyEvent({ ...escalation, dedupKey: long }, {}) as { dedup_key: string };
    const other = pagerDutyEvent({ ...escalation, dedupKey: `${long}!` }, {}) as { dedup_key: string };
    expect(again.dedup_key).toBe(ev.dedup_key);
    expect(other.dedup_key).not.toBe(ev.dedup_key);
    expect(JSON.stringify(ev).length).toBeLessThan(64 * 1024);
  });
});

describe('sendEscalation', () => {
  interface Request {
    path: string;
    contentType: string | undefined;
    body: unknown;
  }
  interface Answer {
    status: number;
    body?: string;
    headers?: Record<string, string>;
  }
  let server: http.Server;
  let base: string;
  let requests: Request[];
  /** What each target answers, by the first segment of the path. */
  let answers: Record<string, Answer | ((body: string) => Answer)>;
  let lines: string[];
  let logger: ReturnType<typeof createLogger>;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const path = req.url ?? '';
        requests.push({ path, contentType: req.headers['content-type'], body: raw ? JSON.parse(raw) : undefined });
        const spec = answers[path.split('/')[1] ?? ''] ?? { status: 404 };
        const a = typeof spec === 'function' ? spec(raw) : spec;
        res.writeHead(a.status, a.headers).end(a.body ?? '');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    requests = [];
    answers = {
      services: { status: 200, body: 'ok' },
      v2: { status: 202, body: '{"status":"success","message":"Event processed","dedup_key":"x"}' },
    };
    lines = [];
    logger = createLogger('test', 'info', { write: (line: string) => lines.push(line) });
  });
  afterEach(() => forgetSecrets());

  const config = (): EscalationConfig => ({
    ...ui,
    slackUrl: `${base}${SLACK_PATH}`,
    pagerDutyUrl: `${base}/v2/enqueue`,
    pagerDutyRoutingKey: ROUTING_KEY,
  });
  const logs = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    const failure = err as ApplicationFailure;
    // One type per outcome: what a retry may fix, and what it cannot (the retry policy lists NotifyRefused).
    expect(failure.type).toBe(failure.nonRetryable ? 'NotifyRefused' : 'NotifyError');
    return failure;
  }

  test('logs it, then posts the exact JSON to Slack and PagerDuty', async () => {
    const cfg = config();
    expect(await sendEscalation(escalation, logger, cfg)).toEqual({ sent: ['slack', 'pagerduty'] });
    expect(requests).toHaveLength(2);
    const slack = requests.find((r) => r.path === SLACK_PATH)!;
    const pd = requests.find((r) => r.path === '/v2/enqueue')!;
    expect(slack.contentType).toBe('application/json');
    expect(pd.contentType).toBe('application/json');
    expect(slack.body).toEqual(slackMessage(escalation, cfg));
    expect(pd.body).toEqual(pagerDutyEvent(escalation, cfg));
    expect((pd.body as { routing_key: string }).routing_key).toBe(ROUTING_KEY);

    const [first, ...rest] = logs();
    expect(first).toMatchObject({
      level: 40,
      msg: 'escalation',
      kind: 'remediation-failed',
      runbook: 'restart-service',
      reason: 'run failed: SshCommandFailed on web-1',
      fingerprint: 'c0ffee1234',
      alertname: 'ServiceDown',
      labels: { alertname: 'ServiceDown', instance: 'web-1:9100', job: 'node' },
      workflowId: 'alert:restart-service:c0ffee1234',
      runId: '0190b1c2-aaaa-7bbb-8ccc-123456789abc',
      dedupKey: 'runbook:restart-service:c0ffee1234',
      severity: 'error',
      link: LINK,
      targets: ['slack', 'pagerduty'],
    });
    expect(rest.map((l) => [l.msg, l.target]).sort()).toEqual([
      ['escalation delivered', 'pagerduty'],
      ['escalation delivered', 'slack'],
    ]);
    const out = lines.join('');
    expect(out).not.toContain(ROUTING_KEY);
    expect(out).not.toContain('sl4ckT0kenInPath');
  });

  test('nothing configured: logged only', async () => {
    expect(await sendEscalation(escalation, logger, {})).toEqual({ sent: [] });
    expect(requests).toHaveLength(0);
    expect(logs()).toHaveLength(1);
    expect(logs()[0]).toMatchObject({ msg: 'escalation', targets: [], runbook: 'restart-service' });
    expect(logs()[0]).not.toHaveProperty('link');
  });

  test('Slack answers 500: retryable, naming Slack by origin; PagerDuty still gets it', async () => {
    answers.services = { status: 500, body: 'internal_error' };
    const err = await failure(sendEscalation(escalation, logger, config()));
    expect(err.type).toBe('NotifyError');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toBe(
      `escalation not delivered: slack (${base}) answered 500: internal_error (delivered to pagerduty)`,
    );
    expect(err.details).toEqual([{ sent: ['pagerduty'], failed: [{ target: 'slack', status: 500, retryable: true }] }]);
    expect(requests.map((r) => r.path).sort()).toEqual([SLACK_PATH, '/v2/enqueue']);
    expect(logs().find((l) => l.msg === 'escalation delivery failed')).toMatchObject({ target: 'slack', status: 500 });
  });

  test('PagerDuty answers 400 (echoing the event): not retryable, and the routing key is in neither error nor log', async () => {
    answers.v2 = (raw) => ({
      status: 400,
      body: JSON.stringify({ status: 'invalid event', message: 'Event object is invalid', errors: [raw] }),
    });
    const err = await failure(sendEscalation(escalation, logger, config()));
    expect(err.type).toBe('NotifyRefused');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toMatch(
      new RegExp(`^escalation not delivered: pagerduty \\(${base}\\) answered 400: \\{"status":"invalid event"`),
    );
    expect(err.message).toContain('"routing_key\\":\\"***\\"');
    expect(err.message).toMatch(/\(delivered to slack\)$/);
    expect(err.message).not.toContain(ROUTING_KEY);
    expect(JSON.stringify(err.details)).not.toContain(ROUTING_KEY);
    expect(lines.join('')).not.toContain(ROUTING_KEY);
    expect(logs().find((l) => l.msg === 'escalation delivery failed')).toMatchObject({
      target: 'pagerduty',
      status: 400,
    });
  });

  test('a server echoing the Slack URL in its error: the token in the path is hidden', async () => {
    answers.services = (raw) => ({ status: 404, body: `no_service for ${base}${SLACK_PATH} (${raw.length} bytes)` });
    const err = await failure(sendEscalation(escalation, logger, config()));
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toMatch(
      new RegExp(`^escalation not delivered: slack \\(${base}\\) answered 404: no_service for \\*\\*\\* \\(`),
    );
    expect(err.message).not.toContain('sl4ckT0kenInPath');
    expect(lines.join('')).not.toContain('sl4ckT0kenInPath');
  });

  test('429 is retryable', async () => {
    answers.v2 = { status: 429, body: '' };
    const err = await failure(sendEscalation(escalation, logger, config()));
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toBe(`escalation not delivered: pagerduty (${base}) answered 429 (delivered to slack)`);
  });

  test('one target down: the other still gets it; retryable', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const down = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const err = await failure(sendEscalation(escalation, logger, { ...config(), slackUrl: `${down}${SLACK_PATH}` }));
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toMatch(
      new RegExp(
        `^escalation not delivered: slack \\(${down}\\) failed: .*ECONNREFUSED.* \\(delivered to pagerduty\\)$`,
      ),
    );
    expect(err.message).not.toContain('sl4ckT0kenInPath');
    expect(requests.map((r) => r.path)).toEqual(['/v2/enqueue']);
  });

  test('400 on one and 500 on the other: retryable (a retry may get one through)', async () => {
    answers.services = { status: 400, body: 'invalid_blocks' };
    answers.v2 = { status: 503, body: '' };
    const err = await failure(sendEscalation(escalation, logger, config()));
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toBe(
      `escalation not delivered: slack (${base}) answered 400: invalid_blocks; pagerduty (${base}) answered 503`,
    );
    expect(err.details).toEqual([
      {
        sent: [],
        failed: [
          { target: 'slack', status: 400, retryable: false },
          { target: 'pagerduty', status: 503, retryable: true },
        ],
      },
    ]);
  });

  test('a redirect is not followed (the body would go elsewhere): not retryable', async () => {
    answers.v2 = { status: 307, headers: { location: `${base}/elsewhere/enqueue` } };
    const err = await failure(sendEscalation(escalation, logger, config()));
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toBe(
      `escalation not delivered: pagerduty (${base}) answered 307 (redirects are not followed) (delivered to slack)`,
    );
    expect(requests.map((r) => r.path).sort()).toEqual([SLACK_PATH, '/v2/enqueue']);
  });

  test('a URL that is not http(s): not retryable, and not quoted', async () => {
    const err = await failure(
      sendEscalation(escalation, logger, { slackUrl: 'hooks.example.com/services/T/B/sl4ckT0kenInPath' }),
    );
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toBe('escalation not delivered: slack: the URL is not a valid http(s) URL');
  });

  test('known secret values are masked in what is sent and logged', async () => {
    rememberSecret('hunter2-db-password');
    const e = { ...escalation, reason: 'run failed: mysql -phunter2-db-password exited 1' };
    await sendEscalation(e, logger, config());
    for (const r of requests) {
      expect(JSON.stringify(r.body)).not.toContain('hunter2-db-password');
      expect(JSON.stringify(r.body)).toContain('mysql -p***');
    }
    expect((requests.find((r) => r.path === '/v2/enqueue')!.body as { routing_key: string }).routing_key).toBe(
      ROUTING_KEY,
    );
    expect(lines.join('')).not.toContain('hunter2-db-password');
    expect(logs()[0]!.reason).toBe('run failed: mysql -p*** exited 1');
  });
});
