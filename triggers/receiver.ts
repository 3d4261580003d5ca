// Node side. The alert receiver: an HTTP server taking Alertmanager (webhook v4), Grafana and generic JSON webhooks
// (a declared field mapping, triggers/mappings.ts), matching each alert against the runbooks' `on.alert` rules and
// handing every match to that runbook's alert guard (Update-with-Start, workflows/alert-guard.ts).
//
//   POST /alerts/alertmanager | /alerts/grafana | /alerts/generic/MAPPING    GET /healthz
//   401 without a valid bearer token or HMAC signature; 413 over the body limit; 400 for malformed JSON or a payload
//   that does not fit its schema (the reason and the field); 422 when an alert's labels fail a param (the alert,
//   the runbook, the param): it is recorded and escalated, never started. 200 only once every guard has the alert
//   in its history (started, deduplicated or suppressed); 503 when Temporal cannot be reached, so the sender
//   retries, and a retry is harmless (duplicates are recognised).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Fastify from 'fastify';
import { WithStartWorkflowOperation, type Client } from '@temporalio/client';
import type { Logger } from '../common/logger';
import { messageOf } from '../common/errors';
import { bearerOk, hmacOk } from './auth';
import { parseAlertmanager, parseGeneric, parseGrafana, type NormalizedAlert, type ParsedDelivery } from './payloads';
import type { Mapping } from './mappings';
import { matchingRules, runForAlert, type AlertRule, type RuleSet } from './rules';
import type { alertGuard } from '../workflows/alert-guard';
import { AlertDeliverySchema, guardId, type AlertDelivery, type GuardAnswer } from '../workflows/guard-state';
import { inputProblems } from '../dsl/run-input';
import { deliverAlertUpdate } from '../workflows/messages';

export interface ReceiverConfig {
  /** @default 127.0.0.1 */
  host: string;
  /** @default 9280 (0: any free port) */
  port: number;
  /** Accepted bearer tokens (RUNBOOK_RECEIVER_TOKEN, RUNBOOK_RECEIVER_TOKEN_FILE). */
  tokens: string[];
  /** HMAC-SHA256 secret for signed webhooks (RUNBOOK_RECEIVER_HMAC_SECRET). */
  hmacSecret?: string;
  /** Header carrying the signature. @default X-Grafana-Alerting-Signature */
  hmacHeader: string;
  /** Header carrying the signed timestamp, when the sender adds one (then `TIMESTAMP:BODY` is signed). */
  hmacTimestampHeader?: string;
  /** Largest body accepted. @default 1 MiB */
  maxBodyBytes: number;
  /** Generic mappings by name: the shipped ones and RUNBOOK_RECEIVER_MAPPINGS. */
  mappings: Record<string, Mapping>;
  /** Where alert guards (and so remediations) run. */
  taskQueue: string;
  /** How long a guard may take to decide before the answer is 503. @default 15000 */
  decisionTimeoutMs?: number;
}

export interface Receiver {
  url: string;
  close(): Promise<void>;
}

/** How long a guard may take to decide before the receiver answers 503 (Alertmanager's own timeout is longer). */
const DECISION_TIMEOUT_MS = 15_000;

/** At most this many updates in flight per guard from this process (Temporal's limit per workflow is 10). */
const GUARD_IN_FLIGHT = 8;

/** An update carries at most this many alerts and about this many bytes of them. */
const CHUNK_ALERTS = 100;
const CHUNK_BYTES = 512 * 1024;

/** One alert's outcome for one runbook, as the response lists it. */
interface Result {
  alert: number;
  fingerprint: string;
  runbook: string;
  outcome: GuardAnswer['outcome'];
  workflowId?: string;
  runId?: string;
  reason?: string;
}

class Unavailable extends Error {}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Alert fields the guard and the run see (bounded by the payload parsers). */
function alertView(a: NormalizedAlert) {
  return {
    fingerprint: a.fingerprint,
    status: a.status,
    startsAt: a.startsAt,
    labels: a.labels,
    annotations: a.annotations,
    source: a.source,
    ...(a.generatorURL ? { generatorURL: a.generatorURL } : {}),
  };
}

