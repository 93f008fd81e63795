"""The documented limits of protocol v1 (PROTOCOL.md, "Limits").

The field limits are OpenAI's for the assistant object, so a definition that the OpenAI API takes
is taken here and the other way round.
"""

from typing import Final

# Assistant fields (OpenAI's limits).
NAME_MAX_CHARS: Final = 256
DESCRIPTION_MAX_CHARS: Final = 512
INSTRUCTIONS_MAX_CHARS: Final = 256_000
TOOLS_MAX_ITEMS: Final = 128
MODELS_MAX_ITEMS: Final = 128  # Jan's `models` list; OpenAI has one `model`
METADATA_MAX_PAIRS: Final = 16
METADATA_KEY_MAX_CHARS: Final = 64
METADATA_VALUE_MAX_CHARS: Final = 512
TEMPERATURE_RANGE: Final = (0.0, 2.0)
TOP_P_RANGE: Final = (0.0, 1.0)

# Assistant ids are folder names; these keep them portable and unambiguous.
ID_MAX_CHARS: Final = 128
# A folder name holds 255 bytes; the daemon's staging and trash names add a suffix to the id.
ID_MAX_BYTES: Final = 200

# listAssistants paging.
LIST_LIMIT_DEFAULT: Final = 20
LIST_LIMIT_MAX: Final = 100

# A request body over this many bytes is answered with a 413. It leaves room for the largest
# valid definition: 256,000 characters of instructions take up to 1 MiB as UTF-8 in JSON.
REQUEST_MAX_BYTES: Final = 2 * 1024 * 1024

# An `assistant.json` larger than this is refused as invalid rather than read into memory.
FILE_MAX_BYTES: Final = 4 * 1024 * 1024

# Messages over this size are dropped by ZeroMQ itself (ZMQ_MAXMSGSIZE) and the sending peer is
# disconnected without a reply, so that no client can make the daemon buffer arbitrary amounts.
TRANSPORT_MAX_BYTES: Final = 8 * 1024 * 1024

# invokeAssistant: a method name is a JavaScript property name, not a document.
METHOD_NAME_MAX_CHARS: Final = 256
# The longest an invoke may be told to wait: an hour (a long generation, a download in the worker).
INVOKE_TIMEOUT_MAX_MS: Final = 3_600_000

# downloadAssistant and importAssistant.
URL_MAX_CHARS: Final = 8192
PATH_MAX_CHARS: Final = 4096
