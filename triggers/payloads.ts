// Node side, pure (no I/O; node:crypto for hashing). Alert deliveries from Alertmanager, Grafana and generic JSON
// webhooks, checked and normalised to one shape. Everything here is untrusted input: nothing throws, whatever the
// body; problems are lines naming the field (`alerts[2].labels.service: has control characters`), at most 10, and
// never quote a value back. Labels and annotations land in null-prototype objects, so `__proto__` or `constructor`
// sent as a label name stays an ordinary key.
import { createHash } from 'node:crypto';
import { MAX_INPUT_DEPTH, tooDeep } from '../dsl/run-input';
import type { Mapping } from './mappings';

/** One alert, whatever sent it. */
export interface NormalizedAlert {
  status: 'firing' | 'resolved';
  /** Names printable, at most 128 characters; values at most 4096 characters, no control characters. */
  labels: Record<string, string>;
  /** Values at most 16384 characters; new lines and tabs are the only control characters allowed (CRLF → LF). */
  annotations: Record<string, string>;
  /**
   * The sender's fingerprint when it matches /^[A-Za-z0-9._:-]{1,128}$/, else computed: the first 16 hex digits of
   * sha256 over the labels sorted by name (`name\0value\0...`). A generic mapping with `fingerprint` paths hashes
   * `MAPPING\0path\0value\0...` instead.
   */
  fingerprint: string;
  /** ISO 8601 as sent (a generic mapping's epoch number becomes ISO); Alertmanager's zero time means absent. */
  startsAt?: string;
  endsAt?: string;
  generatorURL?: string;
  /** 'alertmanager' | 'grafana' | the generic mapping's name. */
  source: string;
}

/** A delivery's alerts, or what is wrong with it. `truncatedAlerts` is set when the sender dropped some (> 0). */
export type ParsedDelivery =
  | { ok: true; alerts: NormalizedAlert[]; groupKey?: string; truncatedAlerts?: number }
  | { ok: false; problems: string[] };

/** Limits of one delivery. */
export const ALERT_LIMITS = {
  alerts: 1000,
  labels: 64,
  annotations: 64,
  nameLength: 128,
  labelValueLength: 4096,
  annotationValueLength: 16384,
  problems: 10,
} as const;

/** Control characters, C1 controls and Unicode line separators: they would forge lines in logs and audit tables. */
const CONTROL_CLASS = '[\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]';
const CONTROL = new RegExp(CONTROL_CLASS);
/** The same, new line and tab allowed (annotations are prose). */
const CONTROL_BUT_LF_TAB_CLASS = '[\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f\\u2028\\u2029]';
const CONTROL_BUT_LF_TAB = new RegExp(CONTROL_BUT_LF_TAB_CLASS);
const SENDER_FINGERPRINT = /^[A-Za-z0-9._:-]{1,128}$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
/** Go's zero time.Time, which Alertmanager and Grafana send for "not set". */
const ZERO_TIME = /^0001-01-01T00:00:00(\.0+)?Z$/;
const EPOCH = /^\d{1,16}(\.\d{1,9})?$/;
/** Epoch values at least this large are milliseconds (as seconds they would be past the year 5000). */
const EPOCH_MS_FROM = 1e11;
const MAX_DATE_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const MAX_URL_LENGTH = 4096;
const MAX_GROUP_KEY_LENGTH = 8192;

type Json = Record<string, unknown>;

/** Problem lines, at most ALERT_LIMITS.problems. */
class Problems {
  readonly lines: string[] = [];
  add(field: string, message: string): void {
    const line = `${field}: ${message}`;
    if (this.lines.length < ALERT_LIMITS.problems && !this.lines.includes(line)) this.lines.push(line);
  }
  get full(): boolean {
    return this.lines.length >= ALERT_LIMITS.problems;
  }
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const own = (o: object, k: string): unknown =>
  Object.prototype.hasOwnProperty.call(o, k) ? (o as Json)[k] : undefined;
const fail = (problems: string[]): ParsedDelivery => ({ ok: false, problems });

/** A key from the payload, safe to print in a field path: 64 characters at most, odd characters as `?`. */
function keyName(name: string): string {
  const safe = name.slice(0, 64).replace(/[^\w.:/@-]/g, '?');
  return name.length > 64 ? `${safe}...` : safe || '""';
}

/** `alerts[0].labels.x` from a JSON pointer as tooDeep returns it (only the first levels). */
function pointerField(pointer: string): string {
  const parts = pointer.split('/').slice(1, 5);
  const field = parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : `${i ? '.' : ''}${keyName(p)}`)).join('');
  return field || 'body';
}

