"""Figures and tables for the book."""

# The code the chapters compute and draw with (see lvlmu.versions): bump it, and every chapter runs again.
REPORT_VERSION = 21
