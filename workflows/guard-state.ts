// Pure (workflow-safe). The decisions of an alert guard (alert-guard.ts), one per runbook with an alert rule: which
// alert deliveries start a remediation, which are the same incident again, which a guardrail suppresses, and the
// records and escalations each decision owes. Its state is the guard workflow's, so it lives in Temporal: a
// restarted receiver or worker forgets nothing, and continue-as-new carries it over.
//
//   An incident is one alert (fingerprint) from firing until resolved; a firing with another startsAt is a new one.
//   A delivery of a known, unresolved incident is a duplicate (Alertmanager's HA peers, retries, repeat_interval).
//   A new incident passes, in order: freeze, circuit breaker, blast radius (targets), runs per window, runs per
//   target per window, runs per target at once. The first that refuses suppresses it: one record, one escalation.
import { Type, type Static } from '@sinclair/typebox';
import { ALERT_GUARD_PREFIX } from '../common/failure-types';

const Str = (max: number) => Type.String({ maxLength: max });
const Labels = Type.Record(Str(128), Str(16384), { maxProperties: 64 });
const Window = Type.Object({ max: Type.Integer({ minimum: 0 }), windowMs: Type.Integer({ minimum: 1 }) });

/** A rule's guardrails, defaults filled in (dsl/alert-rule.ts alertLimits). */
export const LimitsSchema = Type.Object({
  maxTargets: Type.Integer({ minimum: 1 }),
  concurrencyPerTarget: Type.Integer({ minimum: 1 }),
  rate: Window,
  perTarget: Window,
  breaker: Type.Object({
    failures: Type.Integer({ minimum: 1 }),
    remediations: Type.Integer({ minimum: 1 }),
    windowMs: Type.Integer({ minimum: 1 }),
    cooldownMs: Type.Integer({ minimum: 1 }),
  }),
  onResolved: Type.Union([Type.Literal('cancel-approval'), Type.Literal('record')]),
});

export const GuardAlertSchema = Type.Object({
  fingerprint: Type.String({ pattern: '^[A-Za-z0-9._:-]{1,128}$' }),
  status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
  startsAt: Type.Optional(Str(64)),
  labels: Labels,
  annotations: Labels,
  source: Str(64),
  generatorURL: Type.Optional(Str(4096)),
});

/** What the receiver sends a guard for one alert and one matching rule (the `deliverAlert` update). */
export const AlertDeliverySchema = Type.Object(
  {
    alert: GuardAlertSchema,
    contentHash: Str(128),
    /** The run's params, already checked against the runbook (a firing alert that passed). */
    params: Type.Optional(Type.Record(Str(128), Type.Unknown(), { maxProperties: 200 })),
    /** The hosts the run would act on, resolved by the receiver from the same inventory the run uses. */
    targets: Type.Optional(Type.Array(Str(253), { maxItems: 10_000 })),
    /** Why the alert cannot start the runbook (a label that fails a param), for the record and the escalation. */
    refused: Type.Optional(Type.Array(Str(1000), { maxItems: 20 })),
    limits: LimitsSchema,
  },
  { additionalProperties: false },
);
export type AlertDelivery = Static<typeof AlertDeliverySchema>;
/** The `deliverAlert` update's argument: the alerts of one request for one runbook, decided in order. */
export const AlertDeliveriesSchema = Type.Array(AlertDeliverySchema, { minItems: 1, maxItems: 1000 });
export type GuardAlert = Static<typeof GuardAlertSchema>;
export type Limits = Static<typeof LimitsSchema>;

export const GuardControlSchema = Type.Object(
  {
    action: Type.Union([
      Type.Literal('freeze'),
      Type.Literal('unfreeze'),
      Type.Literal('reset'),
      Type.Literal('status'),
    ]),
    by: Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]*$' }),
    reason: Type.Optional(Type.String({ maxLength: 1000, pattern: '^[^\\u0000-\\u001f\\u007f]*$' })),
  },
  { additionalProperties: false },
);
export type GuardControl = Static<typeof GuardControlSchema>;

