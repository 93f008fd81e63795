// The package's ES module entry point: `import { AssistantdClient } from 'assistantd-client'`.
// One implementation, the CommonJS one, so that both entry points hand out the same classes
// (an error thrown through one is `instanceof` the other's). Unlike `require`, an import loads
// the watch (`Watch`: watch.js, mirror.js, events.js) at once: a named export is bound at import.
import cjs from './index.js';

export const {
  AssistantdClient,
  AssistantdError,
  InvalidRequestError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  PayloadTooLargeError,
  InternalError,
  WorkerError,
  DownloadError,
  UnavailableError,
  GatewayTimeoutError,
  commandEndpoint,
  eventsEndpoint,
  Watch,
} = cjs;

export default cjs;
