from orl.cli import main

raise SystemExit(main())
