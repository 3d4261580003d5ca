// Node side. `runbook serve` (the alert receiver alone, for production) and `runbook triggers status | freeze |
// unfreeze | reset` (the alert guards' state, kept in Temporal).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { WithStartWorkflowOperation, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { UserError, messageOf } from '../common/errors';
import { createLogger, type Logger } from '../common/logger';
import {
  connectClient,
  engineConfigFromEnv,
  logLevelFromEnv,
  receiverConfigFromEnv,
  temporalTargetFromEnv,
  workerSettingsFromEnv,
  type TemporalTarget,
} from '../worker/config';
import { startReceiver, type Receiver, type ReceiverConfig } from '../triggers/receiver';
import { RuleSet, type AlertRule } from '../triggers/rules';
import { loadMappings, SHIPPED_MAPPINGS } from '../triggers/mappings';
import type { alertGuard } from '../workflows/alert-guard';
import {
  guardId,
  guardStatus,
  newGuardState,
  type GuardControl,
  type GuardStatus,
  type Limits,
} from '../workflows/guard-state';
import { withClient } from './runs';
import { controlGuardUpdate, guardStatusQuery } from '../workflows/messages';

/** A bearer token made once and kept (0600) in the dev data dir, for a server the dev machine starts. */
export function keptToken(dataDir: string, name: string): { token: string; file: string } {
  const file = path.join(dataDir, name);
  if (!fs.existsSync(file))
    fs.writeFileSync(file, `${crypto.randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  return { token: fs.readFileSync(file, 'utf8').trim(), file };
}

/** The receiver's full configuration: the environment's settings plus the generic mappings. */
export function receiverConfig(
  env: NodeJS.ProcessEnv,
  listen: { host: string; port: number },
  dev?: { dataDir: string },
): ReceiverConfig & { tokenSource: string } {
  const { mappingsFile, ...base } = receiverConfigFromEnv(env, listen);
  let tokenSource = base.tokens.length ? 'RUNBOOK_RECEIVER_TOKEN' : base.hmacSecret ? 'HMAC only' : '';
  if (!base.tokens.length && dev) {
    const kept = keptToken(dev.dataDir, 'receiver-token');
    base.tokens.push(kept.token);
    tokenSource = kept.file;
  }
  if (!base.tokens.length && !base.hmacSecret)
    throw new UserError(
      'The alert receiver needs credentials: set RUNBOOK_RECEIVER_TOKEN (a bearer token of 16+ characters; several, comma-separated) ' +
        'or RUNBOOK_RECEIVER_TOKEN_FILE, and/or RUNBOOK_RECEIVER_HMAC_SECRET for signed webhooks (Grafana).',
    );
  let mappings = { ...SHIPPED_MAPPINGS };
  if (mappingsFile) {
    try {
      mappings = { ...mappings, ...loadMappings(mappingsFile) };
    } catch (err) {
      throw new UserError(`RUNBOOK_RECEIVER_MAPPINGS: ${messageOf(err)}`, { cause: err });
    }
  }
  return { ...base, mappings, tokenSource };
}

/** Starts the receiver, acting on `rules`, on its own client connection; its `close` closes both. */
export async function startAlertReceiver(
  target: TemporalTarget,
  cfg: ReceiverConfig,
  rules: RuleSet,
  logger: Logger,
): Promise<Receiver> {
  const client = await connectClient(target);
  try {
    const receiver = await startReceiver(cfg, { client, rules, logger });
    return {
      url: receiver.url,
      close: async () => {
        await receiver.close();
        await client.connection.close();
      },
    };
  } catch (err) {
    await client.connection.close();
    const busy = /EADDRINUSE/.test(messageOf(err));
    throw new UserError(
      `Cannot start the alert receiver on ${cfg.host}:${cfg.port}: ${busy ? 'the port is in use' : messageOf(err)}. ` +
        'Choose another port (`runbook dev --receiver-port N`, `runbook serve --port N`), or start none (`runbook dev --no-receiver`).',
      {
        cause: err,
      },
    );
  }
}

/** `runbook serve`: the receiver alone, against the server the TEMPORAL_* variables name, until SIGINT/SIGTERM. */
export async function runServe(o: { ip: string; port: number }): Promise<void> {
  const logger = createLogger('runbook-receiver', logLevelFromEnv());
  const cfg = receiverConfig(process.env, { host: o.ip, port: o.port });
  const engine = engineConfigFromEnv(process.env);
  const ruleSet = new RuleSet(engine.runbookDir, engine.defaultInventory, logger);
  const receiver = await startAlertReceiver(temporalTargetFromEnv(), cfg, ruleSet, logger);
  const { rules, broken } = ruleSet.current();
  console.log(
    `alert receiver on ${receiver.url} (POST /alerts/alertmanager, /alerts/grafana, /alerts/generic/{${Object.keys(cfg.mappings).sort().join(',')}}; ` +
      `auth: ${cfg.tokenSource}); rules: ${rules.map((r) => r.name).join(', ') || 'none'}` +
      `${broken.length ? `; ${broken.length} runbook(s) skipped, see the log` : ''}; Ctrl-C stops it`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => void receiver.close().then(resolve);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

/** Sends a control to one runbook's guard, starting the guard if it has none yet. */
async function controlGuard(client: Client, runbook: string, c: GuardControl): Promise<GuardStatus> {
  return client.workflow.executeUpdateWithStart(controlGuardUpdate, {
    args: [c],
    startWorkflowOperation: new WithStartWorkflowOperation<typeof alertGuard>('alertGuard', {
      workflowId: guardId(runbook),
      taskQueue: workerSettingsFromEnv().taskQueue,
      args: [{ runbook }],
      workflowIdConflictPolicy: 'USE_EXISTING',
    }),
  });
}

/** A guard's status by query (nothing is written); a runbook no alert reached yet has no guard. */
async function readStatus(client: Client, runbook: string, limits: Limits): Promise<GuardStatus> {
  try {
    return await client.workflow.getHandle(guardId(runbook)).query(guardStatusQuery);
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError) && !/not found|closed/i.test(messageOf(err)))
      throw new UserError(
        `The alert guard of ${runbook} (${guardId(runbook)}) did not answer: ${messageOf(err)}. Is a worker polling ` +
          `task queue "${workerSettingsFromEnv().taskQueue}"? \`temporal workflow describe -w ${guardId(runbook)}\` shows its state.`,
        { cause: err },
      );
    // No guard yet: the status of a fresh one, with the rule's limits.
    const fresh = newGuardState(runbook);
    fresh.limits = limits;
    return guardStatus(fresh, Date.now());
  }
}

