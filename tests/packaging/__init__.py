"""Tests of the packaging: the PyInstaller build and the installers made from it."""
