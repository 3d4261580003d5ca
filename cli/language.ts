// Node side. `runbook validate`, `lint`, `plan` and `docs`: everything about a runbook that runs nothing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { quote } from 'shell-quote';
import YAML from 'yaml';
import { UserError } from '../common/errors';
import { alertParams, ruleMatches } from '../dsl/alert-rule';
import { maskSecrets } from '../dsl/expr';
import { INVENTORY_LIMITS, loadInventoryText } from '../dsl/inventory';
import { loadCalendarsText } from '../dsl/calendars';
import { lintRunbook } from '../dsl/lint';
import { loadRunbookFile, resolveRunbookPath } from '../dsl/load';
import { planRun, type Plan, type PlannedStep } from '../dsl/plan';
import { loadValidRunbook, PrepareError, prepareRunbook, targetsProblem } from '../dsl/prepare';
import { formatProblem, type Problem } from '../dsl/problems';
import { runbookMarkdown } from '../dsl/docs';
import type { RenderedAction } from '../dsl/render';
import { checkYamlLimits, tooLargeProblem } from '../dsl/yaml-source';
import { runbookDirFromEnv, inventoryFor } from '../worker/defaults';
import { paramInputs, parseParamPairs, type ParamOptions } from './params';

/** Files a path stands for: a file itself, or the YAML (and .ini) files directly in a directory. */
function expand(p: string): string[] {
  if (!fs.existsSync(p)) throw new UserError(`${p}: no such file or directory.`);
  if (!fs.statSync(p).isDirectory()) return [p];
  return fs
    .readdirSync(p)
    .filter((f) => /\.(ya?ml|ini)$/.test(f))
    .sort()
    .map((f) => path.join(p, f));
}

/**
 * Inventory, calendar file or runbook? Runbooks have apiVersion/kind: Runbook/steps; calendar files kind: Calendars;
 * inventories hosts, all, or INI sections.
 */
function fileKind(file: string, text: string): 'inventory' | 'calendars' | 'runbook' {
  if (/\.ini$/.test(file)) return 'inventory';
  // Too large or too deep to parse safely: the runbook loader reports it.
  if (checkYamlLimits(file, text, INVENTORY_LIMITS).problem) return 'runbook';
  try {
    const doc = YAML.parse(text, { uniqueKeys: false }) as Record<string, unknown> | null;
    if (!doc || typeof doc !== 'object') return 'runbook';
    if (doc.kind === 'Calendars' || (!('kind' in doc) && 'calendars' in doc)) return 'calendars';
    if (doc.kind === 'Runbook' || 'apiVersion' in doc || 'steps' in doc) return 'runbook';
    return doc.kind === 'Inventory' || 'hosts' in doc || 'all' in doc ? 'inventory' : 'runbook';
  } catch {
    return 'runbook';
  }
}

export function checkFile(file: string, withLint: boolean): Problem[] {
  const bytes = fs.statSync(file).size;
  if (bytes > INVENTORY_LIMITS.maxBytes) return [tooLargeProblem(file, bytes, INVENTORY_LIMITS)];
  const text = fs.readFileSync(file, 'utf8');
  const kind = fileKind(file, text);
  if (kind === 'inventory') return loadInventoryText(file, text).problems;
  if (kind === 'calendars') return loadCalendarsText(file, text).problems;
  const loaded = loadRunbookFile(file);
  if (!withLint || !loaded.runbook) return loaded.problems;
  return [
    ...loaded.problems,
    ...lintRunbook(loaded.runbook, (p, m, c, o) => loaded.source.problem(p, m, c, { ...o, severity: 'warning' })),
  ];
}

/** Prints every problem of every file; resolves to the exit code (1 on any error, or any warning with --strict). */
export function runValidate(paths: string[], opts: { lint: boolean; strict?: boolean; json?: boolean }): number {
  const files = (paths.length ? paths : [runbookDirFromEnv()]).flatMap(expand);
  const problems = files.flatMap((f) => checkFile(f, opts.lint));
  const errors = problems.filter((p) => p.severity === 'error').length;
  const warnings = problems.length - errors;
  if (opts.json) console.log(JSON.stringify({ files: files.length, errors, warnings, problems }, null, 2));
  else {
    for (const p of problems) console.log(formatProblem(p));
    console.log(
      `${files.length} file${files.length === 1 ? '' : 's'} checked: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`,
    );
  }
  return errors > 0 || (opts.strict && warnings > 0) ? 1 : 0;
}

/**
 * Runs `fn`, turning a PrepareError into the operator's error: exit 1 for an invalid runbook, params, inventory
 * or targets, the loader's own error when a file cannot be read (exit 2), an unexpected error as it is.
 */
function asUserError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof PrepareError)) throw err;
    if (err.cause === undefined) throw new UserError(err.message, { exitCode: 1 });
    throw err.cause;
  }
}