const Incident = Type.Object({
  startsAt: Type.Optional(Type.String()),
  firstAt: Type.Number(),
  lastAt: Type.Number(),
  outcome: Type.Union([Type.Literal('started'), Type.Literal('suppressed'), Type.Literal('refused')]),
  reason: Type.Optional(Type.String()),
  workflowId: Type.Optional(Type.String()),
  runId: Type.Optional(Type.String()),
  targets: Type.Array(Type.String()),
  active: Type.Boolean(),
  result: Type.Optional(Type.String()),
  resolvedAt: Type.Optional(Type.Number()),
  /** Resolved while its run was being started: the run is told once it runs. */
  resolvePending: Type.Optional(Type.Boolean()),
  deliveries: Type.Integer(),
});
export type Incident = Static<typeof Incident>;

const Counters = Type.Object({
  deliveries: Type.Integer(),
  started: Type.Integer(),
  deduplicated: Type.Integer(),
  suppressed: Type.Integer(),
  refused: Type.Integer(),
  resolved: Type.Integer(),
  failed: Type.Integer(),
  escalationErrors: Type.Integer(),
});

const GuardEscalationSchema = Type.Object({
  kind: Type.Union([
    Type.Literal('remediation-failed'),
    Type.Literal('suppressed'),
    Type.Literal('refused'),
    Type.Literal('breaker-open'),
  ]),
  reason: Type.String(),
  fingerprint: Type.String(),
  labels: Type.Optional(Type.Record(Type.String(), Type.String())),
  workflowId: Type.String(),
  runId: Type.Optional(Type.String()),
  /** Set once it is being sent: each target (Slack, PagerDuty) is sent and retried on its own. */
  target: Type.Optional(Type.Union([Type.Literal('slack'), Type.Literal('pagerduty')])),
});

export const GuardStateSchema = Type.Object({
  runbook: Type.String({ pattern: '^[a-z][a-z0-9-]{0,127}$' }),
  /** Numbers this guard's records (their ids stay unique across continue-as-new). */
  seq: Type.Integer({ minimum: 0 }),
  limits: Type.Optional(LimitsSchema),
  frozen: Type.Optional(Type.Object({ by: Type.String(), reason: Type.Optional(Type.String()), at: Type.Number() })),
  breaker: Type.Optional(Type.Object({ openedAt: Type.Number(), until: Type.Number(), reason: Type.String() })),
  incidents: Type.Record(Type.String(), Incident),
  starts: Type.Array(
    Type.Object({ at: Type.Number(), fingerprint: Type.String(), targets: Type.Array(Type.String()) }),
  ),
  ended: Type.Array(Type.Object({ at: Type.Number(), failed: Type.Boolean() })),
  counters: Counters,
  recent: Type.Array(
    Type.Object({ at: Type.Number(), fingerprint: Type.String(), outcome: Type.String(), reason: Type.String() }),
  ),
  lastEscalationError: Type.Optional(Type.String()),
  /** The breaker counts remediations and failures from here (set when it closes or is reset). */
  countFrom: Type.Optional(Type.Number()),
  /** When the guard last asked how remediations it does not await ended (it continues as new on a timer's clock). */
  reconciledAt: Type.Optional(Type.Number()),
  /** Escalations not yet delivered when the guard continued as new. */
  unsent: Type.Optional(Type.Array(GuardEscalationSchema, { maxItems: 10_000 })),
});
export type GuardState = Static<typeof GuardStateSchema>;

/** At most this many incidents are remembered (the oldest by last delivery go first). */
export const MAX_INCIDENTS = 2000;
/** A resolved incident is kept this long (to recognise a redelivered resolution), an unresolved one 7 days. */
const RESOLVED_TTL_MS = 3600_000;
const OPEN_TTL_MS = 7 * 24 * 3600_000;
const RECENT = 20;

export function newGuardState(runbook: string): GuardState {
  return {
    runbook,
    seq: 0,
    incidents: {},
    starts: [],
    ended: [],
    counters: {
      deliveries: 0,
      started: 0,
      deduplicated: 0,
      suppressed: 0,
      refused: 0,
      resolved: 0,
      failed: 0,
      escalationErrors: 0,
    },
    recent: [],
  };
}

