// Workflow side (deterministic). Every workflow type the worker registers.
export { runCommand } from './run-command';
export { runbook } from './runbook';
export { hostLock } from './host-lock';
export { hostLockManager } from './host-lock-manager';
export { alertGuard } from './alert-guard';
