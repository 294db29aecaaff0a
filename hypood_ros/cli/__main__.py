import sys

from hypood_ros.cli import main

sys.exit(main())