/** Refuses a body nested too deep before anything walks it; undefined when it is fine. */
function depthProblem(body: unknown): ParsedDelivery | undefined {
  const deep = tooDeep(body);
  return deep === undefined ? undefined : fail([`${pointerField(deep)}: nested deeper than ${MAX_INPUT_DEPTH} levels`]);
}

/** Sorted labels hashed: the fingerprint of an alert whose sender gave none (or none usable). */
export function labelsFingerprint(labels: Record<string, string>): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(labels).sort()) hash.update(`${name}\0${labels[name]}\0`);
  return hash.digest('hex').slice(0, 16);
}

function checkName(p: Problems, at: string, name: string): boolean {
  if (name.length === 0) p.add(at, 'a name is empty');
  else if (name.length > ALERT_LIMITS.nameLength)
    p.add(`${at}.${keyName(name)}`, `the name is longer than ${ALERT_LIMITS.nameLength} characters`);
  else if (CONTROL.test(name)) p.add(`${at}.${keyName(name)}`, 'the name has control characters');
  else return true;
  return false;
}

type Kind = 'label' | 'annotation';

/** Windows line ends (Zabbix sends its messages with them) become new lines; a lone CR stays a problem. */
const crlf = <T>(v: T): T => (typeof v === 'string' ? (v.replace(/\r\n/g, '\n') as T) : v);

/** A label or annotation value's problem, or undefined. */
function valueProblem(kind: Kind, value: string): string | undefined {
  const max = kind === 'label' ? ALERT_LIMITS.labelValueLength : ALERT_LIMITS.annotationValueLength;
  if (value.length > max) return `longer than ${max} characters`;
  if (kind === 'label' && CONTROL.test(value)) return 'has control characters';
  if (kind === 'annotation' && CONTROL_BUT_LF_TAB.test(value))
    return 'has control characters other than new line and tab';
  return undefined;
}

/** An Alertmanager-style object of strings (labels or annotations), checked; undefined when it has problems. */
function readStrings(p: Problems, at: string, value: unknown, kind: Kind): Record<string, string> | undefined {
  if (!isObject(value)) {
    p.add(at, 'expected an object of strings');
    return undefined;
  }
  const entries = Object.entries(value);
  const max = kind === 'label' ? ALERT_LIMITS.labels : ALERT_LIMITS.annotations;
  if (entries.length > max) {
    p.add(at, `${entries.length} ${kind}s, more than the ${max} an alert may have`);
    return undefined;
  }
  const out: Record<string, string> = Object.create(null);
  let ok = true;
  for (const [name, raw] of entries) {
    const v = kind === 'annotation' ? crlf(raw) : raw;
    if (p.full) return undefined;
    if (!checkName(p, at, name)) ok = false;
    else if (typeof v !== 'string') {
      p.add(`${at}.${keyName(name)}`, 'expected a string');
      ok = false;
    } else {
      const problem = valueProblem(kind, v);
      if (problem) {
        p.add(`${at}.${keyName(name)}`, problem);
        ok = false;
      } else out[name] = v;
    }
  }
  return ok ? out : undefined;
}

/** An ISO 8601 date as sent, undefined when absent or Go's zero time, null when invalid. */
function isoDate(value: unknown): string | undefined | null {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || value.length > 64 || !ISO_DATE.test(value)) return null;
  if (ZERO_TIME.test(value)) return undefined;
  // V8 parses at most millisecond precision reliably; Go sends up to nanoseconds.
  const ms = Date.parse(value.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(ms) ? null : value;
}

function readDate(p: Problems, at: string, value: unknown): string | undefined {
  const date = isoDate(value);
  if (date === null) p.add(at, 'expected an ISO 8601 date (2024-06-01T12:00:00Z)');
  return date ?? undefined;
}

function optionalString(p: Problems, at: string, value: unknown, max: number): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'string' && value.length <= max && !CONTROL.test(value)) return value;
  p.add(at, `expected a string of at most ${max} printable characters`);
  return undefined;
}

function checkType(p: Problems, at: string, value: unknown, type: 'string' | 'object' | 'integer'): void {
  if (value === undefined || value === null) return;
  const ok =
    type === 'string' ? typeof value === 'string' : type === 'object' ? isObject(value) : Number.isSafeInteger(value);
  if (!ok) p.add(at, `expected ${type === 'string' ? 'a string' : `an ${type}`}`);
}

