// Node side. Escalation to humans: a remediation that failed or was suppressed by a guardrail, or an alert that was
// refused, is logged and sent to a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat read `text`;
// Slack also renders `blocks`) and/or to the PagerDuty Events API v2, with a link to the run in the Temporal UI.
// Alert data is untrusted: every value is made one line, bounded, and (for chat) escaped so a label cannot inject
// links or mentions. The routing key is a secret: it goes in the PagerDuty body and nowhere else.
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { FAILURES } from '../common/failure-types';
import type { Logger } from '../common/logger';
import { redact } from '../common/redact';

/** What happened that a human must know: a remediation failed or was suppressed by a guardrail, or an alert was refused. */
export interface Escalation {
  kind: 'remediation-failed' | 'suppressed' | 'refused' | 'breaker-open';
  runbook: string;
  /** e.g. 'rate limit: 5 runs in 1h reached' or 'run failed: SshCommandFailed on web-1' */
  reason: string;
  fingerprint: string;
  alertname?: string;
  labels?: Record<string, string>;
  /** Workflow id (and run id) of the run, or of the alert guard workflow when no run started. */
  workflowId: string;
  runId?: string;
  /** PagerDuty dedup key: stable per incident so repeats group (e.g. `runbook:${runbook}:${fingerprint}`). */
  dedupKey: string;
  /** @default 'error' */
  severity?: 'critical' | 'error' | 'warning' | 'info';
}

export interface EscalationConfig {
  /** Slack-compatible incoming webhook URL (RUNBOOK_ESCALATE_SLACK_URL). */
  slackUrl?: string;
  /** PagerDuty Events v2 enqueue URL (RUNBOOK_PAGERDUTY_URL) @default https://events.pagerduty.com/v2/enqueue when a routing key is set */
  pagerDutyUrl?: string;
  /** RUNBOOK_PAGERDUTY_ROUTING_KEY — a secret: never logged, never in error messages. */
  pagerDutyRoutingKey?: string;
  /** Base URL of the Temporal Web UI for links (RUNBOOK_UI_URL), e.g. http://127.0.0.1:8233 ; namespace for the link path. */
  uiUrl?: string;
  /** @default 'default' */
  namespace?: string;
}

export const PAGERDUTY_ENQUEUE_URL = 'https://events.pagerduty.com/v2/enqueue';
/** Each POST (connection, answer and body) must finish within this. */
const TIMEOUT_MS = 10_000;
/** The `client` PagerDuty shows ("View in …"). */
const CLIENT = 'runbook-engine';

// Bounds on untrusted values (characters).
const MAX_VALUE = 256;
const MAX_LABEL_KEY = 128;
const MAX_LABELS = 64;
const MAX_REASON = 1000;
/** PagerDuty: payload.summary at most 1024 characters, dedup_key at most 255. */
const MAX_SUMMARY = 1024;
const MAX_DEDUP_KEY = 255;
/** Slack: a mrkdwn text object holds at most 3000 characters; the labels section stays below this. */
const MAX_SLACK_LABELS_TEXT = 2800;
/** The top-level `text` (the whole message on Mattermost and Rocket.Chat): its labels line stays below this. */
const MAX_TEXT_LABELS = 1000;
/** Chat values once escaped (an entity is up to 5 characters): one value, a reason, a label name. */
const CHAT_VALUE = 300;
const CHAT_REASON = 2000;
const CHAT_LABEL_KEY = 150;
/** What an error message quotes of a failed target's answer. */
const MAX_ANSWER = 200;

const TITLES: Record<Escalation['kind'], string> = {
  'remediation-failed': 'Remediation failed',
  suppressed: 'Remediation suppressed',
  refused: 'Alert refused',
  'breaker-open': 'Circuit breaker open',
};

