// Node side (ajv generates code). Schema validation with ajv (draft 2020-12), every error at once, each turned
// into a located, readable problem: unknown keys with "did you mean", wrong types with what was found.
import crypto from 'node:crypto';
import path from 'node:path';
import Ajv2020, { type ErrorObject, type Options, type ValidateFunction } from 'ajv/dist/2020';
import { CODES, type Problem } from './problems';
import { didYouMean } from './suggest';
import { DURATION_PATTERN, ID_PATTERN, NAME_PATTERN, PERCENT_PATTERN } from './schema';
import type { FieldPath, YamlSource } from './yaml-source';

/** The validator options, the same for validators compiled here and those generated at build time. */
export function newAjv(more: Options = {}): Ajv2020 {
  return new Ajv2020({ allErrors: true, verbose: true, strict: false, ...more });
}

/** Where `npm run build` writes the generated validators (validators-build.ts). */
export const PRECOMPILED_FILE = path.join(__dirname, 'validators.generated.js');

/** A schema's name in the generated module: the hash of its JSON, so a changed schema never meets a stale one. */
export function schemaKey(schema: object): string {
  return `v${crypto.createHash('sha256').update(JSON.stringify(schema)).digest('hex').slice(0, 32)}`;
}

let ajv: Ajv2020 | undefined;
let precompiled: Record<string, ValidateFunction> | undefined;
const validators = new WeakMap<object, ValidateFunction>();

/** The generated validators, or none (not built: tests run from the sources). */
function loadPrecompiled(file: string): Record<string, ValidateFunction> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as Record<string, ValidateFunction>;
  } catch {
    return {};
  }
}

/** The validator of `schema`: generated at build time when there is one for exactly this schema, else compiled. */
export function validatorFor(schema: object): ValidateFunction {
  let v = validators.get(schema);
  if (!v) {
    precompiled ??= loadPrecompiled(PRECOMPILED_FILE);
    v = precompiled[schemaKey(schema)] ?? (ajv ??= newAjv()).compile(schema);
    validators.set(schema, v);
  }
  return v;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number') return Number.isInteger(value) ? `integer ${value}` : `number ${value}`;
  if (typeof value === 'string')
    return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value)}`;
  return `${typeof value} ${String(value)}`;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  null: 'null',
};

const PATTERN_NAMES: Record<string, string> = {
  [DURATION_PATTERN]: 'a duration like 500ms, 30s, 5m, 2h or 1d',
  [PERCENT_PATTERN]: 'a percentage like 25%',
  [ID_PATTERN]: 'an id of lowercase letters, digits and _, starting with a letter',
  [NAME_PATTERN]: 'a name of lowercase letters, digits and -, starting with a letter',
  '^secret:[a-z][a-z0-9_]*$': 'a secret reference like secret:db_password',
  '^0?[0-7]{3}$': 'an octal file mode like 0644',
};

/** What a (sub)schema accepts, in words. */
function describe(schema: Record<string, unknown>): string {
  if ('const' in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as Record<string, unknown>[]).map(describe).join(' or ');
  if (typeof schema.pattern === 'string') return PATTERN_NAMES[schema.pattern] ?? `a string matching ${schema.pattern}`;
  if (typeof schema.type === 'string') return TYPE_NAMES[schema.type] ?? schema.type;
  return 'a valid value';
}

function toPath(instancePath: string): FieldPath {
  if (!instancePath) return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function convert(err: ErrorObject, src: YamlSource): Problem | undefined {
  const path = toPath(err.instancePath);
  const parent = (err.parentSchema ?? {}) as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = String((err.params as { additionalProperty: string }).additionalProperty);
      if (parent.patternProperties) {
        const pattern = Object.keys(parent.patternProperties as object)[0] ?? '';
        return src.problem(
          [...path, key],
          `invalid name "${key}": expected ${PATTERN_NAMES[pattern] ?? `a name matching ${pattern}`}`,
          CODES.badName,
          { at: 'key' },
        );
      }
      const known = Object.keys((parent.properties ?? {}) as object);
      return src.problem(
        [...path, key],
        `unknown key "${key}"${didYouMean(key, known)}; expected one of: ${known.join(', ')}`,
        CODES.unknownKey,
        { at: 'key' },
      );
    }
    case 'required': {
      const missing = String((err.params as { missingProperty: string }).missingProperty);
      const p = src.problem(path, `missing required key "${missing}"`, CODES.missingField, {
        at: path.length ? 'key' : 'value',
      });
      return { ...p, path: p.path ? `${p.path}.${missing}` : missing };
    }
    case 'type':
      return src.problem(path, `expected ${describe(parent)}, found ${kindOf(err.data)}`, CODES.wrongType);
    case 'const':
      return src.problem(
        path,
        `expected ${JSON.stringify(parent.const)}, found ${kindOf(err.data)}`,
        CODES.notAllowedValue,
      );
    case 'anyOf': {
      const branches = (parent.anyOf ?? []) as Record<string, unknown>[];
      if (branches.length > 0 && branches.every((b) => 'const' in b)) {
        const values = branches.map((b) => String(b.const));
        const hint = typeof err.data === 'string' ? didYouMean(err.data, values) : '';
        return src.problem(
          path,
          `expected one of ${values.join(', ')}; found ${kindOf(err.data)}${hint}`,
          CODES.notAllowedValue,
        );
      }
      return src.problem(path, `expected ${describe(parent)}; found ${kindOf(err.data)}`, CODES.wrongType);
    }
    case 'pattern':
      return src.problem(path, `expected ${describe(parent)}; found ${kindOf(err.data)}`, CODES.badFormat);
    case 'minItems':
    case 'maxItems': {
      const limit = (err.params as { limit: number }).limit;
      const n = Array.isArray(err.data) ? err.data.length : 0;
      return src.problem(
        path,
        `needs ${err.keyword === 'minItems' ? 'at least' : 'at most'} ${limit} item${limit === 1 ? '' : 's'}; found ${n === 0 ? 'an empty list' : `${n}`}`,
        CODES.outOfRange,
      );
    }
    case 'minimum':
    case 'maximum':
    case 'minLength':
      return src.problem(path, `${err.message ?? 'out of range'}; found ${kindOf(err.data)}`, CODES.outOfRange);
    default:
      return src.problem(path, err.message ?? 'invalid', CODES.wrongType);
  }
}

/**
 * Validates `src.data` against `schema`, returning every problem, located. Errors inside a failed `anyOf`
 * are folded into one message for the field.
 */
export function validateAgainstSchema(schema: object, src: YamlSource): Problem[] {
  const validate = validatorFor(schema);
  if (validate(src.data)) return [];
  const errors = validate.errors ?? [];
  const anyOfPaths = errors.filter((e) => e.keyword === 'anyOf').map((e) => e.schemaPath);
  const kept = errors.filter((e) =>
    e.keyword === 'anyOf'
      ? // A nested anyOf that failed is more specific than the one around it.
        !errors.some(
          (o) =>
            o.keyword === 'anyOf' &&
            o.schemaPath.startsWith(`${e.schemaPath}/`) &&
            o.instancePath.startsWith(`${e.instancePath}/`),
        )
      : !anyOfPaths.some((p) => e.schemaPath.startsWith(`${p}/`)),
  );
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const err of kept) {
    const p = convert(err, src);
    const key = p && `${p.line}:${p.col}:${p.path}:${p.message}`;
    if (p && key && !seen.has(key)) {
      seen.add(key);
      problems.push(p);
    }
  }
  return problems;
}
