// Node side. One line's worth of a Temporal history event, for the places that print a run's history: the fan-out
// bench's timeline and the test harness's dump of a history that fails to replay.
import { temporal } from '@temporalio/proto';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** The event's type as the API spells it, e.g. `EVENT_TYPE_MARKER_RECORDED`. */
export function eventTypeName(e: HistoryEvent): string {
  return String(temporal.api.enums.v1.EventType[e.eventType ?? 0] ?? e.eventType);
}

/** What the event is about: its marker, activity type, signal or timer; empty for the others. */
export function eventSubject(e: HistoryEvent): string {
  return (
    e.markerRecordedEventAttributes?.markerName ??
    e.activityTaskScheduledEventAttributes?.activityType?.name ??
    e.workflowExecutionSignaledEventAttributes?.signalName ??
    e.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName ??
    e.timerStartedEventAttributes?.timerId ??
    ''
  );
}
