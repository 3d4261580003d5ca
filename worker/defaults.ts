// Node side. Defaults the CLI's help shows and the worker's configuration uses, in a module that loads nothing else
// (the CLI reads them before it knows which command runs).

/** Where the worker serves Prometheus metrics unless told otherwise. */
export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9464';

/** The alert receiver's port unless told otherwise. */
export const DEFAULT_RECEIVER_PORT = 9280;
