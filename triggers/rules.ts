// Node side (reads the runbook directory and the default inventory). The alert rules the receiver acts on: every
// valid runbook in the worker's runbook directory with an `on.alert`, reloaded when a file changes, and what one
// alert gives a rule's run (params checked like any input, targets resolved from the same inventory the run uses).
import fs from 'node:fs';
import path from 'node:path';
import { alertLimits, alertParams, ruleMatches, type AlertRuleDoc, type AlertView } from '../dsl/alert-rule';
import type { Inventory } from '../dsl/inventory';
import { planTargets } from '../dsl/plan';
import { loadValidInventory, loadValidRunbook } from '../dsl/prepare';
import { isRunbookFileName } from '../dsl/load';
import type { RunbookDoc } from '../dsl/schema';
import type { Logger } from '../common/logger';
import { messageOf } from '../common/errors';
import type { Limits } from '../workflows/guard-state';

export interface AlertRule {
  name: string;
  file: string;
  contentHash: string;
  runbook: RunbookDoc;
  rule: AlertRuleDoc;
  limits: Limits;
}

/** A runbook file the receiver could not use (shown by the health endpoint and `runbook triggers status`). */
export interface BrokenRunbook {
  file: string;
  error: string;
}

/** Rescan the directory at most this often (a changed file is picked up within this long). */
const RESCAN_MS = 1000;

interface Cached {
  mtimeMs: number;
  size: number;
  rule?: AlertRule;
  broken?: BrokenRunbook;
}

/** The rules of a runbook directory, kept current: each file is parsed again only when its mtime or size changes. */
export class RuleSet {
  private readonly files = new Map<string, Cached>();
  private scannedAt = 0;
  private inventory?: { file: string; mtimeMs: number; size: number; value?: Inventory; error?: string };

  constructor(
    readonly runbookDir: string,
    readonly inventoryFile: string | undefined,
    private readonly logger?: Logger,
  ) {}

  /** The current rules and the runbooks that could not be loaded. */
  current(now = Date.now()): { rules: AlertRule[]; broken: BrokenRunbook[] } {
    if (now - this.scannedAt >= RESCAN_MS) this.rescan(now);
    const rules: AlertRule[] = [];
    const broken: BrokenRunbook[] = [];
    for (const c of this.files.values()) {
      if (c.rule) rules.push(c.rule);
      if (c.broken) broken.push(c.broken);
    }
    return { rules: rules.sort((a, b) => a.name.localeCompare(b.name)), broken };
  }

  private rescan(now: number): void {
    this.scannedAt = now;
    let names: string[];
    try {
      names = fs.readdirSync(this.runbookDir).filter(isRunbookFileName);
    } catch (err) {
      this.logger?.error({ dir: this.runbookDir, error: messageOf(err) }, 'cannot read the runbook directory');
      return;
    }
    const seen = new Set<string>();
    for (const n of names) {
      const file = path.join(this.runbookDir, n);
      seen.add(file);
      let st: fs.Stats;
      try {
        st = fs.statSync(file);
      } catch {
        continue;
      }
      const old = this.files.get(file);
      if (old && old.mtimeMs === st.mtimeMs && old.size === st.size) continue;
      this.files.set(file, { mtimeMs: st.mtimeMs, size: st.size, ...this.load(file) });
    }
    for (const file of [...this.files.keys()]) if (!seen.has(file)) this.files.delete(file);
  }

  private load(file: string): { rule?: AlertRule; broken?: BrokenRunbook } {
    try {
      const v = loadValidRunbook(file);
      const rule = v.runbook.on?.alert;
      if (!rule) return {};
      return {
        rule: {
          name: v.runbook.metadata.name,
          file,
          contentHash: v.contentHash,
          runbook: v.runbook,
          rule,
          limits: alertLimits(rule),
        },
      };
    } catch (err) {
      const error = messageOf(err);
      this.logger?.warn({ file, error }, 'runbook skipped by the alert receiver');
      return { broken: { file, error } };
    }
  }

  /** The default inventory (RUNBOOK_INVENTORY), reloaded when it changes; a broken one is an error message. */
  defaultInventory(): { value?: Inventory; error?: string } {
    const file = this.inventoryFile;
    if (!file) return {};
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch (err) {
      return { error: `inventory ${file}: ${messageOf(err)}` };
    }
    const c = this.inventory;
    if (c && c.file === file && c.mtimeMs === st.mtimeMs && c.size === st.size) return c;
    try {
      this.inventory = { file, mtimeMs: st.mtimeMs, size: st.size, value: loadValidInventory(file) };
    } catch (err) {
      this.inventory = { file, mtimeMs: st.mtimeMs, size: st.size, error: messageOf(err) };
    }
    return this.inventory;
  }
}

/** The rules an alert's labels match. */
export function matchingRules(rules: readonly AlertRule[], labels: Record<string, string>): AlertRule[] {
  return rules.filter((r) => ruleMatches(r.rule, labels));
}

/**
 * What a firing alert gives a rule's run: its params (from the rule's templates, checked against the runbook) and
 * the hosts it would act on; or the problems, one line each naming the param (`params.service: ...`).
 */
export function runForAlert(
  r: AlertRule,
  alert: AlertView,
  inventory: { value?: Inventory; error?: string },
): { ok: true; params: Record<string, unknown>; targets: string[] } | { ok: false; problems: string[] } {
  const refused = (problems: string[]) => ({
    ok: false as const,
    problems: problems.slice(0, 20).map((p) => (p.length > 900 ? `${p.slice(0, 900)}...` : p)),
  });
  const { values, errors } = alertParams(r.runbook, alert);
  if (errors.length) return refused(errors.map((e) => `params.${e.param}: ${e.message} [${e.code}]`));
  if (r.runbook.targets === undefined) return { ok: true, params: values, targets: [] };
  if (inventory.error) return refused([`inventory: ${inventory.error}`]);
  try {
    const t = planTargets({
      runbook: r.runbook,
      contentHash: r.contentHash,
      params: values,
      inventory: inventory.value,
      run: { id: '', initiator: alert.fingerprint, trigger: 'alert' },
      alert: { ...alert },
    });
    if (t.errors.length) return refused(t.errors.map((e) => `targets: ${e.message} [${e.code}]`));
    return { ok: true, params: values, targets: t.hosts.map((h) => h.name) };
  } catch (err) {
    return refused([`targets: ${messageOf(err)}`]);
  }
}
