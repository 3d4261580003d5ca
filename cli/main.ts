// Node side. The `runbook` command line.
import { Command, Option } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../common/errors';
import { runCli } from './run-cli';
import { DEFAULT_METRICS_ADDRESS, DEFAULT_RECEIVER_PORT } from '../worker/defaults';
import type { ExportOptions, ShowOptions } from './audit';

/**
 * Each command's module loads when the command runs: `runbook run` loads the client and the language, not the
 * worker, the fleet, the dev server or the audit stores (a CLI call's start-up is most of a short run's wall time).
 */
const load = {
  fleet: () => import('../fleet/fleet'),
  temporalCli: () => import('../worker/temporal-cli'),
  dev: () => import('./dev'),
  exec: () => import('./exec'),
  logs: () => import('./logs'),
  language: () => import('./language'),
  runs: () => import('./runs'),
  schedules: () => import('./schedules'),
  calendar: () => import('./calendar'),
  schema: () => import('../dsl/schema'),
  codec: () => import('../common/codec'),
  codecServer: () => import('./codec'),
  triggers: () => import('./triggers'),
  audit: () => import('./audit'),
};

// eslint-disable-next-line @typescript-eslint/no-require-imports
const pkg = require('../../package.json') as { version: string; dependencies: Record<string, string> };

function int(name: string) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new UserError(`${name} must be a non-negative integer, got "${raw}".`);
    return n;
  };
}

const program = new Command('runbook')
  .description('Durable, auditable runbooks on Temporal.')
  .showHelpAfterError('(run with --help for usage)');

/** `--metrics` of dev and worker: parsed in worker/config.ts, which knows the variable and the default too. */
const metricsOption = () =>
  new Option(
    '--metrics <addr>',
    `serve Prometheus metrics on IP:PORT, or off (default: RUNBOOK_METRICS_ADDRESS, else ${DEFAULT_METRICS_ADDRESS})`,
  );

const serverOptions = (cmd: Command) =>
  cmd
    .addOption(
      new Option('--data-dir <dir>', 'where the dev server keeps its SQLite history and log')
        .env('RUNBOOK_DATA_DIR')
        .default('.runbook'),
    )
    .addOption(new Option('--ip <addr>', 'address the dev server and UI bind to').default('127.0.0.1'))
    .addOption(new Option('--port <port>', 'dev server gRPC port').argParser(int('--port')).default(7233))
    .addOption(new Option('--ui-port <port>', 'Web UI port (default: --port + 1000)').argParser(int('--ui-port')))
    .addOption(
      new Option(
        '--codec-port <port>',
        'codec server port, when history is encrypted (default: UI port + 1)',
      ).argParser(int('--codec-port')),
    )
    .option('--headless', 'start no Web UI', false)
    .addOption(
      new Option('--receiver-port <port>', 'alert receiver port')
        .argParser(int('--receiver-port'))
        .default(DEFAULT_RECEIVER_PORT),
    )
    .option('--no-receiver', 'start no alert receiver')
    .addOption(metricsOption());

serverOptions(
  program
    .command('dev')
    .description(
      'Start everything on one machine: the Temporal dev server (persistent, with Web UI), the worker; ' +
        'with TEMPORAL_ADDRESS set, connect there instead of starting a server',
    ),
).action(
  async (o: {
    dataDir: string;
    ip: string;
    port: number;
    uiPort?: number;
    codecPort?: number;
    headless: boolean;
    receiverPort: number;
    receiver: boolean;
    metrics?: string;
  }) => {
    await (await load.dev()).runDev({ ...o, receiverPort: o.receiver ? o.receiverPort : false });
  },
);

program
  .command('worker')
  .description('Run a worker against the Temporal server named by TEMPORAL_ADDRESS (default 127.0.0.1:7233)')
  .addOption(metricsOption())
  .action(async (o: { metrics?: string }) => {
    await (await load.dev()).runWorkerCommand(o);
  });