/** A guard's answer to one delivery (what the receiver reports back to the sender). */
export interface GuardAnswer {
  outcome: 'started' | 'deduplicated' | 'suppressed' | 'refused' | 'resolved';
  workflowId?: string;
  runId?: string;
  reason?: string;
}

/** A change record the guard owes (audit kinds alert.*), numbered by the guard. */
export interface GuardRecord {
  kind: 'alert.suppressed' | 'alert.refused' | 'alert.resolved' | 'alert.control' | 'alert.breaker';
  seq: number;
  fingerprint: string;
  status: string;
  error?: string;
  detail: Record<string, unknown>;
}

/** A notice to humans the guard owes (activities/escalate.ts). */
export type GuardEscalation = Static<typeof GuardEscalationSchema>;

export type Effect =
  | { kind: 'record'; record: GuardRecord }
  | { kind: 'escalate'; escalation: GuardEscalation }
  | { kind: 'resolve-run'; workflowId: string; runId?: string };

/** The run a firing alert starts: its workflow id (one per runbook and fingerprint) and input. */
export interface StartRun {
  workflowId: string;
  fingerprint: string;
}

export interface Decision {
  answer: GuardAnswer;
  start?: StartRun;
  effects: Effect[];
}

/** The workflow id of the remediation run for an alert: one at a time per (runbook, fingerprint). */
export function remediationId(runbook: string, fingerprint: string): string {
  return `alert:${runbook}:${fingerprint}`;
}

const fmt = (msWindow: number): string =>
  msWindow % 3600_000 === 0
    ? `${msWindow / 3600_000}h`
    : msWindow % 60_000 === 0
      ? `${msWindow / 60_000}m`
      : `${Math.round(msWindow / 1000)}s`;

function record(state: GuardState, r: Omit<GuardRecord, 'seq'>): Effect {
  state.seq += 1;
  return { kind: 'record', record: { ...r, seq: state.seq } };
}

/** Reasons kept in the state are cut to this many characters (the state is carried over continue-as-new). */
const REASON_MAX = 500;
const clip = (text: string) => (text.length > REASON_MAX ? `${text.slice(0, REASON_MAX)}...` : text);

function remember(state: GuardState, at: number, fingerprint: string, outcome: string, reason: string): void {
  state.recent.push({ at, fingerprint, outcome, reason: clip(reason) });
  if (state.recent.length > RECENT) state.recent.splice(0, state.recent.length - RECENT);
}

/** Escalations carried over continue-as-new: at most this many (the newest), their labels cut. */
const MAX_UNSENT = 200;

/** What of undelivered escalations the next run of the guard gets: bounded, so the carried state stays small. */
export function carryOver(sending: Iterable<GuardEscalation>): GuardEscalation[] {
  return [...sending].slice(-MAX_UNSENT).map((e) => ({
    ...e,
    reason: clip(e.reason),
    labels: e.labels
      ? Object.fromEntries(
          Object.entries(e.labels)
            .slice(0, 20)
            .map(([k, v]) => [k, v.slice(0, 256)]),
        )
      : undefined,
  }));
}

/**
 * A state given to a new run (continue-as-new, or whoever started the guard): times in the future, which would hold
 * a window or the breaker's count forever, are brought back to now.
 */
export function sanitize(state: GuardState, now: number): GuardState {
  if (state.countFrom !== undefined && state.countFrom > now) state.countFrom = now;
  if (state.reconciledAt !== undefined && state.reconciledAt > now) state.reconciledAt = undefined;
  state.starts = state.starts.filter((e) => e.at <= now);
  state.ended = state.ended.filter((e) => e.at <= now);
  for (const i of Object.values(state.incidents)) {
    i.firstAt = Math.min(i.firstAt, now);
    i.lastAt = Math.min(i.lastAt, now);
  }
  if (state.breaker && state.breaker.until > now + 366 * 24 * 3600_000) state.breaker.until = now;
  return state;
}

/** How a remediation ended, as a guard counts it. */
export const RUN_END_STATUSES = [
  'succeeded',
  'degraded',
  'failed',
  'cancelled',
  'blocked',
  'terminated',
  'timed-out',
] as const;

