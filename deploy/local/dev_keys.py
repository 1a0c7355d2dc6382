"""Development credentials for `make run`: a fixed API key for every demo account.

Prints the JSON for DNC_API__KEYS (or, with --unsubscribe, DNC_API__UNSUBSCRIBE_KEYS).
Never use these outside a laptop: `make run` prints them so you can sign in.
"""

import hashlib
import json
import sys

DEV_KEY = "dnc_dev_local_only_key"
UNSUBSCRIBE_KEY = "dev-only-unsubscribe-signing-key-0123456789abcdef"

if "--unsubscribe" in sys.argv:
    print(json.dumps([UNSUBSCRIBE_KEY]))
else:
    print(json.dumps([{"name": "dev", "sha256": hashlib.sha256(DEV_KEY.encode()).hexdigest(),
                       "accounts": ["acme", "acme-eu", "globex"]}]))