program
  .command('exec')
  .description('Run one ad hoc command on one inventory host, durably, through Temporal')
  .option(
    '-i, --inventory <file>',
    'inventory YAML file (one the worker allows: RUNBOOK_INVENTORY / RUNBOOK_INVENTORIES); default RUNBOOK_INVENTORY',
  )
  .requiredOption('-H, --host <name>', 'inventory host name')
  .option('--no-wait', 'start the run and print its id without waiting')
  .option('--json', 'print the result as JSON', false)
  .addOption(
    new Option('--timeout <seconds>', 'kill the command after this long').argParser(int('--timeout')).default(600),
  )
  .argument('<command...>', 'the command (after --)')
  .action(
    async (
      command: string[],
      o: { inventory?: string; host: string; wait: boolean; json: boolean; timeout: number },
    ) => {
      process.exitCode = await (await load.exec()).runExec(command, o);
    },
  );

const collect = (value: string, previous: string[]) => [...previous, value];

program
  .command('validate')
  .description(
    'Check runbooks and inventories: every problem at once, as file:line:col: message [RBnnnn]; exit 1 on any error',
  )
  .argument('[paths...]', 'files or directories (default: the runbooks directory)')
  .option('--json', 'print the problems as JSON', false)
  .action(async (paths: string[], o: { json: boolean }) => {
    process.exitCode = (await load.language()).runValidate(paths, { lint: false, json: o.json });
  });

program
  .command('lint')
  .description(
    'Validate, then warn about raw interpolation, risky runbooks without rollback, missing descriptions and timeouts',
  )
  .argument('[paths...]', 'files or directories (default: the runbooks directory)')
  .option('--strict', 'exit 1 on warnings too', false)
  .option('--json', 'print the problems as JSON', false)
  .action(async (paths: string[], o: { strict: boolean; json: boolean }) => {
    process.exitCode = (await load.language()).runValidate(paths, { lint: true, strict: o.strict, json: o.json });
  });

program
  .command('plan')
  .description(
    'Show, per target and in order, the exact commands and requests a run would perform (secrets masked); runs nothing',
  )
  .argument('<runbook>', 'runbook name (from the runbooks directory) or path to its YAML file')
  .option('-p, --param <key=value>', 'a param value (repeat for several; a key given twice makes a list)', collect, [])
  .option('--params-json <json>', 'params as a JSON object, as the UI sends them')
  .option('-i, --inventory <file>', 'inventory (ours, or Ansible INI/YAML); default RUNBOOK_INVENTORY')
  .option('--alert-label <key=value>', 'an alert label, to plan what an alert-triggered run would do', collect, [])
  .option('--json', 'print the plan as JSON', false)
  .action(
    async (
      name: string,
      o: { param: string[]; paramsJson?: string; inventory?: string; json: boolean; alertLabel: string[] },
    ) => {
      (await load.language()).runPlan(name, o);
    },
  );

program
  .command('run')
  .description(
    'Start a runbook run (validated here first when the runbook is local); --wait follows it and exits with its outcome',
  )
  .argument(
    '<runbook>',
    "runbook name (in the worker's RUNBOOK_DIR) or path to a YAML file, sent with the run (workers must allow runbook files: RUNBOOK_ALLOW_RUNBOOK_FILES, on for `runbook dev`)",
  )
  .option('-p, --param <key=value>', 'a param value (repeat for several; a key given twice makes a list)', collect, [])
  .option('--params-json <json>', 'params as a JSON object')
  .option(
    '-i, --inventory <file>',
    "inventory (path as the worker sees it, on its allow-list RUNBOOK_INVENTORY / RUNBOOK_INVENTORIES); default RUNBOOK_INVENTORY here, else the worker's",
  )
  .option(
    '--wait',
    'follow progress and exit with the outcome (0 succeeded, 3 degraded, 1 failed, 4 blocked by a change calendar, 130 cancelled)',
    false,
  )
  .option('--json', 'print the result as JSON', false)
  .option('--initiator <name>', 'who is running it (default: your user name)')
  .option(
    '--override-window <reason>',
    'run even if a change calendar (maintenance window, freeze) is closed; the reason is recorded with your name',
  )
  .action(
    async (
      name: string,
      o: {
        param: string[];
        paramsJson?: string;
        inventory?: string;
        wait: boolean;
        json: boolean;
        initiator?: string;
        overrideWindow?: string;
      },
    ) => {
      process.exitCode = await (await load.runs()).runRun(name, o);
    },
  );

