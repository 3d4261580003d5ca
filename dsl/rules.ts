// Pure. Cross-field rules a schema cannot say: unique step ids, one kind per step, references to
// params, steps, outputs and secrets that exist, expressions that parse, approvals for high-risk runbooks,
// param declarations that make sense.
import { matcherRegex } from './alert-rule';
import { checkExpression, ExpressionError, parseTemplate, references, ROOT_VARIABLES } from './expr';
import { coerceParam, coerceParams } from './params';
import { scheduleProblems } from './schedule-spec';
import { CODES, type Code, type Problem } from './problems';
import type { ParamDoc, RunbookDoc, StepDoc } from './schema';
import { STEP_KINDS } from './schema';
import { parseSelector } from './selector';
import { didYouMean } from './suggest';

export type FieldPath = (string | number)[];
export type Reporter = (
  path: FieldPath,
  message: string,
  code: Code,
  opts?: { at?: 'key' | 'value'; offset?: number },
) => Problem;

/** Every step with its path, in document (execution) order, nested parallel and rollback steps included. */
export function walkSteps(rb: RunbookDoc): { step: StepDoc; path: FieldPath; inRollback: boolean }[] {
  const out: { step: StepDoc; path: FieldPath; inRollback: boolean }[] = [];
  const visit = (steps: StepDoc[] | undefined, base: FieldPath, inRollback: boolean) => {
    (steps ?? []).forEach((step, i) => {
      const path = [...base, i];
      out.push({ step, path, inRollback });
      visit(step.parallel?.steps, [...path, 'parallel', 'steps'], inRollback);
      visit(step.rollback, [...path, 'rollback'], true);
    });
  };
  visit(rb.steps, ['steps'], false);
  visit(rb.rollback, ['rollback'], true);
  return out;
}

/** The kind keys a step sets. */
export function stepKinds(step: StepDoc): string[] {
  return STEP_KINDS.filter((k) => step[k] !== undefined);
}

const TARGET_FIELDS = ['name', 'address', 'port', 'user', 'zone', 'labels', 'vars'];
/** Keys whose strings are not templates. */
const PLAIN_KEYS = new Set([
  'id',
  'name',
  'description',
  'when',
  'condition',
  'zone',
  'rollback',
  'parallel',
  'outputs',
]);

/** Every template string inside a step (its own fields only; child steps are visited on their own). */
function templateStrings(value: unknown, path: FieldPath, out: { text: string; path: FieldPath }[], top = true): void {
  if (typeof value === 'string') out.push({ text: value, path });
  else if (Array.isArray(value)) value.forEach((v, i) => templateStrings(v, [...path, i], out, false));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (top && PLAIN_KEYS.has(k)) continue;
      templateStrings(v, [...path, k], out, false);
    }
  }
}

interface Scope {
  params: string[];
  secrets: string[];
  /** Step ids defined before this point, with their declared outputs. */
  steps: Map<string, string[]>;
  allowResult: boolean;
  /** Every step id in the runbook, to tell "later" from "unknown". */
  allIds: string[];
}

