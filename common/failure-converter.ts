// Pure (workflow-safe; loaded into the workflow sandbox through `failureConverterPath`). Failures keep their
// message and stack trace inside an encoded payload (`encodedAttributes`) instead of the failure's plain fields,
// so with history encryption on, a failure's text (a command's stderr tail, an HTTP body, a param value) reaches
// the server as ciphertext like every other payload. Every Temporal SDK decodes these attributes when it reads a
// failure, and the Web UI does through the codec server.
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
