// Pure (workflow-safe). A runbook's alert rule (`on.alert`): whether an alert matches it, the params it gives
// the run, and the guardrails that apply. Alert labels are untrusted data: they reach a run only through the
// rule's param templates, and the result is checked like any other input (types, patterns, selectors).
import ms from 'ms';
import { ExpressionError, parseTemplate, render, renderValue } from './expr';
import { coerceParams, type ParamValue } from './params';
import { CODES } from './problems';
import { buildContext } from './render';
import type { RunbookDoc } from './schema';

export type AlertRuleDoc = NonNullable<NonNullable<RunbookDoc['on']>['alert']>;
export type LabelMatcherDoc = AlertRuleDoc['match'][string];

/** What a rule's templates see as `alert`. */
export interface AlertView {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  fingerprint: string;
  status: string;
  startsAt?: string;
  source: string;
}

/** A matcher's regex, anchored like Alertmanager's (`foo|bar` matches the whole value). Throws on a bad regex. */
export function matcherRegex(source: string): RegExp {
  return new RegExp(`^(?:${source})$`, 'u');
}

function matcherHolds(m: LabelMatcherDoc, value: string | undefined): boolean {
  if (typeof m === 'string') return value === m;
  if ('regex' in m) return value !== undefined && matcherRegex(m.regex).test(value);
  if ('not' in m) return value !== m.not;
  return value === undefined || !matcherRegex(m.notRegex).test(value);
}

/** Whether every matcher of the rule holds for these labels (an absent label is undefined, never ""). */
export function ruleMatches(rule: AlertRuleDoc, labels: Record<string, string>): boolean {
  return Object.entries(rule.match).every(([name, m]) =>
    matcherHolds(m, Object.prototype.hasOwnProperty.call(labels, name) ? labels[name] : undefined),
  );
}

/** A param the alert could not fill, or filled with a value the param refuses. */
export interface AlertParamError {
  param: string;
  message: string;
  code: string;
}

/** Characters that would turn a label into more selector terms (`web-1,all`, `!web-1`) or several words. */
const SELECTOR_SYNTAX = /[,!\s]/;

/**
 * The run's params for this alert: each template of `on.alert.params` rendered over `alert`, then coerced and
 * checked against the runbook's param declarations (defaults fill the rest). A label that would change a
 * `targets` selector's shape (a comma, `!` or space inside an interpolated value) is refused, and so is an alert
 * filling a `secret` param (it could pick any secret the runbook declares).
 */
export function alertParams(
  rb: RunbookDoc,
  alert: AlertView,
): { values: Record<string, ParamValue>; errors: AlertParamError[] } {
  const rule = rb.on?.alert;
  const specs = rb.params ?? {};
  const ctx = buildContext({}, undefined, rb, { id: '', initiator: alert.fingerprint, trigger: 'alert' }, { ...alert });
  const inputs: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  const errors: AlertParamError[] = [];
  for (const [name, template] of Object.entries(rule?.params ?? {})) {
    const spec = specs[name];
    if (spec?.type === 'secret') {
      errors.push({ param: name, message: 'a secret param cannot be filled from an alert', code: CODES.inputSecret });
      continue;
    }
    try {
      if (spec?.type === 'targets') {
        for (const seg of parseTemplate(template)) {
          if (seg.kind !== 'expr') continue;
          const v = render(`\${{ ${seg.source} }}`, ctx, 'text');
          if (SELECTOR_SYNTAX.test(v))
            throw new ExpressionError(
              `the alert's value for \`${seg.source}\` contains a comma, "!" or white space, which would change the selector`,
              0,
            );
        }
      }
      inputs[name] = renderValue(template, ctx);
    } catch (err) {
      errors.push({ param: name, message: `from the alert: ${describe(err)}`, code: CODES.inputType });
    }
  }
  if (errors.length) return { values: {}, errors };
  const coerced = coerceParams(specs, inputs, Object.keys(rb.secrets ?? {}));
  return { values: coerced.values, errors: coerced.errors };
}

function describe(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.length > 300 ? `${message.slice(0, 300)}...` : message;
}

/** A rule's guardrails with every default filled in, windows in milliseconds. */
export interface AlertLimits {
  maxTargets: number;
  concurrencyPerTarget: number;
  rate: { max: number; windowMs: number };
  perTarget: { max: number; windowMs: number };
  breaker: { failures: number; remediations: number; windowMs: number; cooldownMs: number };
  onResolved: 'cancel-approval' | 'record';
}

/** A window in whole milliseconds, at least 1 (`0s` or `0.5ms` would divide nothing). */
const toMs = (d: string | undefined, fallback: string): number =>
  Math.max(1, Math.round(ms((d ?? fallback) as ms.StringValue)));

/** The guardrails of a rule (defaults: 5 targets, 1 run per target at once, 10 runs/h, 3 per target/h, breaker 3 failures or 20 runs/h, 1 h cooldown). */
export function alertLimits(rule: AlertRuleDoc): AlertLimits {
  const l = rule.limits ?? {};
  return {
    maxTargets: l.maxTargets ?? 5,
    concurrencyPerTarget: l.concurrencyPerTarget ?? 1,
    rate: { max: l.rate?.max ?? 10, windowMs: toMs(l.rate?.window, '1h') },
    perTarget: { max: l.perTarget?.max ?? 3, windowMs: toMs(l.perTarget?.window, '1h') },
    breaker: {
      failures: l.breaker?.failures ?? 3,
      remediations: l.breaker?.remediations ?? 20,
      windowMs: toMs(l.breaker?.window, '1h'),
      cooldownMs: toMs(l.breaker?.cooldown, l.breaker?.window ?? '1h'),
    },
    onResolved: rule.onResolved ?? 'cancel-approval',
  };
}
