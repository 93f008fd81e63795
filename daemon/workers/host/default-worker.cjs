'use strict';
/*
 * The built-in worker for an assistant without src/process.js: the Jan spec's default, "index.js
 * loads assistant.json and executes exactly like so". Started by the daemon with Node's IPC
 * channel and the assistant's folder as cwd, it reads ./assistant.json once at start and serves
 * the invoke protocol of serve.cjs with two methods:
 *
 *   ping()           -> "pong"
 *   getDefinition()  -> assistant.json, parsed
 *
 * An assistant.json that is missing or not JSON is a {"type": "failed"} answer and exit 1.
 */

const fs = require('fs');
const path = require('path');
const { serve } = require('./serve.cjs');

async function load() {
  const file = path.join(process.cwd(), 'assistant.json');
  const definition = JSON.parse(await fs.promises.readFile(file, 'utf8'));
  return {
    ping: () => 'pong',
    getDefinition: () => definition,
  };
}

serve(load(), 'default');