/** Stores an incident under its fingerprint as plain data (a fingerprint may be `__proto__`). */
function setIncident(state: GuardState, fingerprint: string, incident: Incident): void {
  Object.defineProperty(state.incidents, fingerprint, {
    value: incident,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** Drops what no window or incident rule can need any more. */
export function prune(state: GuardState, now: number): void {
  const l = state.limits;
  const keep = l ? Math.max(l.rate.windowMs, l.perTarget.windowMs, l.breaker.windowMs) : 3600_000;
  state.starts = state.starts.filter((s) => now - s.at < keep).slice(-10_000);
  state.ended = state.ended.filter((e) => now - e.at < keep).slice(-10_000);
  const expired = (i: Incident) =>
    !i.active && (i.resolvedAt !== undefined ? now - i.resolvedAt >= RESOLVED_TTL_MS : now - i.lastAt >= OPEN_TTL_MS);
  let entries: [string, Incident][] = Object.entries(state.incidents);
  const kept = entries.filter(([, i]) => !expired(i));
  if (kept.length === entries.length && kept.length <= MAX_INCIDENTS) return;
  if (kept.length > MAX_INCIDENTS) {
    // Running remediations are never forgotten; of the rest, the most recently delivered are kept.
    const active = kept.filter(([, i]) => i.active);
    const rest = kept.filter(([, i]) => !i.active).sort((a, b) => b[1].lastAt - a[1].lastAt);
    entries = [...active, ...rest.slice(0, Math.max(0, MAX_INCIDENTS - active.length))];
  } else entries = kept;
  state.incidents = Object.fromEntries(entries);
}

const within = (now: number, windowMs: number) => (e: { at: number }) => now - e.at < windowMs;

/** Why a new incident may not start a run now, or undefined when every guardrail lets it. */
function refusal(state: GuardState, d: AlertDelivery, now: number, effects: Effect[]): string | undefined {
  const l = d.limits;
  const targets = d.targets ?? [];
  if (state.frozen) return `frozen by ${state.frozen.by}${state.frozen.reason ? `: ${state.frozen.reason}` : ''}`;
  if (state.breaker && now >= state.breaker.until) {
    effects.push(
      record(state, {
        kind: 'alert.breaker',
        fingerprint: d.alert.fingerprint,
        status: 'closed',
        detail: { reason: 'cooldown over', openedAt: new Date(state.breaker.openedAt).toISOString() },
      }),
    );
    state.breaker = undefined;
    state.countFrom = now; // the counts that opened it start afresh
  }
  if (state.breaker)
    return `circuit breaker open until ${new Date(state.breaker.until).toISOString()} (${state.breaker.reason})`;
  const recentRuns = state.starts.filter(
    (e) => within(now, l.breaker.windowMs)(e) && e.at >= (state.countFrom ?? 0),
  ).length;
  if (recentRuns >= l.breaker.remediations) {
    openBreaker(state, d.alert.fingerprint, now, `${recentRuns} remediations in ${fmt(l.breaker.windowMs)}`, effects);
    return `circuit breaker open: ${recentRuns} remediations in ${fmt(l.breaker.windowMs)}`;
  }
  if (targets.length > l.maxTargets)
    return `blast radius: the run would act on ${targets.length} targets, more than the limit of ${l.maxTargets}`;
  const inRate = state.starts.filter(within(now, l.rate.windowMs)).length;
  if (inRate >= l.rate.max) return `rate limit: ${inRate} runs in ${fmt(l.rate.windowMs)} (limit ${l.rate.max})`;
  for (const t of targets) {
    const n = state.starts.filter((s) => within(now, l.perTarget.windowMs)(s) && s.targets.includes(t)).length;
    if (n >= l.perTarget.max)
      return `rate limit on ${t}: ${n} runs in ${fmt(l.perTarget.windowMs)} (limit ${l.perTarget.max})`;
    const running = Object.values(state.incidents).filter((i) => i.active && i.targets.includes(t)).length;
    if (running >= l.concurrencyPerTarget)
      return `concurrency on ${t}: ${running} remediation(s) already running (limit ${l.concurrencyPerTarget})`;
  }
  return undefined;
}

function openBreaker(state: GuardState, fingerprint: string, now: number, reason: string, effects: Effect[]): void {
  const l = state.limits!;
  state.breaker = { openedAt: now, until: now + l.breaker.cooldownMs, reason };
  effects.push(
    record(state, {
      kind: 'alert.breaker',
      fingerprint,
      status: 'open',
      detail: { reason, until: new Date(state.breaker.until).toISOString() },
    }),
    {
      kind: 'escalate',
      escalation: {
        kind: 'breaker-open',
        reason: `circuit breaker open: ${reason}; alerts only escalate until ${new Date(state.breaker.until).toISOString()} or \`runbook triggers reset ${state.runbook}\``,
        fingerprint,
        workflowId: guardId(state.runbook),
      },
    },
  );
}

/** The guard workflow of a runbook. */
export function guardId(runbook: string): string {
  return `${ALERT_GUARD_PREFIX}${runbook}`;
}

/** Decides one delivery. Mutates `state`; the caller starts the run it names and performs the effects. */
export function decide(state: GuardState, d: AlertDelivery, now: number): Decision {
  state.limits = d.limits;
  state.counters.deliveries += 1;
  prune(state, now);
  const fp = d.alert.fingerprint;
  const effects: Effect[] = [];
  const known = Object.prototype.hasOwnProperty.call(state.incidents, fp) ? state.incidents[fp] : undefined;
  const alertDetail = { labels: d.alert.labels, source: d.alert.source, startsAt: d.alert.startsAt ?? null };

  if (d.alert.status === 'resolved') {
    if (known?.resolvedAt !== undefined) {
      state.counters.deduplicated += 1;
      return {
        answer: { outcome: 'deduplicated', workflowId: known.workflowId, reason: 'resolution already recorded' },
        effects,
      };
    }
    state.counters.resolved += 1;
    const detail: Record<string, unknown> = { ...alertDetail, endsAt: null };
    if (known) {
      known.resolvedAt = now;
      known.lastAt = now;
      detail.run = known.workflowId ? { workflowId: known.workflowId, runId: known.runId ?? null } : null;
      detail.outcome = known.outcome;
      if (known.active && d.limits.onResolved === 'cancel-approval' && known.workflowId) {
        // Its run may still be starting (no run id yet): then it is told once it has started.
        if (known.runId) effects.push({ kind: 'resolve-run', workflowId: known.workflowId, runId: known.runId });
        else known.resolvePending = true;
      }
    } else {
      setIncident(state, fp, {
        firstAt: now,
        lastAt: now,
        outcome: 'suppressed',
        reason: 'resolved before any firing was seen',
        targets: [],
        active: false,
        resolvedAt: now,
        deliveries: 1,
        startsAt: d.alert.startsAt,
      });
    }
    effects.push(record(state, { kind: 'alert.resolved', fingerprint: fp, status: 'resolved', detail }));
    return { answer: { outcome: 'resolved', workflowId: known?.workflowId, runId: known?.runId }, effects };
  }

  // Firing.
  if (known?.resolvedAt !== undefined && d.alert.startsAt !== undefined && known.startsAt === d.alert.startsAt) {
    // A firing of an incident that already resolved (the two crossed on the way, or a late redelivery).
    known.lastAt = now;
    state.counters.deduplicated += 1;
    return {
      answer: { outcome: 'deduplicated', workflowId: known.workflowId, reason: 'this incident resolved already' },
      effects,
    };
  }
  const sameIncident = known && known.resolvedAt === undefined && known.startsAt === d.alert.startsAt;
  // A suppressed incident is looked at again on each redelivery (the freeze may be lifted, the window passed): it
  // starts once the guardrails let it, and otherwise stays suppressed without another record or escalation.
  if (known && sameIncident && known.outcome === 'suppressed' && !known.active) {
    known.lastAt = now;
    known.deliveries += 1;
    const still = refusal(state, d, now, effects);
    if (still) {
      known.reason = clip(still);
      state.counters.deduplicated += 1;
      return { answer: { outcome: 'suppressed', reason: still }, effects };
    }
    return startRun(state, fp, known, d, now, effects);
  }
  if (known && (sameIncident || known.active)) {
    known.lastAt = now;
    known.deliveries += 1;
    state.counters.deduplicated += 1;
    return {
      answer: {
        outcome: known.outcome === 'started' ? 'deduplicated' : known.outcome,
        workflowId: known.workflowId,
        runId: known.runId,
        reason:
          known.outcome === 'started'
            ? known.active
              ? 'a remediation for this alert is running'
              : `this incident was remediated already (${known.result ?? 'done'})`
            : known.reason,
      },
      effects,
    };
  }
  const incident: Incident = {
    startsAt: d.alert.startsAt,
    firstAt: now,
    lastAt: now,
    outcome: 'started',
    targets: [], // filled when it starts (bounded by maxTargets then); a suppressed one may name thousands
    active: false,
    deliveries: 1,
  };
  setIncident(state, fp, incident);

  if (d.refused?.length) {
    incident.outcome = 'refused';
    incident.reason = clip(d.refused.join('; '));
    state.counters.refused += 1;
    remember(state, now, fp, 'refused', incident.reason);
    effects.push(
      record(state, {
        kind: 'alert.refused',
        fingerprint: fp,
        status: 'refused',
        error: incident.reason,
        detail: alertDetail,
      }),
      escalation(state, 'refused', incident.reason, d),
    );
    return { answer: { outcome: 'refused', reason: incident.reason }, effects };
  }

  const why = refusal(state, d, now, effects);
  if (why) {
    incident.outcome = 'suppressed';
    incident.reason = clip(why);
    state.counters.suppressed += 1;
    remember(state, now, fp, 'suppressed', why);
    effects.push(
      record(state, {
        kind: 'alert.suppressed',
        fingerprint: fp,
        status: 'suppressed',
        error: why,
        detail: { ...alertDetail, targets: (d.targets ?? []).slice(0, 100), targetCount: d.targets?.length ?? 0 },
      }),
      escalation(state, 'suppressed', why, d),
    );
    return { answer: { outcome: 'suppressed', reason: why }, effects };
  }

  return startRun(state, fp, incident, d, now, effects);
}

function startRun(
  state: GuardState,
  fp: string,
  incident: Incident,
  d: AlertDelivery,
  now: number,
  effects: Effect[],
): Decision {
  const workflowId = remediationId(state.runbook, fp);
  incident.outcome = 'started';
  incident.reason = undefined;
  incident.workflowId = workflowId;
  incident.targets = d.targets ?? [];
  incident.active = true;
  state.starts.push({ at: now, fingerprint: fp, targets: d.targets ?? [] });
  state.counters.started += 1;
  return { answer: { outcome: 'started', workflowId }, start: { workflowId, fingerprint: fp }, effects };
}

function escalation(state: GuardState, kind: GuardEscalation['kind'], reason: string, d: AlertDelivery): Effect {
  return {
    kind: 'escalate',
    escalation: {
      kind,
      reason,
      fingerprint: d.alert.fingerprint,
      labels: d.alert.labels,
      workflowId: guardId(state.runbook),
    },
  };
}

/** The run could not start because one with its id is still running (from before a continue-as-new): a duplicate. */
export function startRefused(state: GuardState, fingerprint: string): GuardAnswer {
  const i = state.incidents[fingerprint];
  const last = state.starts.map((s) => s.fingerprint).lastIndexOf(fingerprint);
  if (last >= 0) state.starts.splice(last, 1);
  state.counters.started -= 1;
  state.counters.deduplicated += 1;
  if (i) i.reason = 'a remediation for this alert was already running';
  return { outcome: 'deduplicated', workflowId: i?.workflowId, reason: 'a remediation for this alert is running' };
}

/** A remediation ended (its result, or its own signal: whichever comes first counts, once). */
export function runEnded(
  state: GuardState,
  workflowId: string,
  runId: string | undefined,
  status: string,
  now: number,
): Effect[] {
  if (!(RUN_END_STATUSES as readonly string[]).includes(status)) return [];
  const entry = Object.entries(state.incidents).find(
    ([, i]) =>
      i.active && i.workflowId === workflowId && (runId === undefined || i.runId === undefined || i.runId === runId),
  );
  if (!entry) return [];
  const [fp, incident] = entry;
  incident.active = false;
  incident.result = status;
  const failed = status === 'failed' || status === 'terminated' || status === 'timed-out';
  state.ended.push({ at: now, failed });
  const effects: Effect[] = [];
  if (status === 'blocked') {
    // A change calendar kept the remediation out: not a failure of the remediation (the breaker does not count it),
    // but the alert is not handled, so people hear of it.
    effects.push({
      kind: 'escalate',
      escalation: {
        kind: 'remediation-failed',
        reason: 'remediation blocked: a change calendar (freeze or maintenance window) is closed',
        fingerprint: fp,
        workflowId,
        runId: incident.runId,
      },
    });
    return effects;
  }
  if (!failed) return effects;
  state.counters.failed += 1;
  remember(state, now, fp, 'failed', `remediation ${status}`);
  effects.push({
    kind: 'escalate',
    escalation: {
      kind: 'remediation-failed',
      reason: `remediation ${status}`,
      fingerprint: fp,
      workflowId,
      runId: incident.runId,
    },
  });
  const l = state.limits;
  if (l && !state.breaker) {
    const failures = state.ended.filter(
      (e) => e.failed && now - e.at < l.breaker.windowMs && e.at >= (state.countFrom ?? 0),
    ).length;
    if (failures >= l.breaker.failures)
      openBreaker(state, fp, now, `${failures} failed remediations in ${fmt(l.breaker.windowMs)}`, effects);
  }
  return effects;
}

/** Freeze, unfreeze, or reset (close the breaker and forget its counts); every change is recorded. */
export function control(state: GuardState, c: GuardControl, now: number): Effect[] {
  const detail = { by: c.by, reason: c.reason ?? null };
  switch (c.action) {
    case 'status':
      return [];
    case 'freeze':
      state.frozen = { by: c.by, reason: c.reason, at: now };
      return [record(state, { kind: 'alert.control', fingerprint: '-', status: 'frozen', detail })];
    case 'unfreeze':
      if (!state.frozen) return [];
      state.frozen = undefined;
      return [record(state, { kind: 'alert.control', fingerprint: '-', status: 'unfrozen', detail })];
    case 'reset':
      state.breaker = undefined;
      state.countFrom = now;
      return [record(state, { kind: 'alert.control', fingerprint: '-', status: 'reset', detail })];
  }
}

/** What `runbook triggers status` shows. */
export interface GuardStatus {
  runbook: string;
  frozen?: { by: string; reason?: string; at: string };
  breaker?: { openedAt: string; until: string; reason: string };
  limits?: Limits;
  runsInRateWindow: number;
  failuresInBreakerWindow: number;
  active: { fingerprint: string; workflowId?: string; runId?: string; targets: string[]; since: string }[];
  incidents: number;
  counters: GuardState['counters'];
  recent: { at: string; fingerprint: string; outcome: string; reason: string }[];
  lastEscalationError?: string;
}

export function guardStatus(state: GuardState, now: number): GuardStatus {
  const l = state.limits;
  const iso = (t: number) => new Date(t).toISOString();
  return {
    runbook: state.runbook,
    frozen: state.frozen && { ...state.frozen, at: iso(state.frozen.at) },
    breaker:
      state.breaker && now < state.breaker.until
        ? { openedAt: iso(state.breaker.openedAt), until: iso(state.breaker.until), reason: state.breaker.reason }
        : undefined,
    limits: l,
    runsInRateWindow: l ? state.starts.filter(within(now, l.rate.windowMs)).length : state.starts.length,
    failuresInBreakerWindow: state.ended.filter(
      (e) => e.failed && (!l || now - e.at < l.breaker.windowMs) && e.at >= (state.countFrom ?? 0),
    ).length,
    active: Object.entries(state.incidents)
      .filter(([, i]) => i.active)
      .map(([fingerprint, i]) => ({
        fingerprint,
        workflowId: i.workflowId,
        runId: i.runId,
        targets: i.targets,
        since: iso(i.firstAt),
      })),
    incidents: Object.keys(state.incidents).length,
    counters: state.counters,
    recent: state.recent.map((r) => ({ ...r, at: iso(r.at) })),
    lastEscalationError: state.lastEscalationError,
  };
}
