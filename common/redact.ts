// Node side. The process-wide set of secret values seen so far, and redaction of them from any text or value:
// logs (pino hooks), error messages and captured output pass through here.

const known = new Set<string>();
/** `known`, longest first (so a secret containing another is masked whole); rebuilt only when one is added. */
let ordered: string[] = [];
const MASK = '***';

function add(value: string): void {
  if (value.length < 4 || known.has(value)) return;
  known.add(value);
  ordered = [...known].sort((a, b) => b.length - a.length);
}

/** Registers a resolved secret value so every later redaction hides it. Very short values are not tracked. */
export function rememberSecret(value: string): void {
  add(value);
  // A value with a trailing newline is often printed without it, and vice versa.
  add(value.replace(/\s+$/, ''));
}

/** Replaces every known secret value in `text` with ***. */
export function redact(text: string): string {
  if (known.size === 0 || text.length < 4) return text;
  let out = text;
  for (const secret of ordered) {
    if (out.includes(secret)) out = out.split(secret).join(MASK);
  }
  return out;
}

/** Redacts every string inside a value (objects and arrays are copied). */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v)) as T;
  if (value instanceof Error) return value;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)])) as T;
  }
  return value;
}

/** For tests: forget every value. */
export function forgetSecrets(): void {
  known.clear();
  ordered = [];
}
