// Node side. Who started a run that does not say: the identity of the client that started it, as the server
// recorded it in the run's first history event (the Temporal CLI sends `PID@HOST@`, the TypeScript SDK `PID@HOST`,
// the Web UI its own). Like the `initiator` field, it is the starter's claim, not an authentication;
// it is what the server knows, and better than `unknown` in the audit trail and the list of runs.
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { isPrintableText } from '../dsl/run-input';

const DECEPTIVE = /[\u0080-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;

/** The longest identity kept (the input's `initiator` rule); a longer or unprintable one is not used. */
const MAX_IDENTITY = 256;

/** The starting client's identity, or undefined when the server recorded none usable. */
export async function starterIdentity(client: Client): Promise<string | undefined> {
  const info = Context.current().info;
  const execution = info.workflowExecution;
  if (!execution) return undefined;
  const res = await client.workflowService.getWorkflowExecutionHistory({
    namespace: info.workflowNamespace,
    execution,
    maximumPageSize: 1,
  });
  const identity = res.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.identity?.trim();
  // Printable, and nothing that reorders or hides text where it is shown (C1 controls, bidi overrides, zero-width).
  return isPrintableText(identity, MAX_IDENTITY) && !DECEPTIVE.test(identity) ? identity : undefined;
}
