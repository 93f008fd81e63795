'use strict';
/*
 * The benchmark's module-style worker (copied into the daemon's `jan` as src/process.js): it
 * exports a function and listens to no messages, so the preload serves invokes against it.
 */

exports.ping = () => 'pong';
