"""``assistantd-http``: the daemon's commands and events over HTTP, in the OpenAI API's shapes.

A client of the daemon like any other (ZeroMQ, found as ``assistantctl`` finds it), serving
``/v1/assistants`` as OpenAI's Assistants API does, Jan's extensions under the same prefix, and
the event stream as Server-Sent Events at ``/v1/events``.
"""
