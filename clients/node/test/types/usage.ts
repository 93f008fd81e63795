// Type tests of the public API (`npm run typecheck`): what a program may write compiles, and
// each `@ts-expect-error` line is misuse that must not (tsc fails if one of them compiles).

import {
  AssistantdClient,
  AssistantdError,
  NotFoundError,
  UnavailableError,
  Watch,
  commandEndpoint,
} from 'assistantd-client';
import type {
  Assistant,
  AssistantList,
  Event,
  MethodParams,
  MethodResult,
  Snapshot,
} from 'assistantd-client';

async function usage(): Promise<void> {
  const client = new AssistantdClient({ runtimeDir: '/run/user/1000/assistantd', timeout: 5_000, retries: 1 });
  const endpoint: string = client.endpoint;
  const events: string = client.eventsEndpoint;

  const ping = await client.ping({ timeout: 1_000 });
  const version: number = ping.protocol_version;

  const page: AssistantList = await client.listAssistants({ limit: 5, order: 'asc', after: 'jan' });
  const firstId: string | null = page.first_id;
  for await (const assistant of client.iterAssistants({ pageSize: 10 })) {
    const id: string = assistant.id;
    const state: 'to_download' | 'downloading' | 'ready' | 'running' = assistant.state;
    void [id, state];
  }

  const jan: Assistant = await client.getAssistant('jan');
  const name: string | null = jan.name;
  const pid: number | null | undefined = jan.runtime?.pid;

  const created = await client.createAssistant({ id: 'tutor', name: 'Tutor', model: ['a', 'b'], metadata: { team: 'edu' } });
  await client.modifyAssistant(created.id, { instructions: null, temperature: 0.5 });
  const deleted = await client.deleteAssistant(created.id);
  const gone: true | boolean = deleted.deleted;

  const snapshot: Snapshot = await client.getSnapshot();
  const seq: number = snapshot.seq;

  await client.startAssistant('jan');
  const pong: unknown = await client.invokeAssistant('jan', 'ping', [], { timeoutMs: 1_000, timeout: 2_000 });
  await client.sendToAssistant('jan', { any: ['json'] });
  await client.stopAssistant('jan');
  await client.restartAssistant('jan');

  await client.downloadAssistant({ url: 'https://example.com/a.zip', sha256: 'ab', start: true });
  await client.cancelDownload('a');
  await client.importAssistant('./folder', { assistantId: 'copy' });
  const exported = await client.exportAssistant('jan', 'jan.zip');
  const format: 'zip' | 'tar.gz' = exported.format;

  const raw: MethodResult<'getAssistant'> = await client.request('getAssistant', { assistant_id: 'jan' });
  const params: MethodParams<'invokeAssistant'> = { assistant_id: 'jan', method: 'ping' };
  const anything: unknown = await client.request('someFutureMethod', { x: 1 });

  const watch: Watch = client.watch({ prefix: 'assistant.' });
  void watch;

  try {
    await client.getAssistant('nobody');
  } catch (error) {
    if (error instanceof NotFoundError) {
      const status: number = error.status;
      const code: string | null = error.code;
      void [status, code];
    }
    if (error instanceof AssistantdError) {
      const message: string = error.error.message;
      const details: Record<string, unknown> | undefined = error.details;
      void [message, details];
    }
    if (error instanceof UnavailableError && error.code === 'timeout') throw error;
  }

  const event = {} as Event;
  if (event.topic === 'assistant.created') {
    const assistant: Assistant = event.assistant;
    void assistant;
  }

  const found: string = commandEndpoint({ runtimeDir: '/tmp/x' });
  client.close();
  void [endpoint, events, version, firstId, name, pid, gone, seq, pong, format, raw, params, anything, found];
}

async function misuse(client: AssistantdClient): Promise<void> {
  // @ts-expect-error an id is a string
  await client.getAssistant(42);
  // @ts-expect-error a wrong param type
  await client.listAssistants({ limit: '5' });
  // @ts-expect-error no such order
  await client.listAssistants({ order: 'sideways' });
  // @ts-expect-error a misspelt field
  await client.createAssistant({ nmae: 'x' });
  // @ts-expect-error the id of an assistant cannot be modified
  await client.modifyAssistant('jan', { id: 'other' });
  // @ts-expect-error temperature is a number
  await client.modifyAssistant('jan', { temperature: 'hot' });
  // @ts-expect-error camelCase options: assistantId, not assistant_id
  await client.importAssistant('/a', { assistant_id: 'x' });
  // @ts-expect-error invoke's args are an array
  await client.invokeAssistant('jan', 'ping', 'not-an-array');
  // @ts-expect-error a misspelt client option
  new AssistantdClient({ runtime_dir: '/x' });
  // @ts-expect-error timeout is milliseconds, a number
  new AssistantdClient({ timeout: '10s' });
  // @ts-expect-error the wire params of a known method are checked
  await client.request('getAssistant', { id: 'jan' });
  const assistant = await client.getAssistant('jan');
  // @ts-expect-error results are exact: no such field
  void assistant.nmae;
  // @ts-expect-error a result is not writable into the wrong type
  const wrong: number = assistant.id;
  void wrong;
}

void usage;
void misuse;
