"""``python -m rnncap`` runs the command line."""

from rnncap.cli import main

main()
