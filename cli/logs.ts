// Node side. `runbook logs ID`: a run's step output, from what Temporal keeps, with no SSH from here.
// - A finished step: its result in the run's history (tails bounded by activities/result-size.ts, secrets masked by
//   the worker before anything left it), read by logs-history.ts.
// - A running long step (a regular activity): the latest lines it heartbeats (activities/ssh/progress.ts), read
//   from the run's pending activities. Short steps run as local activities, which cannot heartbeat: their output
//   shows when they end, and `logs` says which step each host is on meanwhile (the state query).
// `--follow` long-polls the history and polls the heartbeats until the run closes; logs-print.ts prints each line
// once, escaped.
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { UserError } from '../common/errors';
import type { SshStepProgress, StepAt } from '../activities';
import type { RunbookDoc } from '../dsl/schema';
import { stateQuery } from '../workflows/messages';
import { codecError, HistoryReader } from './logs-history';
import { allSteps, escapeControls, LogPrinter, type FinishedStep, type LogSink } from './logs-print';
import { withClient } from './runs';

export interface LogsOptions {
  follow: boolean;
  /** A step id (or path, e.g. `steps[2]`). */
  step?: string;
  host?: string;
  json: boolean;
}

/** Workflow types whose steps `logs` can show. */
const RUN_TYPES = ['runbook', 'runCommand'];

/** Between two looks at the running steps' heartbeats while following. */
const POLL_MS = 1500;
/** How long one state query (which step a host is on) may take. */
const QUERY_MS = 5000;
/** gRPC codes of a long poll cut off, after which it is simply made again. */
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;
const GRPC_NOT_FOUND = 5;

/** The run `logs` reads: the latest run of a workflow id. */
interface RunRef {
  workflowId: string;
  runId: string;
  type: string;
}

/**
 * Describes a run without decoding its memo or search attributes (the client's describe() decodes them, and fails
 * without the codec keys before `logs` can say so): its type and pending activities are all that is needed.
 */
function describeRun(client: Client, workflowId: string, runId?: string) {
  return client.workflowService.describeWorkflowExecution({
    namespace: client.options.namespace,
    execution: { workflowId, runId },
  });
}

/** `runbook logs ID`: prints the run's step output; with --follow, until the run closes (returns its exit code). */
export async function runLogs(id: string, opts: LogsOptions): Promise<number> {
  return withClient(async (client) => {
    const info = await describeRun(client, id).then(
      (d) => d.workflowExecutionInfo,
      (err: unknown) => {
        if ((err as { code?: number }).code === GRPC_NOT_FOUND)
          throw new UserError(
            `There is no run ${id} in namespace ${client.options.namespace} of this Temporal server. Check the workflow id: \`runbook list\` shows recent runs.`,
          );
        throw err;
      },
    );
    const run: RunRef = { workflowId: id, runId: info?.execution?.runId ?? '', type: info?.type?.name ?? '' };
    if (!RUN_TYPES.includes(run.type))
      throw new UserError(
        `${id} is a ${run.type} workflow, not a runbook run: \`runbook logs\` shows the steps' output of runbook runs ` +
          '(and of `runbook exec` commands). `runbook list` lists the runbook runs.',
      );
    // Ctrl-C stops following (never the run); a closed pipe (`| head`) stops printing. Either way: exit 130.
    const stop = new AbortController();
    const interrupted = () => {
      if (!stop.signal.aborted) process.stderr.write(`stopped following ${id} (the run goes on)\n`);
      stop.abort();
    };
    const pipeClosed = () => stop.abort();
    process.once('SIGINT', interrupted);
    process.stdout.once('error', pipeClosed);
    const sink: LogSink = {
      out: (line) => void (stop.signal.aborted || process.stdout.write(`${line}\n`)),
      err: (line) => void (stop.signal.aborted || process.stderr.write(`${line}\n`)),
    };
    try {
      const code = await new LogSession(client, run, opts, sink, stop.signal).run();
      return stop.signal.aborted ? 130 : code;
    } catch (err) {
      if (stop.signal.aborted) return 130; // a call cut short by the stop
      throw err;
    } finally {
      process.off('SIGINT', interrupted);
      process.stdout.off('error', pipeClosed);
    }
  });
}

