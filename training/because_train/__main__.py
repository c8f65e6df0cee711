from because_train.cli import main

raise SystemExit(main())
