// Node side. Notifications: every message is logged; with RUNBOOK_NOTIFY_URL set it is also POSTed there as
// JSON {channel, message} (Slack-compatible relays, chat bridges, paging gateways).
import { failureClass, FAILURES } from '../common/failure-types';
import type { Logger } from '../common/logger';
import { redact } from '../common/redact';

export interface Notification {
  channel: string;
  message: string;
}

/** The webhook answered with an error or could not be reached: retryable. */
export class NotifyError extends failureClass(FAILURES.notify) {}

/** Logs the message, and POSTs it to `url` (the worker's RUNBOOK_NOTIFY_URL) when there is one. */
export async function sendNotification(n: Notification, logger: Logger, url: string | undefined): Promise<void> {
  const message = redact(n.message);
  logger.info({ channel: n.channel, text: message }, 'notification');
  if (!url) return;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channel: n.channel, message }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new NotifyError(`notification to ${new URL(url).origin} failed: ${(err as Error).message}`);
  }
  if (!res.ok) throw new NotifyError(`notification to ${new URL(url).origin} answered ${res.status}`);
}
