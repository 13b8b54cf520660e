from __future__ import annotations

from unblank_server.cli import main

raise SystemExit(main())