/** The runbooks with an alert rule (the ones named, checked to have one; else all of them). */
function ruleSet(names: string[]): AlertRule[] {
  const dir = engineConfigFromEnv(process.env).runbookDir;
  const { rules } = new RuleSet(dir, undefined).current();
  if (names.length === 0) return rules;
  return names.map((n) => {
    const r = rules.find((x) => x.name === n);
    if (!r)
      throw new UserError(
        `${n} has no alert rule in ${dir} (runbooks with one: ${rules.map((x) => x.name).join(', ') || 'none'}).`,
      );
    return r;
  });
}

function describe(s: GuardStatus): string {
  const l = s.limits;
  const lines = [`${s.runbook}`];
  lines.push(
    `  state        ${s.frozen ? `FROZEN by ${s.frozen.by} at ${s.frozen.at}${s.frozen.reason ? ` (${s.frozen.reason})` : ''}` : s.breaker ? `BREAKER OPEN until ${s.breaker.until} (${s.breaker.reason})` : 'armed'}`,
  );
  if (l)
    lines.push(
      `  limits       ${l.maxTargets} targets per run, ${l.concurrencyPerTarget} per target at once, ${l.rate.max} runs per ${l.rate.windowMs / 60_000}m, ` +
        `${l.perTarget.max} per target per ${l.perTarget.windowMs / 60_000}m; breaker at ${l.breaker.failures} failures or ${l.breaker.remediations} runs per ${l.breaker.windowMs / 60_000}m`,
    );
  lines.push(
    `  window       ${s.runsInRateWindow} runs started, ${s.failuresInBreakerWindow} failed`,
    `  counters     ${Object.entries(s.counters)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  for (const a of s.active)
    lines.push(`  running      ${a.workflowId ?? '?'} on ${a.targets.join(', ') || '-'} since ${a.since}`);
  for (const r of s.recent.slice(-5)) lines.push(`  ${r.outcome.padEnd(12)} ${r.at} ${r.fingerprint}: ${r.reason}`);
  if (s.lastEscalationError) lines.push(`  escalation   last error: ${s.lastEscalationError}`);
  return lines.join('\n');
}

/** `runbook triggers status|freeze|unfreeze|reset [RUNBOOK...]`. */
export async function runTriggers(
  action: GuardControl['action'],
  names: string[],
  o: { by?: string; reason?: string; json?: boolean },
): Promise<void> {
  const rules = ruleSet(names);
  if (rules.length === 0) {
    console.log('No runbook has an alert rule (`on.alert`).');
    return;
  }
  const by = o.by ?? process.env.USER ?? 'unknown';
  await withClient(async (client) => {
    const out: GuardStatus[] = [];
    for (const r of rules)
      out.push(
        action === 'status'
          ? await readStatus(client, r.name, r.limits)
          : await controlGuard(client, r.name, { action, by, reason: o.reason }),
      );
    if (o.json) console.log(JSON.stringify(out, null, 2));
    else console.log(out.map(describe).join('\n\n'));
  });
}
