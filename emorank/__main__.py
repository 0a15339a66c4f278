import sys

from emorank.cli import main

sys.exit(main())
