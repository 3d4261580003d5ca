// Pure (workflow-safe). Typed params: inputs from the CLI (strings), the UI's JSON (typed) and alert labels
// (strings) are coerced to the declared type and checked before any step runs. Errors name the param.
import ms from 'ms';
import { CODES, type Code } from './problems';
import type { ParamDoc } from './schema';
import { DURATION_PATTERN } from './schema';
import { parseSelector } from './selector';
import { didYouMean } from './suggest';

export type ParamValue = string | number | boolean | (string | number)[];

export interface ParamError {
  param: string;
  message: string;
  code: Code;
}

type Result = { ok: true; value: ParamValue } | { ok: false; message: string; code: Code };

const fail = (message: string, code: Code): Result => ({ ok: false, message, code });

/** A short rendering of an input value for a message (objects and lists by kind only: they may be huge or deep). */
function show(value: unknown): string {
  if (Array.isArray(value)) return `a list of ${value.length} items`;
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  const text =
    typeof value === 'string' ? JSON.stringify(value.length > 100 ? value.slice(0, 100) : value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Anchors a user pattern so it must match the whole value. */
function fullMatch(pattern: string, value: string): boolean {
  return new RegExp(`^(?:${pattern})$`, 'u').test(value);
}

function checkString(spec: ParamDoc, value: string): Result {
  if (value.includes('\u0000')) return fail('must not contain NUL characters', CODES.inputType);
  if (spec.pattern !== undefined && !fullMatch(spec.pattern, value)) {
    return fail(`${show(value)} does not match the pattern ${spec.pattern}`, CODES.inputPattern);
  }
  if (spec.min !== undefined && value.length < spec.min)
    return fail(`must be at least ${spec.min} characters, got ${value.length}`, CODES.inputRange);
  if (spec.max !== undefined && value.length > spec.max)
    return fail(`must be at most ${spec.max} characters, got ${value.length}`, CODES.inputRange);
  return { ok: true, value };
}

function toInteger(spec: ParamDoc, value: unknown): Result {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^-?\d+$/.test(value.trim())) n = Number(value.trim());
  else return fail(`expected an integer, got ${show(value)}`, CODES.inputType);
  if (!Number.isSafeInteger(n)) return fail(`expected an integer, got ${show(value)}`, CODES.inputType);
  if (spec.min !== undefined && n < spec.min) return fail(`must be at least ${spec.min}, got ${n}`, CODES.inputRange);
  if (spec.max !== undefined && n > spec.max) return fail(`must be at most ${spec.max}, got ${n}`, CODES.inputRange);
  return { ok: true, value: n };
}

const TRUE = ['true', 'yes', 'on', '1'];
const FALSE = ['false', 'no', 'off', '0'];

/** Coerces and checks one input against its declaration. `secretNames` are the runbook's declared secrets. */
export function coerceParam(spec: ParamDoc, value: unknown, secretNames: readonly string[]): Result {
  switch (spec.type) {
    case 'string':
      if (typeof value !== 'string' && typeof value !== 'number')
        return fail(`expected a string, got ${show(value)}`, CODES.inputType);
      return checkString(spec, String(value));
    case 'integer':
      return toInteger(spec, value);
    case 'boolean': {
      if (typeof value === 'boolean') return { ok: true, value };
      const s = String(value).trim().toLowerCase();
      if (TRUE.includes(s)) return { ok: true, value: true };
      if (FALSE.includes(s)) return { ok: true, value: false };
      return fail(`expected true or false, got ${show(value)}`, CODES.inputType);
    }
    case 'enum': {
      const values = spec.values ?? [];
      if (typeof value !== 'string' || !values.includes(value))
        return fail(`expected one of ${values.join(', ')}, got ${show(value)}`, CODES.inputEnum);
      return { ok: true, value };
    }
    case 'duration':
      if (
        typeof value !== 'string' ||
        !new RegExp(DURATION_PATTERN).test(value) ||
        ms(value as ms.StringValue) === undefined
      ) {
        return fail(`expected a duration like 30s, 5m or 2h, got ${show(value)}`, CODES.inputType);
      }
      return { ok: true, value };
    case 'secret': {
      const m = typeof value === 'string' ? /^secret:([a-z][a-z0-9_]*)$/.exec(value) : null;
      if (!m) return fail('expected a secret reference like secret:NAME (never the secret itself)', CODES.inputSecret);
      if (!secretNames.includes(m[1]!))
        return fail(`secret "${m[1]}" is not declared in the runbook's secrets`, CODES.inputSecret);
      return { ok: true, value: value as string };
    }
    case 'targets': {
      if (typeof value !== 'string' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
        return fail(
          `expected a target selector (a string, or a list of strings), got ${show(value)}`,
          CODES.inputTargets,
        );
      }
      const text = Array.isArray(value) ? value.join(',') : value;
      if (spec.pattern !== undefined && !fullMatch(spec.pattern, text))
        return fail(`${show(text)} does not match the pattern ${spec.pattern}`, CODES.inputPattern);
      const parsed = parseSelector(text);
      if (!parsed.ok) return fail(parsed.message, CODES.inputTargets);
      return { ok: true, value: text };
    }
    case 'list': {
      let items: unknown[];
      if (Array.isArray(value)) items = value;
      else if (typeof value === 'string') items = value.trim() === '' ? [] : value.split(',').map((s) => s.trim());
      else return fail(`expected a list, got ${show(value)}`, CODES.inputType);
      if (spec.min !== undefined && items.length < spec.min)
        return fail(`must have at least ${spec.min} items, got ${items.length}`, CODES.inputRange);
      if (spec.max !== undefined && items.length > spec.max)
        return fail(`must have at most ${spec.max} items, got ${items.length}`, CODES.inputRange);
      const out: (string | number)[] = [];
      for (const [i, item] of items.entries()) {
        const r =
          spec.items === 'integer'
            ? toInteger({ type: 'integer' }, item)
            : typeof item === 'string'
              ? checkString({ type: 'string', pattern: spec.pattern }, item)
              : fail(`expected a string, got ${show(item)}`, CODES.inputType);
        if (!r.ok) return fail(`item ${i + 1}: ${r.message}`, r.code);
        out.push(r.value as string | number);
      }
      return { ok: true, value: out };
    }
  }
}

/** Whether a param must be given: `required`, else true when it has no default. */
export function isRequired(spec: ParamDoc): boolean {
  return spec.required ?? spec.default === undefined;
}

export interface CoercedParams {
  values: Record<string, ParamValue>;
  errors: ParamError[];
}

/**
 * Coerces all inputs: unknown names, missing required params and bad values are errors (all of them reported);
 * defaults fill the rest.
 */
export function coerceParams(
  specs: Record<string, ParamDoc>,
  inputs: Record<string, unknown>,
  secretNames: readonly string[],
): CoercedParams {
  const values: Record<string, ParamValue> = {};
  const errors: ParamError[] = [];
  const names = Object.keys(specs);
  for (const name of Object.keys(inputs)) {
    if (!Object.prototype.hasOwnProperty.call(specs, name)) {
      errors.push({
        param: name,
        message: `unknown param${didYouMean(name, names)}; this runbook takes: ${names.join(', ') || 'no params'}`,
        code: CODES.inputUnknown,
      });
    }
  }
  for (const [name, spec] of Object.entries(specs)) {
    const given = Object.prototype.hasOwnProperty.call(inputs, name) ? inputs[name] : undefined;
    const raw = given === undefined ? spec.default : given;
    if (raw === undefined) {
      if (isRequired(spec))
        errors.push({
          param: name,
          message: `required, but not given${spec.description ? ` (${spec.description})` : ''}`,
          code: CODES.inputMissing,
        });
      continue;
    }
    const r = coerceParam(spec, raw, secretNames);
    if (r.ok) values[name] = r.value;
    else errors.push({ param: name, message: r.message, code: r.code });
  }
  return { values, errors };
}
