'use strict';
// The package's CommonJS entry point: `require('assistantd-client')`.

const { AssistantdClient } = require('./client');
const { commandEndpoint, eventsEndpoint } = require('./discovery');
const errors = require('./errors');

module.exports = {
  AssistantdClient,
  ...errors,
  commandEndpoint,
  eventsEndpoint,
  /**
   * The event mirror `client.watch()` returns. This entry loads it when first asked for, so
   * that a program that only sends commands never loads it; the ES module entry (index.mjs)
   * loads it at import, as a named export must be bound then.
   * @returns {typeof import('./watch').Watch}
   */
  get Watch() {
    return require('./watch').Watch;
  },
};