program
  .command('status')
  .description('Show a run: Temporal status, current batch and step per host, pending approvals and decisions')
  .argument('<id>', 'workflow id')
  .option('--json', 'as JSON', false)
  .action(async (id: string, o: { json: boolean }) => {
    await (await load.runs()).runStatus(id, o);
  });

program
  .command('logs')
  .description(
    "Show a run's step output (the tail each step kept; a running long step's latest lines); --follow until the run ends",
  )
  .argument('<id>', 'workflow id')
  .option(
    '-f, --follow',
    'keep printing new output until the run ends, then exit with its outcome (as run --wait); Ctrl-C stops following',
    false,
  )
  .option('--step <step>', 'only this step (id, or path such as steps[2])')
  .option('--host <host>', 'only this host')
  .option('--json', 'JSON Lines: one object per output line, step end, note and the run', false)
  .action(async (id: string, o: { follow: boolean; step?: string; host?: string; json: boolean }) => {
    process.exitCode = await (await load.logs()).runLogs(id, o);
  });

program
  .command('cancel')
  .description('Cancel a run: running commands are killed, then rollback runs')
  .argument('<id>', 'workflow id')
  .action(async (id: string) => {
    await (await load.runs()).runCancel(id);
  });

program
  .command('list')
  .description('List runbook runs, newest first')
  .option('--status <status>', 'preparing | awaiting-approval | running | succeeded | failed | cancelled')
  .option('--runbook <name>', 'only this runbook')
  .option('--initiator <name>', 'only runs started by this operator (or alert fingerprint, schedule id)')
  .addOption(new Option('--limit <n>', 'at most this many').argParser(int('--limit')).default(20))
  .option('--json', 'as JSON', false)
  .action(async (o: { status?: string; runbook?: string; initiator?: string; limit: number; json: boolean }) => {
    await (await load.runs()).runList(o);
  });

for (const verb of ['approve', 'reject'] as const) {
  program
    .command(verb)
    .description(
      `${verb === 'approve' ? 'Approve' : 'Reject'} a pending approval of a run (the gate, or a step with --step)`,
    )
    .argument('<id>', 'workflow id')
    .requiredOption('--by <name>', 'who decides')
    .option('--group <group>', 'a group the decider belongs to (repeat)', collect, [])
    .option(
      '--step <id>',
      'which pending approval, when there are several: gate, a step path (every host waiting there) or PATH@HOST (one host)',
    )
    .option('--comment <text>', 'why')
    .action(async (id: string, o: { by: string; group: string[]; step?: string; comment?: string }) => {
      await (await load.runs()).runDecide(id, verb === 'approve', o);
    });
}

const schedules = program
  .command('schedules')
  .description("Temporal Schedules from runbooks' on.schedule: sync them, see what they did, pause, trigger, backfill");
schedules
  .command('sync')
  .description(
    'Create, update and delete schedules to match the runbook directory (only those sync made); --dry-run shows the diff',
  )
  .option('--dry-run', 'print what would change, change nothing', false)
  .option('--json', 'as JSON', false)
  .action(async (o: { dryRun: boolean; json: boolean }) => {
    process.exitCode = await (await load.schedules()).runSchedulesSync(o);
  });
