'use strict';
// The error classes: one per status, as the Python client's (protocol/errors.py), each carrying
// the wire's error object.

const assert = require('node:assert/strict');
const { test } = require('node:test');

const errors = require('assistantd-client');

const T = { timeout: 5_000 };

test('an error object becomes the class of its status, keeping every field', T, () => {
  for (const [status, name] of /** @type {const} */ ([
    [400, 'InvalidRequestError'], [403, 'PermissionDeniedError'], [404, 'NotFoundError'],
    [409, 'ConflictError'], [413, 'PayloadTooLargeError'], [500, 'InternalError'],
    [502, 'WorkerError'], [503, 'UnavailableError'], [504, 'GatewayTimeoutError'], [418, 'AssistantdError'],
  ])) {
    const object = { message: `m${status}`, type: 't', param: 'p', code: 'c', status };
    const error = errors.AssistantdError.fromObject(object);
    assert.equal(error.constructor, errors[name]);
    assert.equal(error.name, name);
    assert.ok(error instanceof errors.AssistantdError && error instanceof Error);
    assert.deepEqual([error.message, error.type, error.param, error.code, error.status], [`m${status}`, 't', 'p', 'c', status]);
    assert.deepEqual(error.error, object);
    assert.equal(error.details, undefined);
  }
});

test('a malformed error object still gives an error, with defaults where it says nothing usable', T, () => {
  const error = errors.AssistantdError.fromObject({ status: 'bad', message: 42, details: [1] });
  assert.equal(error.constructor, errors.InternalError);
  assert.equal(error.status, 500);
  assert.equal(error.message, '42');
  assert.equal(error.type, 'server_error');
  assert.equal(error.code, null);
  assert.equal(error.details, undefined);
});

test('errors made here have their class\'s status, type and code, and an error object', T, () => {
  const error = new errors.UnavailableError('No reply.', { code: 'timeout' });
  assert.deepEqual(error.error, { message: 'No reply.', type: 'server_error', param: null, code: 'timeout', status: 503 });
  const worker = new errors.WorkerError('boom', { details: { name: 'Error' } });
  assert.deepEqual([worker.status, worker.type, worker.code], [502, 'worker_error', 'worker_error']);
  assert.deepEqual(worker.error.details, { name: 'Error' });
  assert.equal(new errors.NotFoundError('x').code, 'not_found');
  assert.equal(new errors.DownloadError('x').type, 'download_error');
  const cause = new Error('inner');
  assert.equal(new errors.InternalError('outer', { cause }).cause, cause);
});
