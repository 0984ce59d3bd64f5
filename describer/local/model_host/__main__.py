"""``python -m describer.local.model_host --model-dir DIR --endpoint-name NAME --port PORT``."""

import sys

from describer.local.model_host.server import main

sys.exit(main())