schedules
  .command('list')
  .description('Each schedule: when, next times, runs started, skipped (overlap) and missed (catch-up), last runs')
  .option('--all', 'also schedules sync did not make', false)
  .option('--json', 'as JSON', false)
  .action(async (o: { all: boolean; json: boolean }) => {
    await (await load.schedules()).runSchedulesList(o);
  });
for (const verb of ['pause', 'unpause'] as const) {
  schedules
    .command(verb)
    .description(`${verb === 'pause' ? 'Pause' : 'Unpause'} a runbook's schedule (sync keeps the pause)`)
    .argument('<runbook>', 'runbook name, or its schedule id runbook:NAME')
    .option('--reason <text>', 'the note shown with the schedule (default: who did it)')
    .action(async (name: string, o: { reason?: string }) => {
      await (await load.schedules()).runSchedulePause(name, verb === 'pause', o.reason);
    });
}
schedules
  .command('trigger')
  .description('Start one run now, as the schedule would (its params, initiator and overlap policy)')
  .argument('<runbook>', 'runbook name, or its schedule id runbook:NAME')
  .option('--overlap <policy>', 'skip | buffer-one | buffer-all | cancel-other | terminate-other | allow-all')
  .action(async (name: string, o: { overlap?: string }) => {
    await (await load.schedules()).runScheduleTrigger(name, o);
  });
schedules
  .command('backfill')
  .description('Start the runs the schedule would have started between two past times (after an outage)')
  .argument('<runbook>', 'runbook name, or its schedule id runbook:NAME')
  .requiredOption('--from <time>', 'ISO 8601 start, e.g. 2026-12-01T00:00:00Z')
  .requiredOption('--to <time>', 'ISO 8601 end')
  .option('--overlap <policy>', 'overlap policy for these runs (default allow-all)')
  .action(async (name: string, o: { from: string; to: string; overlap?: string }) => {
    await (await load.schedules()).runScheduleBackfill(name, o);
  });

program
  .command('calendar')
  .description('Change calendars (maintenance windows, freezes)')
  .command('status')
  .description('OPEN or CLOSED per calendar and combined (open only if all are open), with the next change')
  .argument('[names...]', 'calendars (default: all in the file)')
  .option('--at <time>', 'evaluate at this ISO 8601 time instead of now (no offset: UTC)')
  .option('--file <file>', 'calendar file (default: RUNBOOK_CALENDARS, else RUNBOOK_DIR/calendars.yaml)')
  .option('--json', 'as JSON', false)
  .option('--check', 'exit 1 when the combined state is closed', false)
  .action(async (names: string[], o: { at?: string; file?: string; json: boolean; check: boolean }) => {
    process.exitCode = await (await load.calendar()).runCalendarStatus(names, o);
  });

program
  .command('window')
  .description("A run's change window")
  .command('override')
  .description('Let a run go on although a change calendar is closed (it stops waiting); the reason is recorded')
  .argument('<id>', 'workflow id')
  .requiredOption('--reason <text>', 'why the change cannot wait (recorded in the audit trail)')
  .option('--by <name>', 'who overrides (default: your user name)')
  .option('--group <group>', "a group of yours the calendar's override list may name (repeat)", collect, [])
  .action(async (id: string, o: { reason: string; by?: string; group: string[] }) => {
    await (await load.runs()).runWindowOverride(id, o);
  });

program
  .command('serve')
  .description(
    'Run the alert receiver alone (Alertmanager, Grafana and generic webhooks), against the server the TEMPORAL_* variables name',
  )
  .addOption(new Option('--ip <addr>', 'address to listen on').default('127.0.0.1'))
  .addOption(new Option('--port <port>', 'port to listen on').argParser(int('--port')).default(DEFAULT_RECEIVER_PORT))
  .action(async (o: { ip: string; port: number }) => {
    await (await load.triggers()).runServe(o);
  });