export interface PlanOptions extends ParamOptions {
  inventory?: string;
  json: boolean;
  alertLabel?: string[];
}

/** The plan of a runbook (by name or path) for the given params and inventory; a UserError on any problem. */
export function buildPlan(name: string, opts: PlanOptions): Plan {
  const runbookFile = resolveRunbookPath(name, runbookDirFromEnv());
  const run = {
    id: '<run id>',
    initiator: os.userInfo().username,
    trigger: opts.alertLabel?.length ? 'alert' : 'manual',
  };
  const alert = {
    labels: Object.fromEntries(
      Object.entries(parseParamPairs(opts.alertLabel ?? [], '--alert-label')).map(([k, v]) => [k, String(v)]),
    ),
    annotations: {},
  };
  const given = paramInputs(opts);
  return asUserError(() => {
    // With alert labels, the params are what the runbook's alert rule makes of them (-p still overrides).
    const params = opts.alertLabel?.length ? { ...paramsFromAlert(runbookFile, alert.labels), ...given } : given;
    const prepared = prepareRunbook({
      runbookFile,
      params,
      run,
      alert,
      paramsNameFile: true,
      inventoryFile: () => inventoryFor(opts.inventory),
    });
    const result = planRun(prepared);
    if (!result.ok) throw targetsProblem(prepared.runbook, result.errors);
    return result.plan;
  });
}

/** The params an alert with these labels gives the runbook's `on.alert` rule; a UserError when it would not start. */
function paramsFromAlert(runbookFile: string, labels: Record<string, string>): Record<string, unknown> {
  const { runbook: rb } = loadValidRunbook(runbookFile);
  const rule = rb.on?.alert;
  if (!rule) return {}; // no rule: the labels only fill `alert` for the runbook's expressions
  if (!ruleMatches(rule, labels))
    throw new UserError(
      `These labels do not match the alert rule of ${rb.metadata.name} (${JSON.stringify(rule.match)}): no alert with them would start it.`,
      { exitCode: 1 },
    );
  const view = { labels, annotations: {}, fingerprint: 'plan', status: 'firing', source: 'plan' };
  const { values, errors } = alertParams(rb, view);
  if (errors.length)
    throw new UserError(
      `An alert with these labels would be refused (HTTP 422):\n${errors.map((e) => `params.${e.param}: ${e.message} [${e.code}]`).join('\n')}`,
      { exitCode: 1 },
    );
  return values;
}

function describeAction(a: RenderedAction | undefined): string {
  if (!a) return '';
  switch (a.kind) {
    case 'ssh': {
      const prefix = a.login
        ? `[logs in as ${a.login.user} with <secret:${a.login.password}>] `
        : a.user
          ? `[as ${a.user}] `
          : a.sudo
            ? '[as root] '
            : '';
      const env = Object.entries(a.env)
        .map(([k, v]) => `${k}=${quote([v])} `)
        .join('');
      const where = a.cwd ? ` (in ${a.cwd})` : '';
      // Several lines (a script, a command written as a YAML block) are shown as a block, one `|` line each.
      const block = (title: string, text: string) =>
        `${title}:\n${text
          .trimEnd()
          .split('\n')
          .map((l) => `          | ${l}`)
          .join('\n')}`;
      if (a.command !== undefined)
        return a.command.trimEnd().includes('\n')
          ? block(`$ ${prefix}${env}${where ? `${where.trim()} ` : ''}`.trimEnd(), a.command)
          : `$ ${prefix}${env}${a.command}${where}`;
      if (a.upload) return `upload ${a.upload.src} -> ${a.upload.dest} (mode ${a.upload.mode})`;
      return block(`script (${prefix || 'bash'}${where})`, a.script ?? '');
    }
    case 'http': {
      // Masked before JSON.stringify, which would escape the secret tokens' NUL delimiters out of maskSecrets' sight.
      const headers = Object.entries(a.headers)
        .map(([k, v]) => ` -H ${JSON.stringify(`${k}: ${maskSecrets(v)}`)}`)
        .join('');
      const auth = a.auth?.bearer
        ? ` (bearer ${a.auth.bearer})`
        : a.auth?.basic
          ? ` (basic ${a.auth.basic.user}:${a.auth.basic.password})`
          : '';
      const body =
        a.json !== undefined
          ? ` json=${JSON.stringify(maskDeep(a.json))}`
          : a.body !== undefined
            ? ` body=${JSON.stringify(maskSecrets(a.body))}`
            : '';
      return `${a.method} ${a.url}${headers}${auth}${body} -> expect ${a.expectStatus.join('|')}${a.tlsVerify ? '' : ' (TLS NOT verified)'}`;
    }
    case 'sleep':
      return `sleep ${a.duration}`;
    case 'approval':
      return `approval: ${a.quorum} of ${[...a.users, ...a.groups.map((g) => `group:${g}`)].join(', ')} within ${a.timeout}, else ${a.onTimeout}: ${JSON.stringify(a.message)}`;
    case 'notify':
      return `notify ${a.channel}: ${JSON.stringify(a.message)}`;
    case 'runbook':
      return `runbook ${a.name} ${JSON.stringify(a.params)}`;
    case 'parallel':
      return `parallel${a.limit ? ` (at most ${a.limit} at once)` : ''}:`;
  }
}