/** The alerts array of a delivery, or undefined (with a problem) when it is not one or holds too many. */
function alertList(p: Problems, at: string, value: unknown): unknown[] | undefined {
  if (!Array.isArray(value)) p.add(at, 'expected an array of alerts');
  else if (value.length > ALERT_LIMITS.alerts)
    p.add(at, `${value.length} alerts, more than the ${ALERT_LIMITS.alerts} a delivery may carry`);
  else return value;
  return undefined;
}

type Flavour = 'alertmanager' | 'grafana';

function parseAlertmanagerLike(body: unknown, source: Flavour): ParsedDelivery {
  const deep = depthProblem(body);
  if (deep) return deep;
  if (!isObject(body)) return fail(['body: expected a JSON object']);
  const p = new Problems();
  const version = source === 'alertmanager' ? '4' : '1';
  if (own(body, 'version') !== version) p.add('version', `expected "${version}"`);
  const groupKey = optionalString(p, 'groupKey', own(body, 'groupKey'), MAX_GROUP_KEY_LENGTH);
  const truncated = own(body, 'truncatedAlerts');
  if (truncated !== undefined && !(Number.isSafeInteger(truncated) && (truncated as number) >= 0))
    p.add('truncatedAlerts', 'expected a non-negative integer');
  const status = own(body, 'status');
  if (status !== undefined && status !== 'firing' && status !== 'resolved')
    p.add('status', 'expected "firing" or "resolved"');
  for (const f of ['receiver', 'externalURL']) checkType(p, f, own(body, f), 'string');
  for (const f of ['groupLabels', 'commonLabels', 'commonAnnotations']) checkType(p, f, own(body, f), 'object');
  if (source === 'grafana') {
    checkType(p, 'orgId', own(body, 'orgId'), 'integer');
    for (const f of ['title', 'state', 'message']) checkType(p, f, own(body, f), 'string');
  }
  const list = alertList(p, 'alerts', own(body, 'alerts'));
  const alerts: NormalizedAlert[] = [];
  for (const [i, item] of (list ?? []).entries()) {
    if (p.full) break;
    const alert = amAlert(p, `alerts[${i}]`, item, source);
    if (alert) alerts.push(alert);
  }
  if (p.lines.length > 0) return fail(p.lines);
  const out: ParsedDelivery = { ok: true, alerts };
  if (groupKey !== undefined) out.groupKey = groupKey;
  if (typeof truncated === 'number' && truncated > 0) out.truncatedAlerts = truncated;
  return out;
}

function amAlert(p: Problems, at: string, item: unknown, source: Flavour): NormalizedAlert | undefined {
  if (!isObject(item)) {
    p.add(at, 'expected an object');
    return undefined;
  }
  const status = own(item, 'status');
  if (status !== 'firing' && status !== 'resolved') p.add(`${at}.status`, 'expected "firing" or "resolved"');
  const labels = readStrings(p, `${at}.labels`, own(item, 'labels'), 'label');
  const rawAnnotations = own(item, 'annotations');
  const annotations =
    rawAnnotations === undefined || rawAnnotations === null
      ? Object.create(null)
      : readStrings(p, `${at}.annotations`, rawAnnotations, 'annotation');
  const startsAt = readDate(p, `${at}.startsAt`, own(item, 'startsAt'));
  const endsAt = readDate(p, `${at}.endsAt`, own(item, 'endsAt'));
  const generatorURL = optionalString(p, `${at}.generatorURL`, own(item, 'generatorURL'), MAX_URL_LENGTH);
  if (source === 'grafana') {
    for (const f of ['valueString', 'silenceURL', 'dashboardURL', 'panelURL', 'imageURL'])
      checkType(p, `${at}.${f}`, own(item, f), 'string');
    checkType(p, `${at}.values`, own(item, 'values'), 'object');
  }
  if (!labels || !annotations || (status !== 'firing' && status !== 'resolved')) return undefined;
  const sent = own(item, 'fingerprint');
  return alertOf({
    status,
    labels,
    annotations,
    fingerprint: typeof sent === 'string' && SENDER_FINGERPRINT.test(sent) ? sent : labelsFingerprint(labels),
    startsAt,
    endsAt,
    generatorURL,
    source,
  });
}

