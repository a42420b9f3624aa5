"""Code that ships inside every bundle (as ``run.py``): stdlib + numpy + one runtime only."""
