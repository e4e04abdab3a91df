"""Running the cockpit: the scheduler, alerts and notifications, reports, status, exports and the data asset
catalog.
"""
