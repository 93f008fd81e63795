// Type tests of the watch's declarations (`npm run typecheck`): what a frontend writes
// compiles, and each `@ts-expect-error` line is misuse that must not.

import { AssistantdClient, Watch } from 'assistantd-client';
import type { MirrorChange, MirrorView, Synced, WatchEvent, WatchNotification } from '../../types/watch';

async function watching(): Promise<void> {
  const client = new AssistantdClient();
  const watch: Watch = client.watch({ prefix: 'worker.', startTimeout: 5_000 });
  // @ts-expect-error a misspelt option (a TypeError at run time too)
  void client.watch({ prefx: 'worker.' });
  // @ts-expect-error where to connect is the client's, not an option
  void client.watch({ endpoint: 'ipc:///elsewhere/events.sock' });

  watch.on('change', (change: MirrorChange) => {
    for (const { id, before, after } of change.assistants) {
      if (before && after && before.state !== after.state) console.log(`${id} ${before.state} -> ${after.state}`);
    }
    if (change.source.topic === 'client.synced') {
      const reason: 'start' | 'gap' | 'epoch' | 'silence' | 'behind' = change.source.reason;
      void reason;
    } else {
      const seq: number = change.source.seq;
      void seq;
    }
  });
  watch.on('synced', (synced: Synced) => void synced.epoch);
  watch.on('event', (event: WatchEvent) => {
    // The topic tells the event's fields.
    if (event.topic === 'worker.log') console.log(event.line);
    if (event.topic === 'assistant.deleted') console.log(event.assistant_id);
    // @ts-expect-error welcomes and heartbeats are used up inside, never passed on
    if (event.topic === 'daemon.heartbeat') console.log(event);
  });
  watch.on('skipped', ({ reason }) => console.warn(reason));
  watch.on('error', (error: Error) => console.error(error.message));
  // @ts-expect-error no such notification
  watch.on('changed', () => {});

  await watch.ready();
  const view: MirrorView = watch.toJSON();
  const ids: string[] = view.assistants.map((assistant) => assistant.id);
  const running: boolean = watch.state.assistants.get('jan')?.state === 'running';
  const seq: number = watch.state.seq;
  // @ts-expect-error the mirror's maps are keyed by id
  watch.state.assistants.get(1);
  void [ids, running, seq];

  for await (const notification of watch) {
    const it: WatchNotification = notification;
    if (it.topic === 'client.synced') console.log(it.reason, watch.state.assistants.size);
    else if (it.topic === 'assistant.state') console.log(it.previous, '->', it.assistant.state);
  }
  await watch.close();
  client.close();
}

void watching;