function stepLines(steps: PlannedStep[], indent: string): string[] {
  const width = Math.max(...steps.map((s) => s.id.length), 4);
  return steps.flatMap((s, i) => {
    const flags = [
      s.when === 'runtime'
        ? 'if condition (decided at run time)'
        : s.when === false
          ? 'SKIPPED (when is false)'
          : undefined,
      s.timeout && `timeout ${s.timeout}`,
      s.retry && s.retry > 1 && `${s.retry} attempts`,
      s.until && `until ${s.until.condition ?? 'ok'} every ${s.until.every} for ${s.until.timeout}`,
      s.continueOnError && 'continue on error',
    ].filter(Boolean);
    const lines = [
      `${indent}${String(i + 1).padStart(2)}. ${s.id.padEnd(width)}  ${s.kind.padEnd(8)} ${s.on ? '' : describeAction(s.action)}${flags.length ? `   [${flags.join('; ')}]` : ''}`,
    ];
    for (const d of s.on ?? []) lines.push(`${indent}      on ${d.target}: ${describeAction(d.action)}`);
    if (s.children) lines.push(...stepLines(s.children, `${indent}      `));
    if (s.rollback?.length)
      lines.push(
        `${indent}      rollback of ${s.id} (newest first):`,
        ...stepLines([...s.rollback].reverse(), `${indent}      `),
      );
    return lines;
  });
}

export function formatPlan(plan: Plan): string {
  const out: string[] = [];
  out.push(
    `Plan for ${plan.runbook} (sha256 ${plan.contentHash.slice(0, 12)}), risk ${plan.risk}. Nothing has been run.`,
  );
  out.push(
    `Params:   ${
      Object.entries(plan.params)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(' ') || '(none)'
    }`,
  );
  if (plan.selector !== undefined)
    out.push(`Targets:  ${plan.targets.length} from ${JSON.stringify(plan.selector)}: ${plan.targets.join(', ')}`);
  const s = plan.strategy;
  out.push(
    `Strategy: ${s.type}${s.type === 'rolling' ? `, ${s.batches.length} batch${s.batches.length === 1 ? '' : 'es'} of ${s.batches.map((b) => b.length).join(' + ')}` : s.limit ? `, at most ${s.limit} at once` : ', all at once'}; ` +
      `stop after more than ${s.maxFailures} failed target${s.maxFailures === 1 ? '' : 's'}; host locks: ${plan.hostLocks}`,
  );
  if (plan.approval) out.push(`Gate:     ${describeAction(plan.approval)}`);
  const byTarget = new Map(plan.perTarget.map((t) => [t.target, t.steps]));
  const rollback = new Map(plan.rollback.map((t) => [t.target, t.steps]));
  const groups = plan.selector === undefined ? [[null]] : s.batches;
  groups.forEach((batch, bi) => {
    if (plan.selector !== undefined) out.push('', `Batch ${bi + 1}/${groups.length}: ${batch.join(', ')}`);
    for (const target of batch) {
      if (target !== null) out.push(`  ${target}`);
      out.push(...stepLines(byTarget.get(target) ?? [], '    '));
    }
  });
  const rb = rollback.get(plan.perTarget[0]?.target ?? null) ?? [];
  if (rb.length) {
    out.push('', 'Rollback, on a failure or cancel (newest first), per affected target:');
    for (const [target, steps] of rollback) {
      if (target !== null) out.push(`  ${target}`);
      out.push(...stepLines(steps, '    '));
    }
  }
  return maskSecrets(out.join('\n'));
}

function maskDeep(value: unknown): unknown {
  if (typeof value === 'string') return maskSecrets(value);
  if (Array.isArray(value)) return value.map(maskDeep);
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskDeep(v)]));
  return value;
}

export function runPlan(name: string, opts: PlanOptions): void {
  const plan = buildPlan(name, opts);
  console.log(opts.json ? JSON.stringify(maskDeep(plan), null, 2) : formatPlan(plan));
}

export function runDocs(name: string, opts: { output?: string }): void {
  const loaded = asUserError(() => loadValidRunbook(resolveRunbookPath(name, runbookDirFromEnv())));
  const md = runbookMarkdown(loaded.runbook, loaded.contentHash);
  if (opts.output) fs.writeFileSync(opts.output, md);
  else process.stdout.write(md);
}
