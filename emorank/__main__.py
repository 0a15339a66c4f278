import sys

from emorank.cli import main

if __name__ == "__main__":  # guarded: worker processes may import this module
    sys.exit(main())