const triggers = program
  .command('triggers')
  .description("Alert rules' guardrails (state kept in Temporal): status, freeze, unfreeze, reset the circuit breaker");
triggers
  .command('status')
  .description(
    'Per runbook with an alert rule: frozen or breaker open, limits, runs in the window, running remediations, recent suppressions',
  )
  .argument('[runbook...]', 'runbooks (default: every runbook with an alert rule)')
  .option('--json', 'as JSON', false)
  .action(async (names: string[], o: { json: boolean }) => {
    await (await load.triggers()).runTriggers('status', names, o);
  });
for (const [verb, what] of [
  ['freeze', 'Stop alerts from starting runs (they are recorded and escalated instead)'],
  ['unfreeze', 'Let alerts start runs again'],
  ['reset', 'Close the circuit breaker and start its counts afresh'],
] as const)
  triggers
    .command(verb)
    .description(what)
    .argument('[runbook...]', 'runbooks (default: every runbook with an alert rule)')
    .option('--by <name>', 'who (recorded; default $USER)')
    .option('--reason <text>', 'why (recorded)')
    .option('--json', 'print the resulting status as JSON', false)
    .action(async (names: string[], o: { by?: string; reason?: string; json: boolean }) => {
      await (await load.triggers()).runTriggers(verb, names, o);
    });

const audit = program
  .command('audit')
  .description('The audit trail: verify its hash chain, show or export change records');
const auditStore = (cmd: Command) =>
  cmd.addOption(
    new Option(
      '--audit-url <url>',
      'file:PATH or postgres://USER@HOST:PORT/DB (default: file:DATA_DIR/audit.jsonl)',
    ).env('AUDIT_URL'),
  );
const auditFilters = (cmd: Command) =>
  auditStore(cmd)
    .option('--run <id>', 'one run (workflow id or run id)')
    .option('--target <host>', 'one target host')
    .option('--since <time>', 'records at or after a time (2026-11-22T03:00:00Z) or within an age (30m, 12h, 7d)');

auditStore(
  audit.command('verify').description('Check every record and the hash chain; exit 1 naming the first bad record'),
)
  .option('--json', 'the report as JSON', false)
  .action(async (o: { auditUrl?: string; json: boolean }) => {
    process.exitCode = await (await load.audit()).runAuditVerify(o);
  });

auditFilters(audit.command('show').description('Change records as a table (or JSON), oldest first'))
  .addOption(new Option('--limit <n>', 'only the last n records').argParser(int('--limit')))
  .option('--json', 'as JSON', false)
  .action(async (o: ShowOptions) => {
    process.exitCode = await (await load.audit()).runAuditShow(o);
  });

auditFilters(
  audit.command('export').description('Change records for an auditor: JSONL (the stored, hashed lines) or CSV'),
)
  .addOption(new Option('--format <format>', 'jsonl | csv').default('jsonl'))
  .option('-o, --output <file>', 'write to a file instead of stdout')
  .action(async (o: ExportOptions) => {
    process.exitCode = await (await load.audit()).runAuditExport({ ...o, json: false });
  });

const codec = program
  .command('codec')
  .description('Encrypted workflow history: keys and the codec server for the Web UI');
codec
  .command('keygen')
  .description(
    'Print a new key entry (ID:BASE64) for RUNBOOK_CODEC_KEYS or a line of RUNBOOK_CODEC_KEYS_FILE; put it first to rotate',
  )
  .option('--id <id>', "key id (default: k + today's date)")
  .action(async (o: { id?: string }) => {
    console.log((await load.codec()).newKeyEntry(o.id));
  });
codec
  .command('serve')
  .description(
    'Serve /encode and /decode for a Temporal Web UI (keys from RUNBOOK_CODEC_KEYS[_FILE], token from RUNBOOK_CODEC_TOKEN)',
  )
  .option('--ip <addr>', 'address to bind', '127.0.0.1')
  .addOption(new Option('--port <port>', 'port').argParser(int('--port')).default(8234))
  .option('--ui-origin <url>', 'a Web UI origin allowed by CORS (repeat)', collect, [])
  .action(async (o: { ip: string; port: number; uiOrigin: string[] }) => {
    await (await load.codecServer()).runCodecServe(o);
  });