function checkExpr(source: string, path: FieldPath, offset: number, scope: Scope, report: Reporter): void {
  try {
    checkExpression(source);
  } catch (err) {
    const overLimit = err instanceof ExpressionError && err.overLimit;
    report(
      path,
      `${overLimit ? 'expression too complex' : 'invalid expression'}: ${(err as Error).message}`,
      overLimit ? CODES.expressionTooComplex : CODES.badExpression,
      { offset },
    );
    return;
  }
  for (const ref of references(source)) {
    const [root, name, third, fourth] = ref;
    if (!(ROOT_VARIABLES as readonly string[]).includes(root!) || (root === 'result' && !scope.allowResult)) {
      const allowed = ROOT_VARIABLES.filter((r) => r !== 'result' || scope.allowResult);
      report(
        path,
        `unknown variable "${root}" in \`${source}\`${didYouMean(root!, allowed)}; expressions start from ${allowed.join(', ')}`,
        CODES.unknownVariable,
        { offset },
      );
    } else if (root === 'params' && name !== undefined && !scope.params.includes(name)) {
      report(path, `unknown param "${name}" in \`${source}\`${didYouMean(name, scope.params)}`, CODES.unknownParam, {
        offset,
      });
    } else if (root === 'secrets' && name !== undefined && !scope.secrets.includes(name)) {
      report(
        path,
        `unknown secret "${name}" in \`${source}\`${didYouMean(name, scope.secrets)}; declare it under secrets`,
        CODES.unknownSecret,
        { offset },
      );
    } else if ((root === 'target' || root === 'origin') && name !== undefined && !TARGET_FIELDS.includes(name)) {
      report(
        path,
        `unknown ${root} field "${name}" in \`${source}\`${didYouMean(name, TARGET_FIELDS)}; a target has ${TARGET_FIELDS.join(', ')}`,
        CODES.unknownVariable,
        { offset },
      );
    } else if (root === 'steps' && name !== undefined) {
      const outputs = scope.steps.get(name);
      if (!outputs) {
        const why = scope.allIds.includes(name)
          ? `step "${name}" runs after this one`
          : `unknown step "${name}"${didYouMean(name, [...scope.steps.keys()])}`;
        report(path, `${why} in \`${source}\`; only earlier steps can be referenced`, CODES.unknownStep, { offset });
      } else if (third === 'outputs' && fourth !== undefined && !outputs.includes(fourth)) {
        report(
          path,
          `step "${name}" has no output "${fourth}"${didYouMean(fourth, outputs)}${outputs.length ? `; it declares ${outputs.join(', ')}` : '; it declares no outputs'}`,
          CODES.unknownOutput,
          { offset },
        );
      }
    }
  }
}

function checkTemplate(text: string, path: FieldPath, scope: Scope, report: Reporter): void {
  let segments;
  try {
    segments = parseTemplate(text);
  } catch (err) {
    report(path, `invalid template: ${(err as Error).message}`, CODES.badExpression, {
      offset: err instanceof ExpressionError ? err.offset : 0,
    });
    return;
  }
  for (const seg of segments) if (seg.kind === 'expr') checkExpr(seg.source, path, seg.offset, scope, report);
}

function checkParams(params: Record<string, ParamDoc>, secrets: string[], report: Reporter): void {
  for (const [name, spec] of Object.entries(params)) {
    const at: FieldPath = ['params', name];
    if (spec.type === 'enum' && !spec.values)
      report(at, 'an enum param needs "values"', CODES.paramShape, { at: 'key' });
    if (spec.type !== 'enum' && spec.values)
      report([...at, 'values'], `"values" only applies to enum params, not ${spec.type}`, CODES.paramShape, {
        at: 'key',
      });
    if (spec.type !== 'list' && spec.items)
      report([...at, 'items'], `"items" only applies to list params, not ${spec.type}`, CODES.paramShape, {
        at: 'key',
      });
    if (spec.pattern !== undefined) {
      try {
        new RegExp(spec.pattern, 'u');
      } catch (err) {
        report(
          [...at, 'pattern'],
          `invalid regular expression: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`,
          CODES.badPattern,
        );
        continue;
      }
    }
    if (spec.default !== undefined && !(spec.type === 'enum' && !spec.values)) {
      const r = coerceParam(spec, spec.default, secrets);
      if (!r.ok) report([...at, 'default'], `default does not fit the param: ${r.message}`, CODES.badDefault);
    }
  }
}