/** The UI link of a workflow (Temporal UI 2.x routes); undefined without a valid http(s) uiUrl. */
export function runLink(cfg: EscalationConfig, workflowId: string, runId?: string): string | undefined {
  const base = cfg.uiUrl?.trim().replace(/\/+$/, '');
  if (!base || !isHttpUrl(base)) return undefined;
  const workflow = `${base}/namespaces/${encodeURIComponent(cfg.namespace || 'default')}/workflows/${encodeURIComponent(workflowId)}`;
  // Without a run id the UI's /workflows/{id} page redirects to the latest run (`/workflows/{id}/history` would
  // read "history" as the run id).
  return runId ? `${workflow}/${encodeURIComponent(runId)}/history` : workflow;
}

/** A Slack incoming-webhook message: plain `text` (what Slack-compatible servers show) plus Block Kit sections. */
export function slackMessage(e: Escalation, cfg: EscalationConfig): object {
  const v = values(e);
  const link = runLink(cfg, e.workflowId, e.runId);
  const title = TITLES[e.kind];
  // Escaped values, bounded as sent (escaping lengthens them): a section's text fits Slack's 3000 characters.
  const runbook = chat(v.runbook, CHAT_VALUE);
  const reason = chat(v.reason, CHAT_REASON);
  const alertname = v.alertname !== undefined ? chat(v.alertname, CHAT_VALUE) : undefined;
  const fingerprint = chat(v.fingerprint, CHAT_VALUE);
  const workflow = chat(v.workflowId, CHAT_VALUE) + (v.runId !== undefined ? `\nrun ${chat(v.runId, CHAT_VALUE)}` : '');

  const text = [
    `${title}: runbook ${runbook}: ${reason}`,
    [alertname !== undefined ? `alert ${alertname}` : undefined, `fingerprint ${fingerprint}`, `severity ${v.severity}`]
      .filter((s) => s !== undefined)
      .join(' · '),
    v.labels.length > 0 ? `Labels: ${labelList(v, ', ', MAX_TEXT_LABELS)}` : undefined,
    link !== undefined ? `Run: ${escape(link)}` : undefined,
  ]
    .filter((s) => s !== undefined)
    .join('\n');

  const fields = [
    alertname !== undefined ? mrkdwn(`*Alert*\n${alertname}`) : undefined,
    mrkdwn(`*Severity*\n${v.severity}`),
    mrkdwn(`*Fingerprint*\n${fingerprint}`),
    mrkdwn(`*Workflow*\n${workflow}`),
  ].filter((f) => f !== undefined);
  const blocks: object[] = [
    { type: 'section', text: mrkdwn(`*${title}* · runbook *${runbook}*\n${reason}`) },
    { type: 'section', fields },
  ];
  if (v.labels.length > 0) {
    blocks.push({ type: 'section', text: mrkdwn(`*Labels*\n${labelList(v, '\n', MAX_SLACK_LABELS_TEXT)}`) });
  }
  // A text link, not a link button: a button click needs an app that acknowledges interactions, else Slack shows
  // a warning on it.
  if (link !== undefined) {
    blocks.push({ type: 'section', text: mrkdwn(`<${escape(link)}|Open the run in the Temporal UI>`) });
  }
  return { text, blocks };
}

