'use strict';
// A child process whose output lines the tests wait for, each wait with a deadline, and that
// is stopped by a signal with SIGKILL behind it: what the daemon (support/daemon.js) and the
// example (example.test.js) are to the tests.

const readline = require('node:readline');

class WatchedChild {
  /**
   * @param {import('node:child_process').ChildProcess} child
   * @param {import('node:stream').Readable} output the stream whose lines are waited for
   * @param {(raw: string) => unknown} [parse] what a line is taken as (the text, by default)
   * @param {string} [name] how messages name the child
   */
  constructor(child, output, parse = (raw) => raw, name = 'the child') {
    this.child = child;
    this.name = name;
    /** @type {unknown[]} every line so far, parsed */
    this.lines = [];
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this._waiters = new Set();
    readline.createInterface({ input: output }).on('line', (raw) => {
      this.lines.push(parse(raw));
      for (const waiter of this._waiters) waiter();
    });
  }

  /**
   * The first line (already read or still to come) that satisfies `predicate`; an error when
   * none has come within `ms`, or the child exited without one.
   */
  waitFor(predicate, ms = 10_000) {
    return new Promise((resolve, reject) => {
      let seen = 0;
      const check = () => {
        for (; seen < this.lines.length; seen++) {
          if (predicate(this.lines[seen])) {
            done();
            resolve(this.lines[seen]);
            return;
          }
        }
      };
      const fail = (why) => {
        done();
        reject(new Error(`${why}; ${this.name} wrote:\n${this.transcript()}`));
      };
      const timer = setTimeout(() => fail(`no such line within ${ms} ms`), ms);
      const done = () => {
        clearTimeout(timer);
        this._waiters.delete(check);
      };
      this._waiters.add(check);
      this.exited.then(() => {
        check(); // the last lines are read before the exit is seen
        if (this._waiters.has(check)) fail(`${this.name} exited without such a line`);
      });
      check();
    });
  }

  /** Send `signal`; the exit, or an error (after a SIGKILL) if it is not gone within `ms`. */
  async stop(signal = 'SIGTERM', ms = 10_000) {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(resolve, ms, 'late'); });
    const outcome = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (outcome === 'late') {
      this.child.kill('SIGKILL');
      await this.exited;
      throw new Error(`${this.name} did not exit on ${signal}; it wrote:\n${this.transcript()}`);
    }
    return outcome;
  }

  transcript() {
    return this.lines.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))).join('\n');
  }
}

module.exports = { WatchedChild };
