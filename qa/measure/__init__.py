"""Tools that measure and train; never imported by the library."""