/** Starts the receiver; resolves once it listens. */
export async function startReceiver(
  cfg: ReceiverConfig,
  deps: { client: Client; rules: RuleSet; logger: Logger },
): Promise<Receiver> {
  const { client, rules, logger } = deps;
  if (cfg.tokens.length === 0 && !cfg.hmacSecret)
    throw new Error('the alert receiver needs a bearer token or an HMAC secret');
  const app: FastifyInstance = Fastify({ bodyLimit: cfg.maxBodyBytes, logger: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, _req, reply) => {
    if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return reply.code(413).send({ error: `the body is larger than the limit of ${cfg.maxBodyBytes} bytes` });
    if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send({ error: err.message });
    logger.error({ error: err.message }, 'alert receiver error');
    return reply.code(500).send({ error: 'internal error' });
  });

  const authorised = (req: FastifyRequest, raw?: Buffer): boolean => {
    if (cfg.tokens.length && bearerOk(header(req, 'authorization'), cfg.tokens)) return true;
    if (cfg.hmacSecret && raw)
      return hmacOk(raw, header(req, cfg.hmacHeader), cfg.hmacSecret, {
        timestamp: cfg.hmacTimestampHeader ? (header(req, cfg.hmacTimestampHeader) ?? '') : undefined,
      });
    return false;
  };
  const unauthorised = (reply: FastifyReply) =>
    reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="runbook alerts"')
      .send({ error: 'unauthenticated: send a bearer token or a valid HMAC signature' });

  // Without an HMAC secret the token decides before the body is read.
  app.addHook('onRequest', async (req, reply) => {
    if (req.method !== 'POST' || cfg.hmacSecret) return;
    if (!authorised(req)) await unauthorised(reply);
  });

  app.get('/healthz', async () => {
    const { rules: r, broken } = rules.current();
    return { status: 'ok', rules: r.length, brokenRunbooks: broken.length };
  });

  // Temporal admits at most 10 updates in flight per workflow; past that it answers RESOURCE_EXHAUSTED and the
  // client backs off for seconds. So a request sends one update per runbook (all its alerts), and this process
  // keeps at most GUARD_IN_FLIGHT updates in flight per guard.
  const slots = new Map<string, { busy: number; waiting: (() => void)[] }>();
  const acquire = async (id: string, deadline: AbortSignal) => {
    const s = slots.get(id) ?? { busy: 0, waiting: [] };
    slots.set(id, s);
    while (s.busy >= GUARD_IN_FLIGHT) {
      if (deadline.aborted) throw new Unavailable('no free update slot for the guard before the deadline');
      await new Promise<void>((resolve) => {
        s.waiting.push(resolve);
        deadline.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    s.busy += 1;
    return () => {
      s.busy -= 1;
      // Every waiter looks again (one may have given up at its deadline and would swallow a lone wake-up).
      const waiting = s.waiting.splice(0);
      for (const wake of waiting) wake();
      if (waiting.length === 0 && s.busy === 0) slots.delete(id);
    };
  };

  // A start operation is used once; a retry needs a new one.
  const guardStart = (rule: AlertRule) =>
    new WithStartWorkflowOperation<typeof alertGuard>('alertGuard', {
      workflowId: guardId(rule.name),
      taskQueue: cfg.taskQueue,
      args: [{ runbook: rule.name }],
      workflowIdConflictPolicy: 'USE_EXISTING',
    });

  const deliver = async (rule: AlertRule, deliveries: AlertDelivery[]): Promise<GuardAnswer[]> => {
    // No worker (or a stuck one) would keep the update waiting forever: give up, answer 503, let the sender retry.
    // The deadline covers the wait for a free update slot too.
    const deadline = AbortSignal.timeout(cfg.decisionTimeoutMs ?? DECISION_TIMEOUT_MS);
    const release = await acquire(guardId(rule.name), deadline);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          return await client.withAbortSignal(deadline, () =>
            client.workflow.executeUpdateWithStart(deliverAlertUpdate, {
              args: [deliveries],
              startWorkflowOperation: guardStart(rule),
            }),
          );
        } catch (err) {
          // A guard continuing as new answers "workflow is closing" for a moment: try again (a repeat is harmless).
          if (deadline.aborted || attempt >= 3) throw new Unavailable(messageOf(err));
          await new Promise((r) => setTimeout(r, 200 * attempt));
        }
      }
    } finally {
      release();
    }
  };

  const handle = async (reply: FastifyReply, req: FastifyRequest, parse: (body: unknown) => ParsedDelivery) => {
    const raw = req.body as Buffer | undefined;
    if (cfg.hmacSecret && !authorised(req, raw ?? Buffer.alloc(0))) return unauthorised(reply);
    if (!raw || raw.length === 0) return reply.code(400).send({ error: 'empty body: expected a JSON alert payload' });
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      return reply.code(400).send({ error: `malformed JSON: ${messageOf(err).slice(0, 200)}` });
    }
    const parsed = parse(body);
    if (!parsed.ok)
      return reply.code(400).send({ error: 'the payload does not fit its schema', problems: parsed.problems });
    if (parsed.truncatedAlerts)
      logger.warn({ truncatedAlerts: parsed.truncatedAlerts }, 'the sender left alerts out of this delivery');

    const { rules: current } = rules.current();
    const inventory = rules.defaultInventory();
    const work: { rule: AlertRule; index: number; delivery: AlertDelivery }[] = [];
    let unmatched = 0;
    const local: Result[] = [];
    parsed.alerts.forEach((a, index) => {
      const matched = matchingRules(current, a.labels);
      if (matched.length === 0) unmatched += 1;
      for (const rule of matched) {
        const alert = alertView(a);
        const base = { alert, contentHash: rule.contentHash, limits: rule.limits };
        if (a.status === 'resolved') {
          work.push({ rule, index, delivery: base });
          continue;
        }
        const run = runForAlert(rule, alert, inventory);
        const delivery: AlertDelivery = run.ok
          ? { ...base, params: run.params, targets: run.targets }
          : { ...base, refused: run.problems };
        // What the guard would refuse must not fail the whole update (and so every retry): refuse it here.
        const problems = inputProblems(AlertDeliverySchema, delivery);
        if (problems.length) {
          logger.error({ runbook: rule.name, problems }, 'an alert does not fit the guard: refused');
          local.push({
            alert: index,
            fingerprint: a.fingerprint,
            runbook: rule.name,
            outcome: 'refused',
            reason: `cannot be handed to the guard: ${problems.join('; ')}`,
          });
          continue;
        }
        work.push({ rule, index, delivery });
      }
    });

    // One update per runbook, cut so no update's payload nears Temporal's 2 MB limit.
    const byRunbook = new Map<string, { ws: typeof work; bytes: number }[]>();
    for (const w of work) {
      const chunks = byRunbook.get(w.rule.name) ?? [];
      byRunbook.set(w.rule.name, chunks);
      const size = JSON.stringify(w.delivery).length;
      let last = chunks.at(-1);
      if (!last || last.ws.length >= CHUNK_ALERTS || last.bytes + size > CHUNK_BYTES)
        chunks.push((last = { ws: [], bytes: 0 }));
      last.ws.push(w);
      last.bytes += size;
    }
    let results: Result[];
    try {
      const chunks = [...byRunbook.values()].flat().map((c) => c.ws);
      // All at once: each waits for a free update slot of its guard (GUARD_IN_FLIGHT).
      const answered = await Promise.all(
        chunks.map(async (ws) => {
          const answers = await deliver(
            ws[0]!.rule,
            ws.map((w) => w.delivery),
          );
          return ws.map((w, i) => ({
            alert: w.index,
            fingerprint: w.delivery.alert.fingerprint,
            runbook: w.rule.name,
            ...answers[i]!,
          }));
        }),
      );
      results = [...answered.flat(), ...local].sort((a, b) => a.alert - b.alert);
    } catch (err) {
      logger.error({ error: messageOf(err) }, 'alert not handed to its guard; the sender should retry');
      return reply
        .code(503)
        .header('retry-after', '5')
        .send({ error: 'the alert could not be decided (Temporal unreachable, or no worker answered in time); retry' });
    }
    for (const r of results)
      logger.info(
        {
          runbook: r.runbook,
          fingerprint: r.fingerprint,
          outcome: r.outcome,
          workflowId: r.workflowId,
          reason: r.reason,
        },
        'alert handled',
      );
    const refused = results.filter((r) => r.outcome === 'refused');
    const response = { alerts: parsed.alerts.length, unmatched, results };
    if (refused.length)
      return reply.code(422).send({
        error: refused.map((r) => `alerts[${r.alert}] for ${r.runbook}: ${r.reason}`).join('\n'),
        ...response,
      });
    return reply.code(200).send(response);
  };

  app.post('/alerts/alertmanager', (req, reply) => handle(reply, req, parseAlertmanager));
  app.post('/alerts/grafana', (req, reply) => handle(reply, req, parseGrafana));
  app.post<{ Params: { mapping: string } }>('/alerts/generic/:mapping', (req, reply) => {
    const name = req.params.mapping;
    const mapping = Object.prototype.hasOwnProperty.call(cfg.mappings, name) ? cfg.mappings[name] : undefined;
    if (!mapping)
      return reply.code(404).send({ error: `unknown mapping; known: ${Object.keys(cfg.mappings).sort().join(', ')}` });
    return handle(reply, req, (body) => parseGeneric(body, mapping));
  });

  const address = await app.listen({ host: cfg.host, port: cfg.port });
  logger.info({ url: address }, 'alert receiver listening');
  return { url: address, close: () => app.close() };
}
