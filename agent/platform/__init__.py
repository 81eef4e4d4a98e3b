"""What differs per operating system, each behind one interface chosen once at start."""
