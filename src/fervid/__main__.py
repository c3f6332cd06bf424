from fervid.cli import main

raise SystemExit(main())