/** The alert with absent optional fields left out (not set to undefined). */
function alertOf(a: NormalizedAlert): NormalizedAlert {
  const out: NormalizedAlert = {
    status: a.status,
    labels: a.labels,
    annotations: a.annotations,
    fingerprint: a.fingerprint,
    source: a.source,
  };
  if (a.startsAt !== undefined) out.startsAt = a.startsAt;
  if (a.endsAt !== undefined) out.endsAt = a.endsAt;
  if (a.generatorURL !== undefined) out.generatorURL = a.generatorURL;
  return out;
}

/**
 * An Alertmanager webhook (version "4"): `version`, `groupKey`, `truncatedAlerts`, `status`, `receiver`,
 * `groupLabels`, `commonLabels`, `commonAnnotations`, `externalURL`, and `alerts[]` with `status`, `labels`,
 * `annotations`, `startsAt`, `endsAt`, `generatorURL`, `fingerprint`. Unknown fields are allowed (Alertmanager adds
 * fields over time); known ones must have their type.
 */
export function parseAlertmanager(body: unknown): ParsedDelivery {
  return parseAlertmanagerLike(body, 'alertmanager');
}

/**
 * A Grafana (unified alerting) webhook contact point's delivery, version "1": Alertmanager's shape plus `orgId`,
 * `title`, `state`, `message`, and per alert `values`, `valueString`, `silenceURL`, `dashboardURL`, `panelURL`,
 * `imageURL` (type-checked, not kept: only labels and annotations carry data into runs).
 */
export function parseGrafana(body: unknown): ParsedDelivery {
  return parseAlertmanagerLike(body, 'grafana');
}

/** The value at a dot path ("a.b.0.c"): own properties and array indices only, never the prototype chain. */
export function valueAt(root: unknown, path: string): unknown {
  let v: unknown = root;
  for (const seg of path.split('.')) {
    if (Array.isArray(v)) v = /^\d+$/.test(seg) ? v[Number(seg)] : undefined;
    else if (isObject(v)) v = own(v, seg);
    else return undefined;
  }
  return v;
}

/** A scalar as a string: undefined when absent (missing, null, ''), null when it is an object or array. */
function scalarText(v: unknown): string | undefined | null {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
}

/** Epoch seconds (milliseconds from 1e11 on) or an ISO date, as ISO; undefined when absent or 0, null if bad. */
function genericDate(v: unknown): string | undefined | null {
  if (typeof v === 'number' || (typeof v === 'string' && EPOCH.test(v))) {
    const n = Number(v);
    if (n === 0) return undefined;
    const ms = n >= EPOCH_MS_FROM ? n : n * 1000;
    return Number.isFinite(ms) && ms > 0 && ms <= MAX_DATE_MS ? new Date(Math.floor(ms)).toISOString() : null;
  }
  return isoDate(v);
}

/**
 * Alerts from any JSON payload through a declared mapping (see ./mappings). Problems name the payload's fields by
 * the mapping's paths (`events[1].state: ...`). Numbers and booleans become strings; a missing or empty field
 * leaves its label or annotation out, except the one `alertname` comes from.
 */
export function parseGeneric(body: unknown, mapping: Mapping): ParsedDelivery {
  const deep = depthProblem(body);
  if (deep) return deep;
  if (!isObject(body)) return fail(['body: expected a JSON object']);
  const p = new Problems();
  let items: unknown[] = [body];
  let prefix = (_i: number) => '';
  if (mapping.alerts !== undefined) {
    const base = mapping.alerts;
    items = alertList(p, base, valueAt(body, base)) ?? [];
    prefix = (i) => `${base}[${i}].`;
  }
  const alerts: NormalizedAlert[] = [];
  for (const [i, item] of items.entries()) {
    if (p.full) break;
    if (!isObject(item)) p.add(prefix(i).slice(0, -1), 'expected an object');
    else {
      const alert = genericAlert(p, prefix(i), item, mapping);
      if (alert) alerts.push(alert);
    }
  }
  return p.lines.length > 0 ? fail(p.lines) : { ok: true, alerts };
}