/** One `logs` command: reads the history (following it with --follow), the heartbeats, and prints. */
class LogSession {
  private readonly reader: HistoryReader;
  private readonly printer: LogPrinter;
  private readonly finished: FinishedStep[] = [];
  /** Hosts' current steps already noted as running without output. */
  private readonly noted = new Map<string, string>();
  /** Events read by the first (non-waiting) pass over the history. */
  private readEvents = 0;
  /** The state query in flight while following (one at a time, stopped when following ends). */
  private query?: Promise<void>;
  private readonly queries = new AbortController();

  constructor(
    private readonly client: Client,
    private readonly ref: RunRef,
    private readonly opts: LogsOptions,
    sink: LogSink,
    private readonly signal: AbortSignal,
  ) {
    this.reader = new HistoryReader(client.options.loadedDataConverter, ref.type);
    this.printer = new LogPrinter(opts, sink);
  }

  async run(): Promise<number> {
    // What the history holds now, all of it: the runbook and its targets decide the checks and the prefix.
    let token: Uint8Array | undefined;
    do {
      const page = await this.page(token, false);
      this.finished.push(...(await this.reader.read(page.history?.events ?? [])));
      token = page.nextPageToken?.length ? page.nextPageToken : undefined;
    } while (token && !this.signal.aborted);
    const doc = this.reader.prepared?.runbook;
    this.printer.setRunbook(doc);
    this.checkFilters(doc);
    const pending = this.reader.closed ? [] : await this.pendingSteps();
    // A prefix unless one step on one host is asked for: decided once, so the format does not depend on how far
    // the run has got (a later step or host would otherwise change it half-way through --follow).
    const targets = this.reader.prepared?.targets ?? [];
    const oneStep = this.ref.type === 'runCommand' || this.opts.step !== undefined;
    this.printer.prefix = !(oneStep && (this.opts.host !== undefined || targets.length <= 1));
    for (const f of this.finished) this.printer.finished(f);
    for (const p of pending) this.printer.running(p.at, p);
    if (!this.reader.closed) await this.noteLocalSteps(pending);
    if (this.opts.follow && !this.reader.closed) await this.follow();
    return this.end(doc);
  }

  /** The end: what was not there to show, and how the run ended (or that it runs on). */
  private end(doc: RunbookDoc | undefined): number {
    if (this.signal.aborted) return 130;
    if (this.reader.unattributed)
      this.printer.note(
        undefined,
        `${this.reader.unattributed} step result(s) of this run do not say which host they are of (recorded by an older worker): not shown`,
      );
    if (doc && !allSteps(doc).some((s) => s.ssh && !s.ssh.upload))
      this.printer.note(undefined, `runbook ${doc.metadata.name} has no SSH steps: there is no step output to show`);
    else if (this.printer.printed === 0) this.printer.note(undefined, 'no step output to show (yet)');
    for (const c of this.reader.children)
      this.printer.note(undefined, `sub-runbook run ${c}: \`runbook logs ${c}\` shows its output`);
    const closed = this.reader.closed;
    this.printer.run(this.ref.workflowId, closed);
    return closed && this.opts.follow ? closed.exitCode : 0;
  }

