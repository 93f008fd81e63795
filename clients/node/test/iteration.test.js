'use strict';
// An iteration's queue (src/watch.js, NotificationQueue): bounded, as the mirror never waits
// for a consumer. These feed it directly; test/watch.test.js iterates real watches.

const test = require('node:test');
const assert = require('node:assert/strict');

const { NotificationQueue, ITERATION_BACKLOG } = require('../src/watch');

const T = { timeout: 10_000 };

/** A state event as the watch hands it on (only the fields the queue looks at matter). */
const updated = (seq) => ({ topic: 'assistant.updated', epoch: 'e1', time: 0, seq, cause: 'file', assistant: { id: `a${seq}` } });
const log = (line) => ({ topic: 'worker.log', epoch: 'e1', time: 0, assistant_id: 'jan', pid: 7, stream: 'stdout', line });

/** A queue of `backlog` whose `behind` Synced stands for a mirror at `mirror.seq`. */
function queueOf(backlog, mirror) {
  const released = { count: 0 };
  const behind = () => ({ topic: 'client.synced', reason: 'behind', epoch: 'e1', seq: mirror.seq, time: 0 });
  return { queue: new NotificationQueue(() => { released.count += 1; }, behind, backlog), released };
}

/** What is queued, taken without waiting. */
async function drain(queue, count) {
  const taken = [];
  for (let i = 0; i < count; i++) taken.push((await queue.next()).value);
  return taken;
}

test('the backlog is the daemon\'s per-subscriber queue', T, () => {
  assert.equal(ITERATION_BACKLOG, 10_000);
});

test('a consumer that falls behind gets one Synced for the mirror in place of its backlog', T, async () => {
  const mirror = { seq: 0 };
  const { queue } = queueOf(3, mirror);
  for (const seq of [1, 2, 3]) {
    mirror.seq = seq;
    queue.push(updated(seq));
  }
  mirror.seq = 4; // the watch applies an event to the mirror before it hands it on
  queue.push(updated(4));
  queue.push(updated(4)); // held by that Synced: not queued again
  mirror.seq = 5;
  queue.push(updated(5));
  queue.push(log('after'));
  const taken = await drain(queue, 3);
  assert.deepEqual(taken.map((item) => [item.topic, item.reason ?? item.seq ?? item.line]), [
    ['client.synced', 'behind'],
    ['assistant.updated', 5],
    ['worker.log', 'after'],
  ]);
  assert.equal(taken[0].seq, 4);
});

test('a consumer that keeps up never sees a Synced of its own', T, async () => {
  const mirror = { seq: 0 };
  const { queue } = queueOf(2, mirror);
  const seen = [];
  for (let seq = 1; seq <= 50; seq++) {
    const next = queue.next(); // waiting before each push: nothing piles up
    mirror.seq = seq;
    queue.push(updated(seq));
    seen.push((await next).value.seq);
  }
  assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i + 1));
});

test('a backlog that overflows again is replaced again, and ending drops it', T, async () => {
  const mirror = { seq: 0 };
  const { queue, released } = queueOf(2, mirror);
  for (let seq = 1; seq <= 10; seq++) {
    mirror.seq = seq;
    queue.push(updated(seq));
  }
  // 1, 2 queued; 3 overflows (Synced 3); 4 queued; 5 overflows (Synced 5); ... 10 queued.
  const [synced, last] = await drain(queue, 2);
  assert.deepEqual([synced.reason, synced.seq, last.seq], ['behind', 9, 10]);
  queue.push(log('a'));
  queue.end();
  assert.equal(released.count, 1);
  assert.deepEqual(await queue.next(), { value: undefined, done: true });
});