/** A PagerDuty Events API v2 trigger event (deterministic: no timestamp, PagerDuty stamps it on receipt). */
export function pagerDutyEvent(e: Escalation, cfg: EscalationConfig): object {
  const v = values(e);
  const link = runLink(cfg, e.workflowId, e.runId);
  const title = TITLES[e.kind];
  const alert = v.alertname !== undefined ? ` (alert ${v.alertname})` : '';
  const source = v.labelMap.instance ?? v.labelMap.host ?? `runbook:${v.runbook}`;
  const customDetails: Record<string, unknown> = {
    kind: e.kind,
    runbook: v.runbook,
    reason: v.reason,
    fingerprint: v.fingerprint,
    ...(v.alertname !== undefined && { alertname: v.alertname }),
    workflow_id: v.workflowId,
    ...(v.runId !== undefined && { run_id: v.runId }),
    ...(link !== undefined && { run_url: link }),
    ...(v.labels.length > 0 && { labels: Object.fromEntries(v.labels) }),
    ...(v.labelsOmitted > 0 && { labels_omitted: v.labelsOmitted }),
  };
  return {
    routing_key: cfg.pagerDutyRoutingKey ?? '',
    event_action: 'trigger',
    dedup_key: dedupKey(e.dedupKey),
    payload: {
      summary: clip(`${title}: runbook ${v.runbook}${alert}: ${v.reason}`, MAX_SUMMARY),
      source,
      severity: v.severity,
      component: v.runbook,
      ...(v.alertname !== undefined && { group: v.alertname }),
      class: e.kind,
      custom_details: customDetails,
    },
    ...(link !== undefined && { links: [{ href: link, text: 'Run in the Temporal UI' }] }),
    client: CLIENT,
    ...(link !== undefined && { client_url: link }),
  };
}

/** One delivery's outcome; `detail` names the target by origin only. */
interface Delivery {
  target: string;
  ok: boolean;
  retryable: boolean;
  status?: number;
  detail?: string;
}

/**
 * Logs the escalation (constant message, redacted attributes), then POSTs it to every configured target at once
 * (each attempted whatever the other does; 10 s each). Throws an ApplicationFailure naming each failed target by
 * origin: NotifyError, retryable, when any failed with 5xx, 429, a network error or a timeout; NotifyRefused,
 * non-retryable, when every failure is another answer (4xx, a redirect) or a bad URL. Its details are
 * `[{ sent, failed: [{ target, status?, retryable }] }]`: a retry can leave out the targets already served.
 * Throw it as is from the activity (re-wrapping it would lose its type and flag).
 */
export async function sendEscalation(
  e: Escalation,
  logger: Logger,
  cfg: EscalationConfig,
): Promise<{ sent: string[] }> {
  const safe = redacted(e);
  const v = values(safe);
  const targets: { name: string; url: string; body: object }[] = [];
  if (cfg.slackUrl) targets.push({ name: 'slack', url: cfg.slackUrl, body: slackMessage(safe, cfg) });
  if (cfg.pagerDutyRoutingKey) {
    targets.push({
      name: 'pagerduty',
      url: cfg.pagerDutyUrl || PAGERDUTY_ENQUEUE_URL,
      body: pagerDutyEvent(safe, cfg),
    });
  }
  logger.warn(
    {
      kind: safe.kind,
      runbook: v.runbook,
      reason: v.reason,
      fingerprint: v.fingerprint,
      alertname: v.alertname,
      labels: v.labels.length > 0 ? Object.fromEntries(v.labels) : undefined,
      workflowId: v.workflowId,
      runId: v.runId,
      dedupKey: clip(oneLine(redact(e.dedupKey)), MAX_VALUE),
      severity: v.severity,
      link: runLink(cfg, e.workflowId, e.runId),
      targets: targets.map((t) => t.name),
    },
    'escalation',
  );
  if (!cfg.pagerDutyRoutingKey && cfg.pagerDutyUrl) {
    logger.warn({ target: 'pagerduty' }, 'escalation target skipped: a PagerDuty URL is set but no routing key');
  }

  const scrub = scrubber(cfg);
  const results = await Promise.all(targets.map((t) => deliver(t.name, t.url, t.body, scrub)));
  const sent = results.filter((r) => r.ok).map((r) => r.target);
  const failed = results.filter((r) => !r.ok);
  for (const r of results) {
    if (r.ok) logger.info({ target: r.target }, 'escalation delivered');
    else logger.error({ target: r.target, status: r.status, error: r.detail }, 'escalation delivery failed');
  }
  if (failed.length === 0) return { sent };

  const message =
    `escalation not delivered: ${failed.map((f) => f.detail).join('; ')}` +
    (sent.length > 0 ? ` (delivered to ${sent.join(', ')})` : '');
  const retryable = failed.some((f) => f.retryable);
  throw ApplicationFailure.create({
    type: retryable ? FAILURES.notify : FAILURES.notifyRefused,
    message,
    nonRetryable: !retryable,
    details: [{ sent, failed: failed.map((f) => ({ target: f.target, status: f.status, retryable: f.retryable })) }],
  });
}