program
  .command('docs')
  .description('Render a runbook as Markdown')
  .argument('<runbook>', 'runbook name or path')
  .option('-o, --output <file>', 'write to a file instead of stdout')
  .action(async (name: string, o: { output?: string }) => {
    (await load.language()).runDocs(name, o);
  });

program
  .command('schema')
  .description('Print the runbook JSON Schema (draft 2020-12), or write it to runbooks/runbook.schema.json')
  .option('--write', 'write the file instead of printing it', false)
  .action(async (o: { write: boolean }) => {
    const text = `${JSON.stringify((await load.schema()).runbookJsonSchema(), null, 2)}\n`;
    if (!o.write) return void process.stdout.write(text);
    const file = path.join(__dirname, '..', '..', 'runbooks', 'runbook.schema.json');
    fs.writeFileSync(file, text);
    console.log(`wrote ${file}`);
  });

program
  .command('setup')
  .description('Find or build the Temporal CLI (dev server + Web UI) and say which path was taken')
  .action(async () => {
    const cli = await (await load.temporalCli()).ensureTemporalCli((line) => console.log(line));
    console.log(
      `Temporal CLI: ${cli.path} (${(await load.temporalCli()).temporalCliVersion(cli.path)}; found via ${cli.source})`,
    );
  });

program
  .command('version')
  .description('Print the versions of runbook, the Temporal SDK and the Temporal CLI')
  .action(async () => {
    const cli = (await load.temporalCli()).findTemporalCli();
    console.log(`runbook ${pkg.version}`);
    console.log(`Temporal SDK ${pkg.dependencies['@temporalio/client']}`);
    console.log(
      `Temporal CLI ${cli ? `${(await load.temporalCli()).temporalCliVersion(cli.path)} at ${cli.path}` : 'not found (run `runbook setup`)'}`,
    );
    console.log(`Node ${process.version}`);
  });

const fleet = program
  .command('fleet')
  .description('Start or stop a test fleet of real sshd hosts on loopback (needs root)');
fleet
  .command('up')
  .description('Start N sshd hosts; writes DIR/inventory.yaml, DIR/known_hosts and DIR/id_ed25519')
  .addOption(new Option('--hosts <n>', 'number of hosts').argParser(int('--hosts')).default(3))
  .requiredOption('--dir <dir>', 'directory for keys, inventory and host state')
  .option(
    '--services',
    'real services for the shipped runbooks: host-1 runs HAProxy (runtime API on a socket) in front of nginx on the other hosts; needs nginx, haproxy and socat',
  )
  .action(async (o: { hosts: number; dir: string; services?: boolean }) => {
    const state = await (
      await load.fleet()
    ).fleetUp({ hosts: o.hosts, dir: o.dir, services: o.services, progress: (l) => console.error(l) });
    const first = state.hosts[0];
    console.log(`fleet ${state.id}: ${state.hosts.length} hosts up; inventory ${o.dir}/inventory.yaml`);
    if (first) {
      console.log(
        `try: ssh -i ${o.dir}/id_ed25519 -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${o.dir}/known_hosts ` +
          `-p ${first.port} ${first.user}@${first.address} true`,
      );
    }
  });
fleet
  .command('down')
  .description('Stop the fleet started in DIR and remove its users')
  .requiredOption('--dir <dir>', 'the directory given to `fleet up`')
  .action(async (o: { dir: string }) => {
    const state = await (await load.fleet()).fleetDown(o.dir);
    console.log(`fleet ${state.id}: ${state.hosts.length} hosts stopped`);
  });

void runCli(program, process.argv);
