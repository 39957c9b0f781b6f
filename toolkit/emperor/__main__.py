from toolkit.emperor.main import main

raise SystemExit(main())