  /** Refuses a --step or --host the run does not have (when its runbook is known), naming those it has. */
  private checkFilters(doc: RunbookDoc | undefined): void {
    const p = this.reader.prepared;
    if (this.opts.step !== undefined && doc) {
      const ids = allSteps(doc).map((s) => s.id);
      if (!ids.includes(this.opts.step) && !/^(steps|rollback)\[/.test(this.opts.step))
        throw new UserError(
          `Runbook ${doc.metadata.name} has no step "${this.opts.step}". Its steps: ${ids.join(', ')}. Give one of these to --step (or a path such as steps[0]).`,
        );
    }
    if (this.opts.host !== undefined && p && !(this.opts.host in p.ssh) && !p.targets.includes(this.opts.host))
      throw new UserError(
        `Run ${this.ref.workflowId} has no host "${this.opts.host}". Its targets: ${p.targets.join(', ') || 'none'}. Give one of these to --host.`,
      );
  }

  /** Follows the run until it closes (or Ctrl-C): the history long-polled, the heartbeats polled meanwhile. */
  private async follow(): Promise<void> {
    let closed = false;
    const live = (async () => {
      while (!closed && !this.signal.aborted) {
        await sleep(POLL_MS, this.signal);
        if (closed || this.signal.aborted) break;
        const pending = await this.pendingSteps().catch(() => []);
        for (const p of pending) this.printer.running(p.at, p);
        // The state query waits while a local step holds the workflow task: never let it hold up the output.
        this.query ??= this.noteLocalSteps(pending).finally(() => {
          this.query = undefined;
        });
      }
    })();
    try {
      let token: Uint8Array | undefined;
      // The first long poll starts over from the first event (already read): skip those.
      let skip = this.reader.closed ? Infinity : this.readEvents;
      while (!this.reader.closed && !this.signal.aborted) {
        const page = await this.page(token, true).catch(async (err: unknown) => {
          if (this.signal.aborted) return undefined;
          // A long poll cut off (deadline, server restarting): poll again. Anything else is an answer.
          if (![GRPC_DEADLINE_EXCEEDED, GRPC_UNAVAILABLE].includes((err as { code?: number }).code ?? -1)) throw err;
          await sleep(1000, this.signal);
          return undefined;
        });
        if (!page) continue;
        let events = page.history?.events ?? [];
        if (skip > 0) {
          const n = Math.min(skip, events.length);
          events = events.slice(n);
          skip -= n;
        }
        for (const f of await this.reader.read(events)) this.printer.finished(f);
        token = page.nextPageToken?.length ? page.nextPageToken : token;
      }
    } finally {
      closed = true;
      await live;
      this.queries.abort();
      await this.query;
    }
  }

  /**
   * A call to the server that Ctrl-C (and `also`) abort. Each call gets a signal of its own: the client leaves a
   * listener on the signal it is given, which would pile up on a long-lived one while following.
   */
  private async call<T>(fn: () => Promise<T>, ...also: AbortSignal[]): Promise<T> {
    const own = new AbortController();
    const sources = [this.signal, ...also];
    const abort = () => own.abort();
    for (const s of sources) s.addEventListener('abort', abort, { once: true });
    if (sources.some((s) => s.aborted)) own.abort();
    try {
      return await this.client.withAbortSignal(own.signal, fn);
    } finally {
      for (const s of sources) s.removeEventListener('abort', abort);
    }
  }

  /** One page of the history; with `wait`, a long poll for events after `token`. */
  private async page(
    token: Uint8Array | undefined,
    wait: boolean,
  ): Promise<temporal.api.workflowservice.v1.IGetWorkflowExecutionHistoryResponse> {
    const page = await this.call(() =>
      this.client.workflowService.getWorkflowExecutionHistory({
        namespace: this.client.options.namespace,
        execution: { workflowId: this.ref.workflowId, runId: this.ref.runId },
        nextPageToken: token,
        waitNewEvent: wait,
      }),
    );
    if (!wait) this.readEvents += page.history?.events?.length ?? 0;
    return page;
  }

  /** The SSH steps running as regular activities, with the latest lines they reported. */
  private async pendingSteps(): Promise<(SshStepProgress & { at: StepAt })[]> {
    const desc = await this.call(() => describeRun(this.client, this.ref.workflowId, this.ref.runId));
    const steps: (SshStepProgress & { at: StepAt })[] = [];
    for (const a of desc.pendingActivities ?? []) {
      if (a.activityType?.name !== 'sshStep') continue;
      const payloads = a.heartbeatDetails?.payloads;
      const beat = payloads?.length
        ? await decodeFromPayloadsAtIndex<SshStepProgress>(this.client.options.loadedDataConverter, 0, payloads).catch(
            codecError,
          )
        : undefined;
      const at = beat?.host ? { host: beat.host, step: beat.step } : this.reader.stepOfActivity(a.activityId ?? '');
      if (at) steps.push({ ...beat, host: at.host, step: at.step, at });
    }
    return steps;
  }

  /**
   * Says which step a host is on when that step shows no output while it runs (a local activity), once per step.
   * The state query needs a worker; without one this says nothing.
   */
  private async noteLocalSteps(pending: { at: StepAt }[]): Promise<void> {
    const state = await this.call(
      () => this.client.workflow.getHandle(this.ref.workflowId, this.ref.runId).query(stateQuery),
      this.queries.signal,
      AbortSignal.timeout(QUERY_MS),
    ).catch(() => undefined);
    if (this.queries.signal.aborted || this.signal.aborted) return;
    for (const [host, h] of Object.entries(state?.hosts ?? {})) {
      if (h.state !== 'running' || !h.step || this.noted.get(host) === h.step) continue;
      if (this.opts.host !== undefined && host !== this.opts.host) continue;
      if (this.opts.step !== undefined && !h.step.split(',').includes(this.opts.step)) continue;
      if (pending.some((p) => p.at.host === host)) continue;
      this.noted.set(host, h.step);
      this.printer.note(
        undefined,
        `${escapeControls(host)}: running ${h.step} (a short step: its output shows when it ends)`,
      );
    }
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
