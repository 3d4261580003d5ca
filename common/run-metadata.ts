// Pure (workflow-safe). What the Temporal Web UI shows about a run before it has done anything: its summary
// (one line, the workflow list and the run's header) and its details (Markdown, the run's page). Starters (the
// CLI, the alert receiver, schedules, a parent run for its sub-runbook) pass these as staticSummary and
// staticDetails when they start a run; both are pure functions of the start input and, when the starter has it,
// the runbook.
//
// The input is untrusted (it may come from an alert or a UI form): every value is escaped (common/markdown.ts),
// bounded, and a secret never shows. A `secret` param holds a reference (`secret:NAME`), shown as
// `<secret:NAME>` like in the audit trail; anything else in a secret param (someone typed the secret itself; the
// run will refuse it, but the summary is written before that) is `***`. Without the runbook the types are not
// known, so values under names that look secret (password, token, key, ...) are masked instead, and the details
// say so. Secret tokens of a parent's rendered params (a sub-runbook's inputs) show as `<secret:NAME>` too.
import { maskSecrets } from '../dsl/expr';
import type { RunbookInput } from '../dsl/run-input';
import type { RunbookDoc } from '../dsl/schema';
import { cut, fitBytes, fitLines, mdText, oneLine } from './markdown';

/** What of a runbook the summaries use: its name, description, risk, param types and targets. */
export type RunbookFacts = Pick<RunbookDoc, 'metadata' | 'params' | 'targets'>;

/** The largest summary, in UTF-8 bytes (the server's default limit is 400, counted after the codec's overhead). */
export const SUMMARY_MAX_BYTES = 240;
/** The largest details text, in UTF-8 bytes (the server's default limit is 20,000). */
export const DETAILS_MAX_BYTES = 8000;

const MAX_PARAMS_SHOWN = 40;
const MASK = '***';
const REFERENCE = /^secret:([a-z][a-z0-9_]*)$/;
/** Param (or nested key) names whose values are masked when the runbook, and so the param's type, is unknown. */
const SECRET_NAME =
  /pass|secret|token|api[-_]?key|private|credential|auth|cookie|session|signature|cert|(^|[^a-z])key([^a-z]|$)/i;

/** Whether a param's value is masked without its type: its name looks like a secret's. */
export function looksSecret(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** A value in a few words: lists and objects shallowly, nothing of it longer than `max` characters. */
function brief(value: unknown, max: number, depth = 0): string {
  if (typeof value === 'string') return oneLine(maskSecrets(value.slice(0, max * 2)), max);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (value === undefined) return 'undefined';
  if (depth >= 2) return Array.isArray(value) ? '[…]' : '{…}';
  if (Array.isArray(value)) {
    const items = value.slice(0, 10).map((v) => brief(v, max, depth + 1));
    return cut(`[${items.join(', ')}${value.length > 10 ? `, … ${value.length - 10} more` : ''}]`, max);
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as object);
    const shown = entries
      .slice(0, 10)
      .map(([k, v]) => `${oneLine(k, 40)}: ${looksSecret(k) ? MASK : brief(v, max, depth + 1)}`);
    return cut(`{${shown.join(', ')}${entries.length > 10 ? `, … ${entries.length - 10} more` : ''}}`, max);
  }
  return typeof value;
}

/** A param's value as shown: secrets by reference or masked (see the module comment), the rest in brief. */
export function shownParam(name: string, value: unknown, runbook: RunbookFacts | undefined, max = 120): string {
  const type = runbook?.params?.[name]?.type;
  const secret = type === 'secret' || ((!runbook || type === undefined) && looksSecret(name));
  if (secret) {
    const ref = typeof value === 'string' ? REFERENCE.exec(value) : null;
    return ref ? `<secret:${ref[1]}>` : MASK;
  }
  return brief(value, max);
}

/** The params in the runbook's order (undeclared ones after), at most `limit`, each as `[name, shown value]`. */
function paramList(input: RunbookInput, runbook: RunbookFacts | undefined, max: number, limit: number) {
  const params = input.params && typeof input.params === 'object' && !Array.isArray(input.params) ? input.params : {};
  const declared = Object.keys(runbook?.params ?? {}).filter((k) => Object.prototype.hasOwnProperty.call(params, k));
  const names = [...new Set([...declared, ...Object.keys(params)])];
  return {
    shown: names.slice(0, limit).map((k) => [oneLine(k, 64), shownParam(k, params[k], runbook, max)] as const),
    more: Math.max(0, names.length - limit),
  };
}

