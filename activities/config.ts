// Node side. What the engine's activities are built with: the configuration the worker reads from its own
// environment (worker/config.ts builds it; nothing below worker/ reads the environment itself).
import type { CodecKey } from '../common/codec';
import type { SshLoginDefaults } from '../dsl/inventory';
import type { EscalationConfig } from './escalate';
import type { CalendarsLocation } from '../dsl/calendars';

/** How the engine reaches hosts over SSH. */
export interface SshConfig extends SshLoginDefaults {
  /** Steps go through each connection's shell agent; RUNBOOK_SSH_AGENT=off: a plain exec channel each. @default true */
  shellAgent: boolean;
  /** The SSH agent for hosts with neither key nor password (SSH_AUTH_SOCK). @default none */
  agentSocket?: string;
}

/**
 * What the engine trusts and uses, from the worker's own environment (never from workflow input): the runbook
 * directory, the inventories a run may name (an allow-list), whether ad hoc commands (`runCommand`) are served,
 * where change records and notifications go, SSH defaults, history keys, and the secrets' environment.
 */
export interface EngineConfig {
  /** Absolute path of the runbook directory (RUNBOOK_DIR). @default ./runbooks */
  runbookDir: string;
  /** Inventories runs may name, absolute: RUNBOOK_INVENTORY first (the default), then RUNBOOK_INVENTORIES. */
  inventories: string[];
  /** The inventory of a run that names none (RUNBOOK_INVENTORY). */
  defaultInventory?: string;
  /** Serve `runCommand` (`runbook exec`): any command on any inventory host. @default false (true for `runbook dev`) */
  allowExec: boolean;
  /**
   * Accept runs that carry their runbook (`runbook run FILE.yaml`; input field `source`) instead of naming one of
   * the runbook directory: whoever can start a workflow can then run any command on the allowed inventories' hosts.
   * @default false (true for `runbook dev`)
   */
  allowRunbookFiles: boolean;
  /** The change calendar file: RUNBOOK_CALENDARS (must exist), else RUNBOOK_DIR/calendars.yaml (once it exists). */
  calendars?: CalendarsLocation;
  /** Where change records go: `file:PATH` or `postgres://…` (AUDIT_URL). @default file:DATA_DIR/audit.jsonl */
  auditUrl: string;
  /** Webhook receiving `notify` steps as JSON (RUNBOOK_NOTIFY_URL). @default none: they are only logged */
  notifyUrl?: string;
  /** Where failed or suppressed remediations are escalated (Slack-compatible webhook, PagerDuty Events v2) and the UI links they carry. */
  escalation: EscalationConfig;
  /** SSH key and known_hosts for hosts whose inventory names none (RUNBOOK_SSH_KEY, RUNBOOK_KNOWN_HOSTS), shell agent on or off. */
  ssh: SshConfig;
  /** History encryption keys (RUNBOOK_CODEC_KEYS, else RUNBOOK_CODEC_KEYS_FILE); the first encrypts. @default none */
  codecKeys: CodecKey[];
  /** What the `env` secret provider reads and `exec` provider commands run with: the worker's own environment. */
  secretsEnv: NodeJS.ProcessEnv;
  /** Where relative `file` secret paths point, generated secrets included (RUNBOOK_SECRETS_DIR). @default the worker's working directory */
  secretsDir?: string;
}
