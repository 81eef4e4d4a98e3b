"""End-to-end tests of the dashboard: a real agent, Debian's Chromium, real RTMP servers.

Playwright's sync API drives ``/usr/bin/chromium`` (nothing is downloaded). The tests here are
plain sync functions: Playwright runs its own event loop while a browser is open, so the fake
platforms and the publisher run on a loop of their own in a background thread
(:class:`tests.dashboard.harness.BackgroundLoop`).
"""
