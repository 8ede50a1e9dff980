"""Tools that measure and fit the library (eval, bench, calibrate, backends, load test); the library never imports them."""
