"""Test peers that tests and `fastlb demo` use: the Marathon emulator and loopback backends."""