async function deliver(target: string, url: string, body: object, scrub: (s: string) => string): Promise<Delivery> {
  if (!isHttpUrl(url)) {
    return { target, ok: false, retryable: false, detail: `${target}: the URL is not a valid http(s) URL` };
  }
  const where = `${target} (${new URL(url).origin})`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      // A redirect is a misconfiguration; following it would hand the body (and the routing key) to another host.
      redirect: 'manual',
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    return { target, ok: false, retryable: true, detail: `${where} failed: ${scrub(networkError(err))}` };
  }
  if (res.status >= 200 && res.status < 300) {
    await res.body?.cancel().catch(() => undefined);
    return { target, ok: true, retryable: false, status: res.status };
  }
  // Scrubbed before it is cut, so no part of a secret survives at the cut.
  const answer = clip(scrub(await snippet(res)), MAX_ANSWER);
  const retryable = res.status === 429 || res.status >= 500;
  const redirect = res.status >= 300 && res.status < 400 ? ' (redirects are not followed)' : '';
  return {
    target,
    ok: false,
    retryable,
    status: res.status,
    detail: `${where} answered ${res.status}${redirect}${answer ? `: ${answer}` : ''}`,
  };
}

/** The start of an error answer, one line: enough to say why (Slack: `invalid_blocks`; PagerDuty: its errors). */
async function snippet(res: Response): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < 4 * MAX_ANSWER) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } catch {
    // A body cut short or timed out: say what arrived.
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return oneLine(Buffer.concat(chunks).toString('utf8')).trim();
}

function networkError(err: unknown): string {
  // Duck-typed: fetch's errors may come from another realm (jest), where instanceof Error fails.
  const e = err as { name?: unknown; message?: unknown; cause?: { message?: unknown } } | undefined;
  if (e?.name === 'TimeoutError') return `no answer within ${TIMEOUT_MS / 1000} s`;
  // fetch says "fetch failed"; its cause says why (connect ECONNREFUSED 127.0.0.1:9, getaddrinfo ENOTFOUND …).
  const why = typeof e?.cause?.message === 'string' && e.cause.message ? e.cause.message : e?.message;
  return oneLine(typeof why === 'string' && why ? why : String(err));
}

/** Hides the routing key, the targets' URLs (Slack's holds its token in the path) and every known secret. */
function scrubber(cfg: EscalationConfig): (s: string) => string {
  const hidden: string[] = [];
  for (const url of [cfg.slackUrl, cfg.pagerDutyUrl]) {
    if (!url) continue;
    hidden.push(url);
    if (isHttpUrl(url)) {
      const { pathname, search } = new URL(url);
      if (pathname.length > 1) hidden.push(pathname + search, pathname);
    }
  }
  if (cfg.pagerDutyRoutingKey) hidden.push(cfg.pagerDutyRoutingKey);
  hidden.sort((a, b) => b.length - a.length);
  return (s) => redact(hidden.reduce((out, h) => (h.length >= 4 ? out.split(h).join('***') : out), s));
}

/** The escalation with every known secret value masked (a reason may quote a failed command's error). */
function redacted(e: Escalation): Escalation {
  const r = (s: string | undefined) => (s === undefined ? undefined : redact(String(s)));
  return {
    ...e,
    runbook: redact(String(e.runbook)),
    reason: redact(String(e.reason)),
    fingerprint: redact(String(e.fingerprint)),
    alertname: r(e.alertname),
    labels:
      e.labels && Object.fromEntries(Object.entries(e.labels).map(([k, val]) => [redact(k), redact(String(val))])),
    workflowId: redact(String(e.workflowId)),
    runId: r(e.runId),
  };
}