/** All cross-field problems of a schema-valid runbook. */
export function checkRules(rb: RunbookDoc, report: Reporter): void {
  const params = Object.keys(rb.params ?? {});
  const secrets = Object.keys(rb.secrets ?? {});
  checkParams(rb.params ?? {}, secrets, report);
  for (const [name, decl] of Object.entries(rb.secrets ?? {})) {
    if (decl.generate && decl.provider !== 'file')
      report(
        ['secrets', name, 'generate'],
        `a generated secret is stored through its provider, and only the file provider can store (this one is ${decl.provider})`,
        CODES.unknownSecret,
      );
    else if (decl.generate && (decl.key.startsWith('/') || decl.key.split(/[\\/]/).includes('..')))
      report(
        ['secrets', name, 'key'],
        "a generated secret's file is relative to the worker's secrets directory (RUNBOOK_SECRETS_DIR), without `..`",
        CODES.unknownSecret,
      );
  }

  if (rb.targets !== undefined) {
    const scope: Scope = { params, secrets, steps: new Map(), allowResult: false, allIds: [] };
    try {
      const segs = parseTemplate(rb.targets);
      if (!segs.some((s) => s.kind === 'expr')) {
        const parsed = parseSelector(rb.targets);
        if (!parsed.ok) report(['targets'], parsed.message, CODES.badSelector);
      }
    } catch {
      /* reported by checkTemplate */
    }
    checkTemplate(rb.targets, ['targets'], scope, report);
  }

  // Alert triggers fill params from the alert: each key must be a param, each value a valid template.
  for (const [key, value] of Object.entries(rb.on?.alert?.params ?? {})) {
    const at: FieldPath = ['on', 'alert', 'params', key];
    if (!params.includes(key))
      report(
        at,
        `unknown param "${key}"${didYouMean(key, params)}; an alert can only fill declared params`,
        CODES.unknownParam,
        { at: 'key' },
      );
    else if (rb.params?.[key]?.type === 'secret')
      report(
        at,
        'a secret param cannot be filled from an alert (a label could pick any declared secret)',
        CODES.paramShape,
        {
          at: 'key',
        },
      );
    checkTemplate(value, at, { params, secrets, steps: new Map(), allowResult: false, allIds: [] }, report);
  }

  // A schedule: one form, valid cron/calendar/zone/durations, and params a run would accept.
  const schedule = rb.on?.schedule;
  if (schedule) {
    for (const p of scheduleProblems(schedule))
      report(['on', 'schedule', ...p.path], p.message, CODES.badSchedule, p.path.length ? {} : { at: 'key' });
    const given = schedule.params ?? {};
    for (const e of coerceParams(rb.params ?? {}, given, Object.keys(rb.secrets ?? {})).errors) {
      const inGiven = Object.prototype.hasOwnProperty.call(given, e.param);
      report(
        inGiven ? ['on', 'schedule', 'params', e.param] : ['on', 'schedule'],
        `${inGiven ? '' : `param "${e.param}": `}${e.message}; a scheduled run has no one to ask`,
        e.code,
        { at: 'key' },
      );
    }
  }

  for (const [label, m] of Object.entries(rb.on?.alert?.match ?? {})) {
    const source =
      typeof m === 'object' ? ('regex' in m ? m.regex : 'notRegex' in m ? m.notRegex : undefined) : undefined;
    if (source === undefined) continue;
    try {
      matcherRegex(source);
    } catch (err) {
      report(
        ['on', 'alert', 'match', label, 'regex' in (m as object) ? 'regex' : 'notRegex'],
        `invalid regular expression: ${(err as Error).message.replace(/^Invalid regular expression: \/.*\/u?: /, '')}`,
        CODES.badPattern,
      );
    }
  }

  if (rb.metadata.risk === 'high' && !rb.approval && !rb.steps[0]?.approval) {
    report(
      ['metadata', 'risk'],
      'a high-risk runbook needs an approval before any change: add a top-level "approval" or make the first step an approval',
      CODES.approvalRequired,
    );
  }

  const seen = new Map<string, string>();
  const defined = new Map<string, string[]>();
  const mainIds = new Map<string, string[]>();
  const allIds = walkSteps(rb).map(({ step }) => step.id);
  for (const { step, path } of walkSteps(rb))
    if (path[0] === 'steps') mainIds.set(step.id, Object.keys(step.outputs ?? {}));
  for (const { step, path, inRollback } of walkSteps(rb)) {
    const where = path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`))
      .join('')
      .slice(1);
    const first = seen.get(step.id);
    if (first)
      report([...path, 'id'], `duplicate step id "${step.id}" (first used at ${first})`, CODES.duplicateStepId);
    else seen.set(step.id, where);

    const kinds = stepKinds(step);
    if (kinds.length === 0)
      report(path, `step "${step.id}" does nothing: give it exactly one of ${STEP_KINDS.join(', ')}`, CODES.stepKind);
    if (kinds.length > 1)
      report(
        [...path, kinds[1]!],
        `step "${step.id}" has ${kinds.join(' and ')}: a step does exactly one thing; split it`,
        CODES.stepKind,
        { at: 'key' },
      );
    if (step.ssh) {
      const actions = (['run', 'script', 'upload'] as const).filter((a) => step.ssh?.[a] !== undefined);
      if (actions.length !== 1) {
        report(
          [...path, 'ssh'],
          actions.length === 0
            ? 'an ssh step needs one of run, script, upload'
            : `an ssh step takes one of run, script, upload, not ${actions.join(' and ')}`,
          CODES.sshAction,
        );
      }
    }
    if (step.targets !== undefined && !step.targets.includes('${{')) {
      const parsed = parseSelector(step.targets);
      if (!parsed.ok) report([...path, 'targets'], parsed.message, CODES.badSelector);
    }
    if (step.http?.auth?.bearer)
      checkSecretRef(step.http.auth.bearer, [...path, 'http', 'auth', 'bearer'], secrets, report);
    if (step.http?.auth?.basic)
      checkSecretRef(step.http.auth.basic.password, [...path, 'http', 'auth', 'basic', 'password'], secrets, report);
    if (step.ssh?.login) {
      checkSecretRef(step.ssh.login.password, [...path, 'ssh', 'login', 'password'], secrets, report);
      // The account's own shell runs the command: it gets no secret (its startup files could read it).
      const used = [step.ssh.run ?? '', step.ssh.script ?? '', ...Object.values(step.ssh.env ?? {})].join('\n');
      if (/\$\{\{[^}]*\bsecrets\./.test(used) || Object.keys(step.ssh.env ?? {}).length > 0)
        report(
          [...path, 'ssh', 'login'],
          'a step that logs in as another account runs its command in that account: give it no secrets and no env',
          CODES.sshAction,
        );
      if (step.ssh.sudo || step.ssh.user !== undefined)
        report(
          [...path, 'ssh', 'login'],
          'a step that logs in as another account (login) runs as that account: drop sudo and user',
          CODES.sshAction,
        );
    }

    // Rollback steps may read any main step; others only earlier ones.
    const scope: Scope = {
      params,
      secrets,
      steps: inRollback ? new Map([...mainIds, ...defined]) : defined,
      allowResult: false,
      allIds,
    };
    if (step.when) checkExpr(step.when, [...path, 'when'], 0, scope, report);
    if (step.until?.condition)
      checkExpr(step.until.condition, [...path, 'until', 'condition'], 0, { ...scope, allowResult: true }, report);
    const strings: { text: string; path: FieldPath }[] = [];
    templateStrings(step, path, strings);
    for (const s of strings) {
      if (s.path.includes('auth')) continue;
      checkTemplate(s.text, s.path, scope, report);
    }
    defined.set(step.id, Object.keys(step.outputs ?? {}));
  }
}

function checkSecretRef(ref: string, path: FieldPath, secrets: string[], report: Reporter): void {
  const name = ref.slice('secret:'.length);
  if (!secrets.includes(name))
    report(path, `unknown secret "${name}"${didYouMean(name, secrets)}; declare it under secrets`, CODES.unknownSecret);
}