function genericAlert(p: Problems, at: string, item: Json, m: Mapping): NormalizedAlert | undefined {
  const before = p.lines.length;
  const labels: Record<string, string> = Object.create(null);
  const annotations: Record<string, string> = Object.create(null);
  for (const [kind, fields, out] of [
    ['label', m.labels, labels],
    ['annotation', m.annotations ?? {}, annotations],
  ] as const) {
    for (const [name, path] of Object.entries(fields)) {
      const raw = scalarText(valueAt(item, path));
      const text = kind === 'annotation' ? crlf(raw) : raw;
      const problem =
        text === null
          ? `expected a string, number or boolean (${kind} ${keyName(name)})`
          : text === undefined
            ? undefined
            : valueProblem(kind, text);
      if (problem) p.add(`${at}${path}`, problem);
      else if (text) out[name] = text;
    }
  }
  if (m.tags !== undefined) mergeTags(p, `${at}${m.tags}`, valueAt(item, m.tags), labels);
  const alertnamePath = m.labels.alertname ?? 'alertname';
  if (labels.alertname === undefined && scalarText(valueAt(item, alertnamePath)) === undefined)
    p.add(`${at}${alertnamePath}`, 'missing; the label alertname comes from it');

  const rawStatus = valueAt(item, m.status.path);
  let status: NormalizedAlert['status'] | undefined;
  if (typeof rawStatus !== 'string' && typeof rawStatus !== 'number')
    p.add(
      `${at}${m.status.path}`,
      rawStatus === undefined ? 'missing; the status comes from it' : 'expected a string or a number (the status)',
    );
  else {
    const v = String(rawStatus).toLowerCase();
    const has = (list: readonly string[]) => list.some((s) => s.toLowerCase() === v);
    if (has(m.status.resolved)) status = 'resolved';
    else if (!m.status.firing || has(m.status.firing)) status = 'firing';
    else
      p.add(
        `${at}${m.status.path}`,
        `not a status the mapping knows (resolved: ${m.status.resolved.join(', ')}; firing: ${m.status.firing.join(', ')})`.slice(
          0,
          300,
        ),
      );
  }

  let fingerprint: string | undefined;
  if (m.fingerprint !== undefined) {
    const hash = createHash('sha256').update(`${m.name}\0`);
    for (const path of typeof m.fingerprint === 'string' ? [m.fingerprint] : m.fingerprint) {
      const text = scalarText(valueAt(item, path));
      if (text === undefined) p.add(`${at}${path}`, 'missing; the fingerprint is made from it');
      else if (text === null) p.add(`${at}${path}`, 'expected a string or a number (part of the fingerprint)');
      else if (text.length > ALERT_LIMITS.labelValueLength)
        p.add(`${at}${path}`, `longer than ${ALERT_LIMITS.labelValueLength} characters`);
      else hash.update(`${path}\0${text}\0`);
    }
    fingerprint = hash.digest('hex').slice(0, 16);
  }

  let startsAt: string | undefined;
  if (m.startsAt !== undefined) {
    const date = genericDate(valueAt(item, m.startsAt));
    if (date === null) p.add(`${at}${m.startsAt}`, 'expected an ISO 8601 date or epoch seconds');
    else startsAt = date;
  }
  if (p.lines.length > before || !status) return undefined;
  return alertOf({
    status,
    labels,
    annotations,
    fingerprint: fingerprint ?? labelsFingerprint(labels),
    startsAt,
    source: m.name,
  });
}

/** Datadog-style tags ("k:v,k2:v2" or ["k:v"]) into labels the mapping did not set; tags without a value skipped. */
function mergeTags(p: Problems, at: string, raw: unknown, labels: Record<string, string>): void {
  if (raw === undefined || raw === null || raw === '') return;
  const list = typeof raw === 'string' ? raw.split(',') : raw;
  if (!Array.isArray(list) || !list.every((t) => typeof t === 'string')) {
    p.add(at, 'expected a "k:v,k2:v2" string or a list of "k:v" strings');
    return;
  }
  for (const tag of list as string[]) {
    const colon = tag.indexOf(':');
    const name = tag.slice(0, Math.max(colon, 0)).trim();
    const value = tag.slice(colon + 1).trim();
    if (colon <= 0 || !name || !value || Object.prototype.hasOwnProperty.call(labels, name)) continue;
    if (name.length > ALERT_LIMITS.nameLength || CONTROL.test(name)) {
      p.add(at, `a tag name is longer than ${ALERT_LIMITS.nameLength} characters or has control characters`);
      return;
    }
    const problem = valueProblem('label', value);
    if (problem) {
      p.add(at, `a tag value: ${problem}`);
      return;
    }
    labels[name] = value;
    if (Object.keys(labels).length > ALERT_LIMITS.labels) {
      p.add(at, `more than ${ALERT_LIMITS.labels} labels with the tags`);
      return;
    }
  }
}