/** What the run will act on: resolved targets, else the runbook's selector (a plain `${{ params.X }}` filled in). */
function targetsOf(input: RunbookInput, runbook: RunbookFacts | undefined, targets?: readonly string[]) {
  if (targets?.length)
    return targets.slice(0, 20).join(', ') + (targets.length > 20 ? ` … ${targets.length} in all` : '');
  const selector = runbook?.targets;
  if (selector === undefined) return undefined;
  const param = /^\$\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$/.exec(selector.trim())?.[1];
  if (!param) return selector;
  const value = input.params?.[param] ?? runbook?.params?.[param]?.default;
  return Array.isArray(value) ? value.join(',') : typeof value === 'string' ? value : selector;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * The run's one-line summary (Markdown), for staticSummary: `**NAME** on TARGETS: k=v, k=v · TRIGGER by WHO`.
 * At most SUMMARY_MAX_BYTES; params that do not fit are counted instead (`… 3 more`).
 */
export function runSummary(input: RunbookInput, runbook?: RunbookFacts, targets?: readonly string[]): string {
  const name = `**${mdText(str(input.runbook) ?? runbook?.metadata.name ?? 'runbook', 64)}**`;
  const on = targetsOf(input, runbook, targets);
  const head = `${name}${on ? ` on ${mdText(on, 60)}` : ''}`;
  const by = ` · ${mdText(str(input.trigger) ?? 'manual', 12)} by ${mdText(str(input.initiator) ?? 'unknown', 40)}`;
  const { shown, more } = paramList(input, runbook, 40, MAX_PARAMS_SHOWN);
  const parts = shown.map(([k, v]) => `${mdText(k, 32)}=${mdText(v, 40)}`);
  // As many params as fit whole, then how many did not.
  let params = '';
  for (const [i, p] of parts.entries()) {
    const rest = parts.length - i - 1 + more;
    const next = `${params}${params ? ', ' : ''}${p}`;
    const tail = rest > 0 ? `, … ${rest} more` : '';
    if (fitBytesOk(`${head}: ${next}${tail}${by}`)) params = next;
    else {
      params = `${params}${params ? ', ' : ''}… ${parts.length - i + more} more`;
      break;
    }
  }
  if (!parts.length && more) params = `… ${more} more`;
  return fitBytes(`${head}${params ? `: ${params}` : ''}${by}`, SUMMARY_MAX_BYTES);
}

const fitBytesOk = (text: string) => fitBytes(text, SUMMARY_MAX_BYTES) === text;

/**
 * The run's details (Markdown, a list of facts), for staticDetails: runbook, targets, who started it and how,
 * inventory, window override, alert labels, params. At most DETAILS_MAX_BYTES, cut at a line.
 */
export function runDetails(input: RunbookInput, runbook?: RunbookFacts, targets?: readonly string[]): string {
  const lines: string[] = [];
  const name = str(input.runbook) ?? runbook?.metadata.name ?? 'runbook';
  const about = runbook
    ? `${runbook.metadata.description ? ` · ${mdText(runbook.metadata.description, 200)}` : ''} · risk ${mdText(runbook.metadata.risk ?? 'medium', 10)}`
    : '';
  lines.push(`- **Runbook:** ${mdText(name, 128)}${about}`);
  const on = targetsOf(input, runbook, targets);
  if (on) lines.push(`- **Targets:** ${mdText(on, 400)}`);
  lines.push(
    `- **Started by:** ${mdText(str(input.initiator) ?? 'unknown', 256)} (${mdText(str(input.trigger) ?? 'manual', 20)})`,
  );
  if (str(input.inventory)) lines.push(`- **Inventory:** ${mdText(input.inventory!, 300)}`);
  if (str(input.source)) lines.push(`- **Runbook:** sent with the run, ${input.source!.length} characters of YAML`);
  const o = input.windowOverride;
  if (o && typeof o === 'object')
    lines.push(`- **Window override:** by ${mdText(str(o.by) ?? 'unknown', 100)}: ${mdText(str(o.reason) ?? '', 300)}`);
  const labels = (input.alert as { labels?: unknown } | undefined)?.labels;
  if (labels && typeof labels === 'object') {
    const entries = Object.entries(labels as object);
    const text = entries
      .slice(0, 20)
      .map(([k, v]) => `${mdText(k, 40)}=${mdText(shownParam(k, v, undefined, 80), 80)}`)
      .join(', ');
    lines.push(`- **Alert:** ${text}${entries.length > 20 ? `, … ${entries.length - 20} more` : ''}`);
  }
  const { shown, more } = paramList(input, runbook, 200, MAX_PARAMS_SHOWN);
  if (shown.length) {
    lines.push('', '**Params**', '');
    for (const [k, v] of shown) lines.push(`- ${mdText(k, 64)}: ${mdText(v, 200)}`);
    if (more) lines.push(`- … ${more} more`);
    lines.push(
      '',
      runbook
        ? '_Secret params show by reference, never by value._'
        : '_The runbook was not known where the run started: values of params whose names look secret are masked._',
    );
  }
  return fitLines(lines, DETAILS_MAX_BYTES);
}