/** The escalation's values made one line and bounded; labels sorted by name, at most MAX_LABELS. */
function values(e: Escalation) {
  const all = Object.entries(e.labels ?? {})
    .map(([k, val]) => [clip(oneLine(k), MAX_LABEL_KEY), clip(oneLine(String(val)), MAX_VALUE)] as [string, string])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const labels = all.slice(0, MAX_LABELS);
  const bound = (s: string | undefined, n = MAX_VALUE) => (s === undefined ? undefined : clip(oneLine(String(s)), n));
  return {
    runbook: bound(e.runbook)!,
    reason: bound(e.reason, MAX_REASON)!,
    fingerprint: bound(e.fingerprint)!,
    alertname: bound(e.alertname),
    workflowId: bound(e.workflowId)!,
    runId: bound(e.runId),
    severity: SEVERITIES.has(e.severity as string) ? e.severity! : 'error',
    labels,
    labelMap: Object.fromEntries(labels) as Record<string, string | undefined>,
    labelsOmitted: all.length - labels.length,
  };
}

const SEVERITIES = new Set(['critical', 'error', 'warning', 'info']);

/** `key=value` for each label, escaped for chat, until `budget` characters; then how many were left out. */
function labelList(v: ReturnType<typeof values>, sep: string, budget: number): string {
  const out: string[] = [];
  let used = 0;
  for (const [k, val] of v.labels) {
    const item = `${chat(k, CHAT_LABEL_KEY)}=${chat(val, CHAT_VALUE)}`;
    if (used + item.length + sep.length > budget - 40) break;
    out.push(item);
    used += item.length + sep.length;
  }
  const more = v.labels.length - out.length + v.labelsOmitted;
  if (more > 0) out.push(`… and ${more} more`);
  return out.join(sep);
}

function mrkdwn(text: string): object {
  // verbatim: Slack does not auto-link URLs, channel names or mentions in the text; explicit <url|text> still works.
  return { type: 'mrkdwn', text, verbatim: true };
}

/** Slack's control characters as entities (Slack, and Mattermost's markdown, show them as the characters). */
function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * An untrusted value for chat, at most `max` characters as sent: escaped, and with the two injections left once
 * <, > and & are gone defused by a zero-width space: `@here`/`@channel`/`@user` (Mattermost links plain @mentions)
 * and markdown links `[x](url)`. Cut between entities, never inside one.
 */
function chat(s: string, max: number): string {
  const out = escape(s)
    .replace(/@(?=\w)/g, '@\u200b')
    .replace(/\]\(/g, ']\u200b(');
  if (out.length <= max) return out;
  let kept = '';
  for (const unit of out.match(/&(?:amp|lt|gt);|[\uD800-\uDBFF][\uDC00-\uDFFF]|[\s\S]/g) ?? []) {
    if (kept.length + unit.length > max - 1) break;
    kept += unit;
  }
  return `${kept}…`;
}

/** Control, zero-width and bidirectional-override characters become spaces (no forged lines, no hidden text). */
function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g, ' ');
}

/** At most `max` characters (UTF-16 units), ending in … when cut; never splits a surrogate pair. */
function clip(s: string, max: number): string {
  return s.length <= max ? s : `${prefix(s, max - 1)}…`;
}

/** The first `n` UTF-16 units of `s`, one fewer if the last would be half a surrogate pair. */
function prefix(s: string, n: number): string {
  const last = s.charCodeAt(n - 1);
  return s.slice(0, last >= 0xd800 && last <= 0xdbff ? n - 1 : n);
}

/** The dedup key as sent: itself when it fits PagerDuty's 255 characters, else a prefix plus its SHA-256 (stable). */
function dedupKey(key: string): string {
  if (key.length <= MAX_DEDUP_KEY) return key;
  const hash = createHash('sha256').update(key).digest('hex');
  return `${prefix(key, MAX_DEDUP_KEY - hash.length - 1)}:${hash}`;
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}
