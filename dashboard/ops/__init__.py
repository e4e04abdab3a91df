"""Running the cockpit: the scheduler, alerts and notifications, reports, status, exports, the data
asset catalog, background jobs queued from a page, and the server's watchdog.
"""
